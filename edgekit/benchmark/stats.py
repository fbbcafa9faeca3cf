"""Latency statistics: one definition of min/mean/std/p50/p90/p99/max for every runtime.

Percentiles use linear interpolation between order statistics (numpy's default,
Hyndman & Fan type 7), the definition most tools and spreadsheets share. ``std`` is
the sample standard deviation (ddof=1). A run is flagged **noisy** when its
coefficient of variation (std / mean) exceeds a threshold (10 % by default): on a
quiet machine a steady CPU model varies by a few percent, so a larger spread means
interference (other processes, frequency scaling, thermal throttling), and its
numbers should not be compared at face value.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from .config import CV_THRESHOLD  # declared with the bench options (BenchConfig)
PERCENTILES = (50, 90, 99)


def summarize(latencies_ms: Sequence[float], *, batch: int = 1,
              cv_threshold: float = CV_THRESHOLD) -> dict[str, float | bool | int]:
    """Summary of per-run latencies (milliseconds) -> the schema's statistics fields."""
    x = np.asarray(latencies_ms, dtype=np.float64)
    if x.size == 0:
        raise ValueError("no timed runs to summarize")
    mean = float(x.mean())
    std = float(x.std(ddof=1)) if x.size > 1 else 0.0
    p50, p90, p99 = (float(v) for v in np.percentile(x, PERCENTILES))
    cv = std / mean if mean > 0 else math.inf
    return {"timed_runs": int(x.size), "min_ms": float(x.min()), "mean_ms": mean, "std_ms": std,
            "p50_ms": p50, "p90_ms": p90, "p99_ms": p99, "max_ms": float(x.max()),
            "cv": cv, "noisy": bool(cv > cv_threshold), "cv_threshold": cv_threshold,
            "throughput_ips": batch * 1000.0 / mean if mean > 0 else 0.0}
