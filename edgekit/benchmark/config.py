"""``BenchConfig``: the options of ``edgekit bench`` (and :func:`edgekit.bench`), validated.

Torch-free (like :mod:`edgekit.stage_config`), so the CLI reads its defaults from here and
:func:`edgekit.benchmark.run.bench` validates through the same class: one list of defaults,
one set of checks (zero, negative and NaN are one-line errors, :mod:`edgekit.numbers`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Iterable

from ..errors import EdgekitError
from ..numbers import non_negative_int, positive_float, positive_int
from ..stage_config import check_numbers

#: seconds one measurement (one artifact, runtime and thread count) may take before it is a failed row
DEFAULT_TIMEOUT = 600.0
#: coefficient of variation of the timed runs above which a row is flagged noisy
CV_THRESHOLD = 0.10


def as_names(value: Any, what: str) -> list[str]:
    """``"a,b"`` or ``["a", "b"]`` -> ["a", "b"]; nothing left is a one-line error naming ``what``."""
    if isinstance(value, str):
        items = [v.strip() for v in value.split(",") if v.strip()]
    else:
        items = [str(v).strip() for v in value]
    if not items:
        raise EdgekitError(f"no {what} given")
    return items


def parse_threads(threads: int | str | Iterable[int]) -> list[int]:
    """``2``, ``"1,2,4"`` or ``(1, 2)`` -> [1, 2, 4]; each a positive integer."""
    raw = [threads] if isinstance(threads, (int, float)) else as_names(threads, "thread counts")
    return [positive_int("thread count", t) for t in raw]


@dataclass
class BenchConfig:
    """How each artifact is timed.

    ``runtime``: ``auto`` (each format's own) or runtime names (a comma list). ``threads``: the
    thread counts, each its own row. ``warmup``: untimed runs after the first. ``runs`` fixes the
    timed runs, ``min_seconds`` times for at least that long (at most one of them; neither: at
    least 50 runs and 1 s). ``timeout``: seconds per measurement. ``cv_threshold``: the
    coefficient of variation above which a row is flagged noisy. ``max_samples``: accuracy
    images at most (None: the whole validation split). ``seed``: the random input's seed.
    """

    runtime: str = "auto"
    threads: tuple[int, ...] = (1,)
    batch: int = 1
    warmup: int = 10
    runs: int | None = None
    min_seconds: float | None = None
    timeout: float = DEFAULT_TIMEOUT
    cv_threshold: float = CV_THRESHOLD
    max_samples: int | None = None
    seed: int = 0

    #: each number's check (:func:`~edgekit.stage_config.check_numbers`; the CLI's option types)
    CHECKS: ClassVar[dict[str, Any]] = {
        "batch": positive_int, "warmup": non_negative_int, "runs": positive_int, "min_seconds": positive_float,
        "timeout": positive_float, "cv_threshold": positive_float, "max_samples": positive_int,
        "seed": non_negative_int}

    def __post_init__(self) -> None:
        self.threads = tuple(parse_threads(self.threads))
        check_numbers(self)
        if self.runs is not None and self.min_seconds is not None:
            raise EdgekitError("give either runs or min_seconds, not both")
