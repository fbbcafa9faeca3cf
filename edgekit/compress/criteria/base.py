"""What a pruning criterion is: :class:`Criterion`, what it is given (:class:`Proxy`) and what it needs.

A criterion scores every unit of every prunable group of a :class:`~edgekit.compress.units.UnitGraph`
(higher = more important; selection removes the lowest first), in the manner of Torch-Pruning's
importance classes: one class per criterion, holding the options of
:class:`~edgekit.compress.prune_config.PruneConfig` it owns (CURL: ``rank``, ``scoring``,
``exact_precision``, and the default of ``steps``), so the pruning pipeline asks the object and never
compares names. :class:`TorchPruningCriterion` wraps a Torch-Pruning group importance (the
baselines ``l1``, ``l2``, ``bn``, ``taylor``, ``random``).

Nothing here imports torch at module level: the registry is read by the CLI and by
:class:`~edgekit.compress.prune_config.PruneConfig`, which list and validate names without
loading the pruning machinery.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from ...errors import EdgekitError
from ...stage_config import choice

if TYPE_CHECKING:
    import torch
    from torch import nn

    from ...training.label_distribution import LabelTask
    from ..units import UnitGraph


@dataclass(frozen=True)
class Needs:
    """What a criterion needs besides the model and the proxy images.

    ``labels``: the proxy set's targets; ``gradients``: backward passes (autograd through the model);
    ``teacher``: the unpruned model (the pipeline passes it in :attr:`Proxy.teacher` only then);
    ``distribution``: an output distribution to compare (a one-output regression model has none)."""

    labels: bool = False
    gradients: bool = False
    teacher: bool = False
    distribution: bool = False


@dataclass
class Proxy:
    """The proxy data a criterion scores on, and the context of the run.

    ``images``: the proxy set under the eval transform; ``labels``: its targets (class indices, or
    numeric labels; None where the criterion does not need them); ``seed``: for seeded criteria;
    ``label_task``: set for a label-distribution model (:mod:`edgekit.training.label_distribution`);
    ``device``: where passes may run (scores come back on the CPU); ``teacher``: the unpruned model,
    for criteria whose :attr:`Needs.teacher` is set."""

    images: torch.Tensor
    labels: torch.Tensor | None = None
    seed: int = 0
    progress: bool = True
    label_task: LabelTask | None = None
    device: torch.device | str | None = None
    teacher: nn.Module | None = None


class Criterion:
    """A pruning criterion: subclass, set :attr:`name` and :attr:`summary`, implement :meth:`score`,
    and register the class with :func:`edgekit.compress.criteria.register_criterion`.

    ``options``: the :class:`~edgekit.compress.prune_config.PruneConfig` fields this criterion owns,
    each with its allowed values (None: any). An instance holds their values (missing ones take
    the config's defaults; options of other criteria are ignored, since the config carries them all).
    """

    #: The ``--method`` spelling.
    name: ClassVar[str] = ""
    #: One line for ``edgekit prune --help``.
    summary: ClassVar[str] = ""
    #: Owned PruneConfig fields -> allowed values (None: not restricted here).
    options: ClassVar[dict[str, tuple[str, ...] | None]] = {}
    #: Owned PruneConfig fields -> their defaults (PruneConfig declares its fields with these).
    defaults: ClassVar[dict[str, Any]] = {}
    needs: Needs = Needs()

    def __init__(self, **options: Any) -> None:
        self.settings: dict[str, Any] = {}
        for opt, allowed in self.options.items():
            if opt not in options and opt not in self.defaults:
                raise EdgekitError(f"criterion {self.name!r}: option {opt!r} has no value and no default")
            value = options[opt] if opt in options else self.defaults[opt]
            self.settings[opt] = choice(opt.replace("_", " "), value, allowed) if allowed is not None else value

    @classmethod
    def from_config(cls, cfg: Any) -> Criterion:
        """The criterion with the options it owns read from a :class:`PruneConfig`."""
        return cls(**{opt: getattr(cfg, opt) for opt in cls.options})

    def option(self, name: str) -> Any:
        """The value of an owned option; None for an option this criterion does not own (provenance
        and the score cache record it as not applying)."""
        return self.settings.get(name)

    @property
    def rank(self) -> str:
        """The selection ranking (:func:`edgekit.compress.selection.select`): the owned ``rank``, else raw scores."""
        return self.option("rank") or "raw"

    @property
    def seeded(self) -> bool:
        """Whether the scores depend on the run's seed (then part of the score cache's key)."""
        return False

    def precision_on(self, device: Any) -> str | None:
        """The arithmetic the scoring passes run in on ``device``, when the criterion has a choice (else None)."""
        return None

    def default_steps(self, target: str) -> int:
        """Prune steps when ``steps`` is not given, for a target such as ``macs=0.5``."""
        return 1

    def check(self, label_task: LabelTask | None) -> None:
        """Refuse, in one line and before any data is loaded, a model this criterion cannot score."""

    def score(self, model: nn.Module, graph: UnitGraph, proxy: Proxy) -> dict[int, torch.Tensor]:
        """Importance of every unit of every prunable group of ``graph`` (built on ``model``):
        {group index: float tensor of the group's ``size`` scores, on the CPU}. The model is left on the CPU."""
        raise NotImplementedError

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.settings.items())
        return f"{type(self).__name__}({opts})"


class TorchPruningCriterion(Criterion):
    """A Torch-Pruning group importance on the same units as CURL.

    Each scores a whole dependency group with Torch-Pruning's group importance (mean over
    coupled layers, mean-normalised per group), so ``edgekit prune --method l1`` differs from
    CURL only in the criterion: same groups, same minimum keep ratio, same target search, same
    recovery. Subclasses return the importance object (:meth:`importance`) and may prepare the
    model first (:meth:`prepare`: Taylor's backward pass, the random seed)."""

    def importance(self, imp: Any) -> Any:
        """The importance object, from the module ``torch_pruning.importance`` (``imp``)."""
        raise NotImplementedError

    def prepare(self, model: nn.Module, proxy: Proxy) -> None:
        """Run before the groups are scored."""

    def finish(self, model: nn.Module) -> None:
        """Run after the groups are scored (or scoring failed)."""

    def score(self, model: nn.Module, graph: UnitGraph, proxy: Proxy) -> dict[int, torch.Tensor]:
        import torch
        import torch_pruning as tp  # a core dependency

        imp_cls = tp.importance
        imp = self.importance(imp_cls)
        out: dict[int, torch.Tensor] = {}
        self.prepare(model, proxy)
        try:
            for g in graph.groups:
                if not g.prunable:
                    continue
                with torch.no_grad():
                    s = imp(g.group)
                if s is None:  # e.g. BN scale on a group without BatchNorm: fall back to L1
                    s = imp_cls.GroupMagnitudeImportance(p=1)(g.group)
                if s is not None and len(s) == g.size * g.per_unit:
                    s = g.fold(s)  # grouped convolutions: one score per channel position
                if s is None or len(s) != g.size:
                    raise EdgekitError(f"{self.name} importance cannot score layer group {g.name}")
                out[g.index] = s.detach().float().cpu()
        finally:
            self.finish(model)
        return out
