"""The timing loop shared by every in-process runner.

First run (timed alone: lazy allocation, JIT and delegate preparation land here),
``warmup`` untimed runs, then timed runs: exactly ``runs`` of them, or as many as fit
in ``min_seconds`` (at least ``MIN_RUNS``), or by default at least ``DEFAULT_RUNS``
and at least ``DEFAULT_SECONDS`` -- the rule LiteRT's benchmark_model uses. Each run
is timed alone with ``perf_counter_ns`` (so percentiles exist), and Python's garbage
collector is paused during the timed runs, as ``timeit`` does, so a collection
cycle is not charged to the model.
"""
from __future__ import annotations

import gc
import time
from typing import Any, Callable

DEFAULT_RUNS = 50
DEFAULT_SECONDS = 1.0
MIN_RUNS = 10
MAX_RUNS = 100_000


def time_runs(fn: Callable[[], Any], *, warmup: int = 10, runs: int | None = None,
              min_seconds: float | None = None) -> dict[str, Any]:
    """Run ``fn`` and return ``first_run_ms``, ``warmup_runs`` and per-run ``latencies_ms``."""
    t0 = time.perf_counter_ns()
    fn()
    first_ms = (time.perf_counter_ns() - t0) / 1e6
    for _ in range(warmup):
        fn()
    if runs is not None:
        min_n, secs = max(1, int(runs)), 0.0
        max_n = min_n
    elif min_seconds is not None:
        min_n, secs, max_n = MIN_RUNS, float(min_seconds), MAX_RUNS
    else:
        min_n, secs, max_n = DEFAULT_RUNS, DEFAULT_SECONDS, MAX_RUNS
    lat: list[int] = []
    append, clock = lat.append, time.perf_counter_ns
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    deadline = clock() + int(secs * 1e9)
    try:
        while True:
            t = clock()
            fn()
            append(clock() - t)
            n = len(lat)
            if n >= max_n or (n >= min_n and clock() >= deadline):
                break
    finally:
        if was_enabled:
            gc.enable()
    return {"first_run_ms": first_ms, "warmup_runs": int(warmup), "latencies_ms": [v / 1e6 for v in lat]}
