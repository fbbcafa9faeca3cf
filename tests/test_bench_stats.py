"""Golden values for the latency statistics, the Pareto front and the core mask."""
from __future__ import annotations

import math

import pytest

import time

from edgekit.benchmark.adb import core_mask
from edgekit.benchmark.measure import time_runs
from edgekit.benchmark.plots import pareto_front
from edgekit.benchmark.stats import summarize
from edgekit.errors import EdgekitError


def test_summarize_hand_computed() -> None:
    s = summarize([1.0, 2.0, 3.0, 4.0, 100.0], batch=2)
    assert s["timed_runs"] == 5
    assert s["min_ms"] == 1.0 and s["max_ms"] == 100.0
    assert s["mean_ms"] == pytest.approx(22.0)
    # sample std: sqrt(((21^2 + 20^2 + 19^2 + 18^2 + 78^2)) / 4) = sqrt(7610 / 4)
    assert s["std_ms"] == pytest.approx(math.sqrt(7610 / 4))
    # linear interpolation between order statistics: rank = q/100 * (n - 1)
    assert s["p50_ms"] == pytest.approx(3.0)
    assert s["p90_ms"] == pytest.approx(4.0 + 0.6 * 96.0)
    assert s["p99_ms"] == pytest.approx(4.0 + 0.96 * 96.0)
    assert s["throughput_ips"] == pytest.approx(2 * 1000 / 22.0)
    assert s["noisy"] is True and s["cv"] == pytest.approx(math.sqrt(7610 / 4) / 22.0)


def test_steady_runs_are_not_noisy() -> None:
    s = summarize([10.0, 10.1, 9.9, 10.0, 10.05, 9.95])
    assert s["noisy"] is False and s["cv"] < 0.01
    assert summarize([10.0, 12.0], cv_threshold=0.5)["noisy"] is False
    assert summarize([5.0])["std_ms"] == 0.0


def test_pareto_front() -> None:
    # (latency, accuracy): 2 is dominated by 0 (faster and as accurate); 3 by 1.
    pts = [(1.0, 90.0), (2.0, 95.0), (1.5, 90.0), (3.0, 94.0), (4.0, 97.0)]
    assert pareto_front(pts) == [0, 1, 4]


def test_core_mask() -> None:
    assert core_mask("4-7") == "f0"
    assert core_mask("0,2") == "5"
    assert core_mask([6, 7]) == "c0"
    with pytest.raises(EdgekitError):
        core_mask("x")


def test_time_runs_counts_and_durations() -> None:
    calls = []

    def fn() -> None:
        calls.append(1)
        time.sleep(0.005)

    out = time_runs(fn, warmup=3, runs=7)
    assert len(out["latencies_ms"]) == 7 and len(calls) == 1 + 3 + 7 and out["warmup_runs"] == 3
    assert all(4.5 <= v < 200 for v in out["latencies_ms"]) and out["first_run_ms"] >= 4.5
    out = time_runs(fn, warmup=0, min_seconds=0.1)
    assert len(out["latencies_ms"]) >= 10 and sum(out["latencies_ms"]) >= 100 * 0.9
