"""``DistillConfig``: the options of ``edgekit distill`` (and :func:`edgekit.distill`), validated.

Free of torch so the CLI reads its defaults and choices without importing the trainer;
the method names come from the loss-term registry (:mod:`edgekit.compress.loss_terms`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import EdgekitError
from ..numbers import non_negative_float, optional, positive_float, positive_int
from ..stage_config import choice
from ..training.config import FitOptions

DEFAULT_METHOD = "kd"
#: LSH bias per hash function: minus the median or mean of the teacher's projections, or none.
BIAS_MODES = ("median", "mean", "0")
KD_T = 4.0


@dataclass
class DistillConfig(FitOptions):
    """How to distil: the loss terms and their weights, the student's input, and the training run.

    ``method``: ``none`` or registered loss terms joined by ``+`` (``lshl2+kd``). ``alpha``
    weighs logit terms (KD), ``beta`` feature terms; ``None`` is each term's registered
    default. ``hash_num`` defaults to 4 x the teacher's feature size. ``feature_layer``:
    a module path for both models or ``TEACHER_PATH:STUDENT_PATH``. ``cache_teacher``:
    True caches teacher outputs next to the output for the run (removed when it
    finishes), a path keeps them there for later runs; either turns augmentation off.
    ``augment`` None is on unless the teacher is cached. ``shift``: the temporal shift of a
    ``tsm_`` student built by name from a clip teacher (default: the teacher's if it is a TSM,
    else causal; :func:`edgekit.compress.temporal.clip_student`).
    """

    method: str = DEFAULT_METHOD
    alpha: float | None = None
    beta: float | None = None
    input_size: int | None = None  # default: the teacher's
    hash_num: int | None = None
    bias: str = "median"
    feature_layer: str | None = None
    cache_teacher: bool | str | Path = False
    correct_only: bool = True
    temperature: float = KD_T
    augment: bool | None = None
    shift: str | None = None

    def __post_init__(self) -> None:
        from .loss_terms import parse_method

        super().__post_init__()
        self.method = "+".join(parse_method(self.method))
        self.alpha = optional(non_negative_float, "alpha", self.alpha)
        self.beta = optional(non_negative_float, "beta", self.beta)
        self.input_size = optional(positive_int, "input_size", self.input_size)
        self.hash_num = optional(positive_int, "hash_num", self.hash_num)
        self.bias = choice("LSH bias", self.bias, BIAS_MODES)
        self.temperature = positive_float("temperature", self.temperature)
        if self.shift is not None and self.shift not in ("bidirectional", "causal"):
            raise EdgekitError(f"shift must be 'bidirectional' or 'causal', got {self.shift!r}")

    @property
    def parts(self) -> tuple[str, ...]:
        return tuple(self.method.split("+"))
