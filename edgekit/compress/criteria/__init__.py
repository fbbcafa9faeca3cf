"""The pruning criteria, registered by name: ``curl`` (CURL's KL, exact or its Fisher estimate),
``l1``, ``l2``, ``bn`` (magnitude), ``taylor`` and ``random``.

Each criterion is a :class:`~edgekit.compress.criteria.base.Criterion` subclass that owns its
options and says what it needs; ``edgekit prune --method`` and
:class:`~edgekit.compress.prune_config.PruneConfig` accept every registered name, in
registration order. Adding a criterion is one class and one :func:`register_criterion` call::

    from edgekit.compress.criteria import Criterion, register_criterion

    @register_criterion
    class Ones(Criterion):
        name, summary = "ones", "every unit scores 1 (ties: selection keeps the order)"

        def score(self, model, graph, proxy):
            return {g.index: torch.ones(g.size) for g in graph.groups if g.prunable}

    edgekit.prune("model.pt", None, "pruned.pt", method="ones")

This registry is the only place that names criteria; the pipeline asks the criterion object
(its ranking, whether it is seeded, its precision, its default step count, what it needs).
"""
from .base import Criterion, Needs, Proxy, TorchPruningCriterion
from .registry import (CRITERIA, build_criterion, criterion_for, criterion_names, get_criterion, help_text,
                       register_criterion)
from . import curl, magnitude, taylor, random  # noqa: E402,F401  (the built-ins register themselves, in this order)

__all__ = ["CRITERIA", "Criterion", "Needs", "Proxy", "TorchPruningCriterion", "build_criterion",
           "criterion_for", "criterion_names", "get_criterion", "help_text", "register_criterion"]
