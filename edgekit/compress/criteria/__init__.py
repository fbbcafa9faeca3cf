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
from __future__ import annotations

from typing import Any

from ...errors import EdgekitError, suggest
from .base import Criterion, Needs, Proxy, TorchPruningCriterion

__all__ = ["CRITERIA", "Criterion", "Needs", "Proxy", "TorchPruningCriterion", "build_criterion",
           "criterion_for", "criterion_names", "get_criterion", "help_text", "register_criterion"]

#: name -> criterion class, in registration order (the built-ins first).
CRITERIA: dict[str, type[Criterion]] = {}


def register_criterion(cls: type[Criterion]) -> type[Criterion]:
    """Register a :class:`Criterion` subclass under its ``name`` (unique); usable as a class decorator."""
    if not (isinstance(cls, type) and issubclass(cls, Criterion)):
        raise EdgekitError(f"a pruning criterion must be a Criterion subclass, got {cls!r}")
    name = cls.name
    if not isinstance(name, str) or not name or name != name.strip():
        raise EdgekitError(f"a pruning criterion needs a name, got {name!r}")
    if name in CRITERIA:
        raise EdgekitError(f"pruning criterion {name!r} is already registered")
    CRITERIA[name] = cls
    return cls


def criterion_names(lacking: str | None = None) -> tuple[str, ...]:
    """The registered names; with ``lacking``, only criteria whose (default) :class:`Needs` lack that
    field (``lacking="distribution"``: those that score a model without an output distribution)."""
    if lacking is None:
        return tuple(CRITERIA)
    return tuple(n for n, cls in CRITERIA.items() if not getattr(cls().needs, lacking))


def get_criterion(name: str) -> type[Criterion]:
    """The criterion class registered as ``name``; an unknown name is one line listing the known ones."""
    cls = CRITERIA.get(name) if isinstance(name, str) else None
    if cls is None:
        exc = suggest(str(name), CRITERIA, "pruning method")
        raise EdgekitError(f"{exc} (known: {', '.join(CRITERIA)})")
    return cls


def build_criterion(name: str, **options: Any) -> Criterion:
    """The criterion ``name`` with those of ``options`` it owns (others are ignored; missing ones
    take :class:`~edgekit.compress.prune_config.PruneConfig`'s defaults)."""
    cls = get_criterion(name)
    return cls(**{k: v for k, v in options.items() if k in cls.options})


def criterion_for(cfg: Any) -> Criterion:
    """The criterion a :class:`~edgekit.compress.prune_config.PruneConfig` names, with its owned options."""
    return get_criterion(cfg.method).from_config(cfg)


def help_text() -> str:
    """``--method``'s help: every registered criterion with its one-line summary."""
    return "Importance criterion: " + "; ".join(f"{c.name} ({c.summary})" if c.summary else c.name
                                                for c in CRITERIA.values()) + "."


from . import curl, magnitude, taylor, random  # noqa: E402,F401  (the built-ins register themselves, in this order)
