"""``PruneConfig``: the options of ``edgekit prune`` (and :func:`edgekit.prune`), validated.

The choices (recovery recipes here; importance criteria and CURL's rankings in
:mod:`edgekit.compress.criteria`) are free of torch, so the CLI lists them without importing the
pruning machinery.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import EdgekitError
from ..numbers import (epoch_count, fraction, non_negative_float, non_negative_int, optional, positive_float,
                       positive_int, unit_interval)
from ..stage_config import RunConfig, choice
from .criteria import Criterion, criterion_for, get_criterion
# CURL's options (rankings, scorings, exact precisions, default step count) are defined with its criterion
from .criteria.curl import DEFAULT_FISHER_STEPS, EXACT_PRECISIONS, RANKS, SCORINGS, Curl  # noqa: F401
from .rounding import parse_round_to

#: How far (relative) a pruned model may land from its macs/params target before it counts as off
#: target: logged by ``prune``; ``optimize`` then also tries the fraction with unrounded counts.
TARGET_TOLERANCE = 0.02


def off_target(got: float, target: float) -> bool:
    """Whether a pruned model's MACs (or params) fraction ``got`` misses ``target`` by more than
    :data:`TARGET_TOLERANCE` of it (channel rounding and the per-layer floor can push it off)."""
    return abs(got - target) > TARGET_TOLERANCE * target + 1e-9


#: Recovery after pruning: plain fine-tuning, or CURL's limited-data recipe.
RECIPES = ("finetune", "limited-data")


@dataclass
class PruneConfig(RunConfig):
    """What to prune to, how to score and select units, and how to recover.

    ``target``: ``macs=0.5`` / ``params=0.5`` (fraction of the original) or
    ``latency=5ms@litert`` (exported and measured). ``rank`` applies to ``curl`` only.
    ``train_fraction`` < 1 simulates limited data (proxy set and recovery both draw from
    it); ``proxy_seed`` fixes that draw independently of ``seed``, which then varies
    selection ties, BN re-estimation and recovery. ``precise_bn``: batches for the BN
    re-estimation right after pruning and at the end of recovery (0 disables both).
    ``scores_path``: keep the importance scores there (reused by a later prune with the
    same inputs); otherwise they are cached next to the output only while the run lasts.
    ``scoring``: CURL's exact KL or its Fisher estimate (:mod:`edgekit.compress.fisher`; the
    default, measured: with re-scored steps it prunes far better than one-step exact KL).
    ``exact_precision``: the arithmetic of exact scoring's masked passes (:data:`EXACT_PRECISIONS`;
    ``auto``: bf16 on a CPU that computes it natively, float32 elsewhere).
    ``steps``: reach the target in that many prune steps, re-estimating BN and re-scoring
    the thinned network between steps (``step_epochs`` of fine-tuning too, when > 0); not
    given: :data:`DEFAULT_FISHER_STEPS` for Fisher-scored CURL to a macs/params target, else 1;
    ``min_keep`` stays a fraction of the **original** width of every group.
    ``round_to``: keep channel counts multiples of this; ``"auto"`` = the target runtime's
    fast multiple (:mod:`edgekit.compress.rounding`), which is also the default for a
    latency target (None elsewhere: no rounding).
    """

    target: str = "macs=0.5"
    method: str = "curl"
    rank: str = Curl.defaults["rank"]
    scoring: str = Curl.defaults["scoring"]
    exact_precision: str = Curl.defaults["exact_precision"]
    steps: int | None = None  # None: DEFAULT_FISHER_STEPS for Fisher-scored CURL to a macs/params target, else 1
    step_epochs: int = 0
    min_keep: float = 0.3
    proxy_size: int = 256
    round_to: int | str | None = None
    finetune_epochs: int = 5
    recipe: str = "finetune"
    train_fraction: float = 1.0
    lr: float = 0.01
    refine_epochs: int | None = None  # limited-data stage 3; default ceil(finetune_epochs / 8)
    expansion: str = "auto"  # limited-data expanded set: the data's own policy, a preset, or key=value options
    label_lr: float | None = None  # limited-data label refinement rate (0: teacher logits fixed; the default)
    mixup: bool | None = None  # limited-data stage 2 mixup (default off, measured)
    refine_lr: float | None = None  # limited-data stage 3 student rate (default lr / 10, measured)
    proxy_seed: int | None = None
    scores_path: str | Path | None = None
    score_cache: bool = True
    measure_latency: bool = False
    latency_runtimes: tuple[str, ...] = ("onnxruntime", "litert")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.target, str) or not self.target.strip():
            raise EdgekitError(f"target must be text such as macs=0.5, got {self.target!r}")
        get_criterion(self.method)  # an unknown name is one line listing the registered ones
        self.rank = choice("ranking", self.rank, RANKS)
        self.scoring = choice("scoring", self.scoring, SCORINGS)
        self.exact_precision = choice("exact precision", self.exact_precision, EXACT_PRECISIONS)
        if self.steps is None:
            self.steps = self.criterion.default_steps(self.target)
        self.steps = positive_int("steps", self.steps)
        self.step_epochs = epoch_count("step_epochs", self.step_epochs, allow_zero=True)
        self.recipe = choice("recovery recipe", self.recipe, RECIPES)
        self.min_keep = unit_interval("min_keep", self.min_keep)
        self.proxy_size = positive_int("proxy_size", self.proxy_size)
        self.round_to = parse_round_to(self.round_to)
        self.finetune_epochs = epoch_count("finetune_epochs", self.finetune_epochs, allow_zero=True)
        self.train_fraction = fraction("train_fraction", self.train_fraction)
        self.lr = positive_float("lr", self.lr)
        self.refine_epochs = optional(epoch_count, "refine_epochs", self.refine_epochs, allow_zero=True)
        if not isinstance(self.expansion, str) or not self.expansion.strip():
            raise EdgekitError(f"expansion must be a preset name or key=value options, got {self.expansion!r}")
        self.label_lr = optional(non_negative_float, "label_lr", self.label_lr)
        self.refine_lr = optional(positive_float, "refine_lr", self.refine_lr)
        self.proxy_seed = optional(non_negative_int, "proxy_seed", self.proxy_seed)
        self.latency_runtimes = tuple(self.latency_runtimes)

    @property
    def criterion(self) -> Criterion:
        """The :class:`~edgekit.compress.criteria.Criterion` ``method`` names, holding the options it owns."""
        return criterion_for(self)

    @property
    def data_seed(self) -> int:
        """The seed of the data draws (training subset, proxy set)."""
        return self.seed if self.proxy_seed is None else self.proxy_seed
