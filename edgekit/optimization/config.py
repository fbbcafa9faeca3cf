"""``OptimizeConfig``: the options of ``edgekit optimize`` (and :func:`edgekit.optimize`), validated.

Torch-free, so the CLI reads defaults and choices without importing the stages. Every
number goes through :mod:`edgekit.numbers`: zero, negative and NaN are one-line errors,
except where zero means something (``max_drop`` 0: no accuracy loss allowed; ``refine`` 0:
no bisection; ``recovery_epochs`` 0: no recovery).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..compress.prune_config import SCORINGS, PruneConfig
from ..compress.rounding import AUTO, parse_round_to
from ..formats import PRECISIONS
from ..numbers import (epoch_count, fraction, non_negative_float, non_negative_int, positive_float, positive_int,
                       unit_interval)
from ..stage_config import RunConfig, choice, default
from .plan import RECOVERIES, parse_recoveries

#: Kept fractions of the MACs tried by default, largest (most accurate) first. The grid stops
#: at the first that meets the budget, so the small ones cost time only under tight budgets;
#: a fraction the per-layer floor (``min_keep``) cannot reach is recorded as refused.
RATIOS = (0.75, 0.5, 0.35, 0.25, 0.15, 0.1)


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
    ``proxy_size``, ``min_keep``: CURL's proxy set and per-layer floor
    (:class:`~edgekit.compress.prune_config.PruneConfig`); ``calib_size``,
    ``parity_size``: int8 calibration and parity-gate images.

    ``scoring``: CURL's importance, ``"fisher"`` by default (as for ``edgekit prune``): every
    candidate is recovered, and after recovery the Fisher estimate's plans were
    as accurate as exact KL scoring's (resnet18 on digits, 3 seeds: 98.70 vs 98.70 % at 50 %
    MACs, 98.14 vs 97.96 % at 25 %; ``benchmarks/prune_curves.md``) at a 24th of the scoring
    time (``benchmarks/fisher_scoring.md``), which is what makes the search affordable for
    resnet18 and mobilenet_v2 on a CPU. ``steps``: prune in that many re-scored steps (3, as
    ``edgekit prune`` does for a MACs target: on mobilenet_v2 at 50 % MACs, recovery started from
    91.4 % after 3 steps against 71.3 % after 1).
    ``round_to``: kept channel counts are multiples of this; ``"auto"`` (default) is the
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
    calib_size: int = 256
    parity_size: int = 256
    min_seconds: float = 1.0
    scoring: str = "fisher"
    steps: int = 3
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
        self.proxy_size = positive_int("proxy_size", self.proxy_size)
        self.min_keep = unit_interval("min_keep", self.min_keep)
        self.calib_size = positive_int("calib_size", self.calib_size)
        self.parity_size = positive_int("parity_size", self.parity_size)
        self.min_seconds = positive_float("min_seconds", self.min_seconds)
        self.scoring = choice("scoring", self.scoring, SCORINGS)
        self.steps = positive_int("steps", self.steps)
        self.round_to = parse_round_to(self.round_to)

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
