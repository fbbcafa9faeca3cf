"""Measured latency for pruning: speed-up reports and the ``latency=Xms@RUNTIME`` target.

"Pruned but not faster" is the complaint users bring to every pruning tool, so edgekit
reports speed-up as measured, not as MACs: the model is exported with
:func:`edgekit.export` (parity gate included) and timed with :func:`edgekit.bench`
(one process per measurement, median of the timed runs).

A latency target is met by search: candidate MAC ratios are pruned (same scores,
same selection rules), exported and measured, bisecting on the ratio until the
largest model whose measured median latency meets the target is found.
"""
from __future__ import annotations

import copy
import logging
import tempfile
from pathlib import Path
from typing import Any

from .. import formats
from ..checkpoint import Checkpoint
from ..errors import EdgekitError
from .selection import Selection, Target, select

log = logging.getLogger("edgekit.prune")


def measure_latency(ckpt: Checkpoint, runtime: str, *, data: str | None = None, threads: int = 1,
                    min_seconds: float = 1.0, workdir: str | Path | None = None) -> float:
    """Median latency (ms, batch 1) of ``ckpt`` exported for ``runtime`` (onnxruntime, litert, or any
    local runtime of :mod:`edgekit.formats` whose format edgekit exports)."""
    from ..benchmark.run import bench
    from ..exporters.pipeline import export

    target = _target_for(runtime)
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        recs = export(ckpt, target, output_dir=tmp, name="candidate", calib=data, parity_size=32, force=True)
        rows = bench(recs[0]["path"], runtime=runtime, threads=threads, min_seconds=min_seconds)
    row = rows[0]
    if row.get("error"):
        raise EdgekitError(f"benchmarking on {runtime} failed: {row['error']}")
    return float(row["p50_ms"])


def _target_for(runtime: str) -> str:
    """The export target ``runtime`` runs, if it can run here; else one line saying why not."""
    target = formats.export_target_for(runtime)
    why = formats.runtime_unavailable(runtime) or formats.export_unavailable(target)
    if why:
        raise EdgekitError(f"cannot measure latency on {runtime}: {why}")
    return target


def speedup(parent: Checkpoint, child: Checkpoint, *, runtimes: tuple[str, ...] = ("onnxruntime", "litert"),
            data: str | None = None, threads: int = 1, workdir: str | Path | None = None) -> dict[str, Any]:
    """Measured median latency before/after pruning and the speed-up, per runtime."""
    out: dict[str, Any] = {"threads": threads}
    for rt in runtimes:
        before = measure_latency(parent, rt, data=data, threads=threads, workdir=workdir)
        after = measure_latency(child, rt, data=data, threads=threads, workdir=workdir)
        out[rt] = {"before_ms": before, "after_ms": after, "speedup": before / after}
    return out


def select_for_latency(graph: Any, scores: dict[int, Any], ckpt: Checkpoint, target: Target, *, rank: str,
                       min_keep: float, round_to: int | None, data: str | None = None,
                       workdir: str | Path | None = None, iterations: int = 6) -> tuple[Selection, dict[str, Any]]:
    """Bisect the MACs ratio until the measured latency on ``target.runtime`` meets ``target.value`` ms."""
    runtime = target.runtime or ""
    _target_for(runtime)
    trials: list[dict[str, Any]] = []

    def trial(ratio: float) -> tuple[Selection, float]:
        sel = select(graph, scores, kind="macs", ratio=ratio, rank=rank, min_keep=min_keep, round_to=round_to)
        model = copy.deepcopy(graph.model)
        sub = type(graph)(model, graph.example)  # same structure: group indices line up
        sub.prune(sel.removal)
        cand = ckpt.derive(model, stage="prune-candidate")
        ms = measure_latency(cand, runtime, data=data, workdir=workdir)
        trials.append({"macs_ratio": ratio, "latency_ms": ms})
        log.info("latency search: macs=%.3f -> %.3f ms on %s", ratio, ms, runtime)
        return sel, ms

    base_ms = measure_latency(ckpt, runtime, data=data, workdir=workdir)
    if base_ms <= target.value:
        raise EdgekitError(f"the unpruned model already runs in {base_ms:.3f} ms on {runtime} "
                           f"(target {target.value:g} ms): nothing to prune")
    lo_sel, lo_ms = None, None
    lo, hi = None, 1.0
    # the floor: everything removable under min_keep
    floor = 0.05
    while True:
        try:
            lo_sel, lo_ms = trial(floor)
            lo = floor
            break
        except EdgekitError:
            floor *= 1.5
            if floor >= 1:
                raise
    if lo_ms > target.value:
        raise EdgekitError(f"latency target {target.value:g} ms on {runtime} is unreachable: the smallest model "
                           f"allowed by min_keep={min_keep:g} measures {lo_ms:.3f} ms (unpruned {base_ms:.3f} ms)")
    best_sel, best_ms, best_ratio = lo_sel, lo_ms, lo
    for _ in range(iterations):
        mid = (lo + hi) / 2
        sel, ms = trial(mid)
        if ms <= target.value:
            best_sel, best_ms, best_ratio, lo = sel, ms, mid, mid
        else:
            hi = mid
    return best_sel, {"runtime": runtime, "target_ms": target.value, "unpruned_ms": base_ms,
                      "latency_ms": best_ms, "macs_ratio": best_ratio, "trials": trials}
