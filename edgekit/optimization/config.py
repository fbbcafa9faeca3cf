"""``OptimizeConfig``: the options of ``edgekit optimize`` (and :func:`edgekit.optimize`), validated.

Torch-free, so the CLI reads defaults and choices without importing the stages. Every
number goes through :mod:`edgekit.numbers`: zero, negative and NaN are one-line errors,
except where zero means something (``max_drop`` 0: no accuracy loss allowed; ``refine`` 0:
no bisection; ``recovery_epochs`` 0: no recovery).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..compress.prune_config import DEFAULT_FISHER_STEPS, PruneConfig
from ..compress.rounding import AUTO
from ..exporters.config import SAMPLE_IMAGES
from ..formats import PRECISIONS
from ..numbers import epoch_count, fraction, non_negative_float, non_negative_int, positive_float, positive_int
from ..stage_config import RunConfig, choice, default
from .plan import RECOVERIES, parse_recoveries

#: Kept fractions of the MACs tried by default, largest (most accurate) first. The grid stops
#: at the first that meets the budget, so the small ones cost time only under tight budgets;
#: a fraction the per-layer floor (``min_keep``) cannot reach is recorded as refused.
RATIOS = (0.75, 0.5, 0.35, 0.25, 0.15, 0.1)
#: Options optimize passes to :class:`~edgekit.compress.prune_config.PruneConfig` unchanged, for
#: every candidate it prunes (the rest of that config is the candidate's MACs fraction and no
#: fine-tuning: recovery is optimize's own stage). PruneConfig checks them (:meth:`OptimizeConfig.prune_config`).
PRUNE_OPTIONS = ("seed", "batch_size", "device", "precise_bn", "scoring", "steps", "proxy_size", "min_keep",
                 "round_to")


@dataclass
class OptimizeConfig(RunConfig):
    """How to search and how to measure.

    ``ratios``: the CURL MACs grid, tried largest first; the grid stops at the first
    ratio whose artifact meets the budget (smaller ones are faster but less accurate),
    unless ``exhaustive``; ``refine`` bisection steps then look for a larger model
    between that ratio and the last one over budget. Every pruned fraction is recovered by
    each method in ``recovery`` (default both: KD from the original, and plain fine-tuning on the
    labels), ``recovery_epochs`` each (0: none; by default as many as ``edgekit prune``
    fine-tunes) at ``recovery_lr``, and each recovery is its own candidate: which recovers better
    is measured, not assumed. Neither won everywhere: on
    mobilenet_v2 (96 px, digits, pruned in 3 Fisher steps) 5 epochs of fine-tuning kept the
    original's 97.2 % at 35 % of the MACs where 5 epochs of KD reached 96.1, and at 25 % 10 epochs
    of KD (96.4) beat 5 of fine-tuning (95.0) (``benchmarks/optimize_digits.md``, follow-ups).
    ``precision``: the export asked for; a candidate whose parity gate fails there falls back to
    the next wider precision.
    ``threads``, ``min_seconds``: how each artifact is timed. ``max_drop``: the most
    top-1 points the chosen artifact may lose against the original (fp32, torch).
    ``proxy_size``, ``min_keep``: CURL's proxy set and per-layer floor; these, ``scoring``,
    ``steps``, ``round_to`` and the run options (:data:`PRUNE_OPTIONS`) are
    :class:`~edgekit.compress.prune_config.PruneConfig`'s, which checks them
    (:meth:`prune_config`); ``calib_size``, ``parity_size``: int8 calibration and parity-gate
    images (:class:`~edgekit.exporters.config.ExportConfig`'s default count).

    ``scoring``: CURL's importance, ``"fisher"`` by default (as for ``edgekit prune``): every
    candidate is recovered, and after recovery the Fisher estimate's plans were
    as accurate as exact KL scoring's (resnet18 on digits, 3 seeds: 98.70 vs 98.70 % at 50 %
    MACs, 98.14 vs 97.96 % at 25 %; ``benchmarks/prune_curves.md``) at a 24th of the scoring
    time (``benchmarks/fisher_scoring.md``), which is what makes the search affordable for
    resnet18 and mobilenet_v2 on a CPU. ``steps``: prune in that many re-scored steps (3: what
    ``edgekit prune`` picks itself, :data:`DEFAULT_FISHER_STEPS`, for Fisher-scored CURL to a MACs
    target, which every candidate is; on mobilenet_v2 at 50 % MACs, recovery started from
    91.4 % after 3 steps against 71.3 % after 1). Declared here because prune's own default is
    None ("pick by scoring and target"), while optimize records the count in candidate keys.
    ``round_to``: kept channel counts are multiples of this; ``"auto"`` (default; prune's
    default for a latency target, which a budget is) is the
    budget runtime's fast multiple (:mod:`edgekit.compress.rounding`), since the budget is
    measured on that runtime and off-multiple counts fall off its fast kernels; a fraction whose
    rounded model lands more than 2 % off it is tried unrounded as well (:mod:`.search`).
    """

    threads: int = 1
    max_drop: float = 1.0
    precision: str = "int8"
    ratios: tuple[float, ...] = RATIOS
    refine: int = 1
    exhaustive: bool = False
    recovery: tuple[str, ...] = RECOVERIES
    recovery_epochs: int = default(PruneConfig, "finetune_epochs")
    recovery_lr: float = 0.01
    proxy_size: int = default(PruneConfig, "proxy_size")
    min_keep: float = default(PruneConfig, "min_keep")
    calib_size: int = SAMPLE_IMAGES
    parity_size: int = SAMPLE_IMAGES
    min_seconds: float = 1.0
    scoring: str = default(PruneConfig, "scoring")
    steps: int = DEFAULT_FISHER_STEPS
    round_to: int | str | None = AUTO

    def __post_init__(self) -> None:
        super().__post_init__()
        self.threads = positive_int("threads", self.threads)
        self.max_drop = non_negative_float("max_drop", self.max_drop)
        self.precision = choice("precision", self.precision, PRECISIONS)
        ratios = [self.ratios] if isinstance(self.ratios, (int, float, str)) else list(self.ratios)
        self.ratios = tuple(sorted({round(fraction("ratio", r, closed_right=False), 4) for r in ratios},
                                   reverse=True))
        self.refine = non_negative_int("refine", self.refine)
        self.recovery = parse_recoveries(self.recovery)
        self.recovery_epochs = epoch_count("recovery_epochs", self.recovery_epochs, allow_zero=True)
        self.recovery_lr = positive_float("recovery_lr", self.recovery_lr)
        self.calib_size = positive_int("calib_size", self.calib_size)
        self.parity_size = positive_int("parity_size", self.parity_size)
        self.min_seconds = positive_float("min_seconds", self.min_seconds)
        checked = self.prune_config(None, self.round_to)  # the shared options: PruneConfig's checks, not a copy of them
        for name in PRUNE_OPTIONS:
            setattr(self, name, getattr(checked, name))

    def prune_config(self, macs: float | None, round_to: int | str | None,
                     scores_path: str | Path | None = None) -> PruneConfig:
        """The :class:`PruneConfig` of a candidate pruned to ``macs`` (a fraction of the MACs;
        None: prune's default target, for checking), its counts rounded to ``round_to`` (:attr:`round_to`
        resolved for the budget's runtime; None: unrounded), scores kept in ``scores_path``; no
        fine-tuning (recovery is optimize's own stage)."""
        options = {name: getattr(self, name) for name in PRUNE_OPTIONS}
        options.update(finetune_epochs=0, scores_path=scores_path, round_to=round_to)
        if macs is not None:
            options["target"] = f"macs={macs}"
        return PruneConfig(**options)

    def prune_settings(self, data: dict[str, Any], round_to: int | None) -> dict[str, Any]:
        """What, besides the MACs fraction, changes a pruned checkpoint (its key, shared by the
        recoveries of that fraction); ``round_to`` is :attr:`round_to` resolved for the budget's runtime."""
        return {"data": data, "seed": self.seed, "batch_size": self.batch_size, "precise_bn": self.precise_bn,
                "proxy_size": self.proxy_size, "min_keep": self.min_keep, "scoring": self.scoring,
                "steps": self.steps, "round_to": round_to}

    def candidate_settings(self, data: dict[str, Any], round_to: int | None) -> dict[str, Any]:
        """What, besides the plan, changes a candidate's checkpoint or artifact (part of its key)."""
        return {**self.prune_settings(data, round_to), "recovery_lr": self.recovery_lr,
                "calib_size": self.calib_size, "parity_size": self.parity_size}
