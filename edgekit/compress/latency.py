"""Measured latency for pruning: speed-up reports and the ``latency=Xms@RUNTIME`` target.

"Pruned but not faster" is the complaint users bring to every pruning tool, so edgekit
reports speed-up as measured, not as MACs: the model is exported with
:func:`edgekit.export` (parity gate included) and timed with :func:`edgekit.bench`
(one process per measurement, median of the timed runs).

A latency target is met by search: candidate MAC ratios are pruned (same scores,
same selection rules), exported and measured, bisecting on the ratio until the
largest model whose measured median latency meets the target is found. Kept channel
counts are rounded to the runtime's fast multiple with ``round_to="auto"``
(:mod:`edgekit.compress.rounding`: counts off that multiple fall off onnxruntime's
NCHWc kernels, which is how pruned models came out slower than their parents).

The search never returns a model slower than its parent on the runtime it was pruned
for: the chosen candidate and the parent are re-measured in alternation in the same run
and the candidate must have the lower median, else the search fails with one line.
"""
from __future__ import annotations

import copy
import logging
import tempfile
from pathlib import Path
from typing import Any, Callable

from .. import formats
from ..checkpoint import Checkpoint
from ..errors import EdgekitError
from .rounding import resolve_round_to
from .selection import Selection, Target, select

log = logging.getLogger("edgekit.prune")


#: ``measure(checkpoint, runtime) -> median ms``; the default exports and times with edgekit.bench.
Measure = Callable[[Checkpoint, str], float]


def measure_latency(ckpt: Checkpoint, runtime: str, *, data: str | None = None, threads: int = 1,
                    min_seconds: float = 1.0, workdir: str | Path | None = None) -> float:
    """Median latency (ms, batch 1) of ``ckpt`` exported for ``runtime`` (onnxruntime, litert, or any
    local runtime of :mod:`edgekit.formats` whose format edgekit exports)."""
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        return _time(_export(ckpt, runtime, data, tmp), runtime, threads, min_seconds)


def _export(ckpt: Checkpoint, runtime: str, data: str | None, out_dir: str | Path) -> str:
    from ..exporters.pipeline import export

    recs = export(ckpt, _target_for(runtime), output_dir=out_dir, name="candidate", calib=data, parity_size=32,
                  force=True)
    return recs[0]["path"]


def _time(path: str, runtime: str, threads: int, min_seconds: float) -> float:
    from ..benchmark.run import bench

    row = bench(path, runtime=runtime, threads=threads, min_seconds=min_seconds)[0]
    if row.get("error"):
        raise EdgekitError(f"benchmarking on {runtime} failed: {row['error']}")
    return float(row["p50_ms"])


class _Meter:
    """The default :data:`Measure` of a search: each checkpoint exported once (kept while the search
    runs, so the parent and the chosen candidate can be timed again), timed on every call."""

    def __init__(self, data: str | None, workdir: str | Path | None, threads: int = 1, min_seconds: float = 1.0):
        self.data, self.threads, self.min_seconds = data, threads, min_seconds
        self._tmp = tempfile.TemporaryDirectory(dir=workdir)
        self._paths: dict[int, tuple[Checkpoint, str]] = {}  # id -> (checkpoint kept alive, artifact)

    def __call__(self, ckpt: Checkpoint, runtime: str) -> float:
        if id(ckpt) not in self._paths:
            out = Path(self._tmp.name) / str(len(self._paths))
            self._paths[id(ckpt)] = (ckpt, _export(ckpt, runtime, self.data, out))
        return _time(self._paths[id(ckpt)][1], runtime, self.threads, self.min_seconds)

    def close(self) -> None:
        self._paths.clear()
        self._tmp.cleanup()


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


def confirm_faster(parent: Checkpoint, child: Checkpoint, runtime: str, measure: Measure,
                   rounds: int = 3) -> dict[str, Any]:
    """Time ``parent`` and ``child`` alternately ``rounds`` times each (so load drifts hit both) and
    return the medians; raise one line if the child is not faster than its parent."""
    import statistics

    before, after = [], []
    for _ in range(max(1, rounds)):
        before.append(measure(parent, runtime))
        after.append(measure(child, runtime))
    b, a = statistics.median(before), statistics.median(after)
    if a >= b:
        raise EdgekitError(f"no pruned candidate runs faster than the unpruned model on {runtime}: re-measured "
                           f"{a:.3f} ms pruned against {b:.3f} ms unpruned (median of {len(before)} alternating runs)")
    return {"parent_ms": b, "pruned_ms": a, "speedup": b / a, "rounds": len(before)}


def select_for_latency(graph: Any, scores: dict[int, Any], ckpt: Checkpoint, target: Target, *, rank: str,
                       min_keep: float, round_to: int | str | None, data: str | None = None,
                       workdir: str | Path | None = None, iterations: int = 6, measure: Measure | None = None,
                       confirm_rounds: int = 3) -> tuple[Selection, dict[str, Any]]:
    """Bisect the MACs ratio until the measured latency on ``target.runtime`` meets ``target.value`` ms.

    ``round_to="auto"`` rounds kept channel counts to ``target.runtime``'s fast multiple
    (:func:`~edgekit.compress.rounding.round_to_for`). The model returned is faster than the
    parent on that runtime, confirmed by :func:`confirm_faster`; ``measure`` replaces the
    default export + :func:`edgekit.bench` timing (same signature as :data:`Measure`)."""
    runtime = target.runtime or ""
    own = measure is None
    if own:
        _target_for(runtime)
        measure = _Meter(data, workdir)
    try:
        return _search(graph, scores, ckpt, target, runtime, rank=rank, min_keep=min_keep,
                       round_to=resolve_round_to(round_to, runtime), iterations=iterations, measure=measure,
                       confirm_rounds=confirm_rounds)
    finally:
        if own:
            measure.close()


def _search(graph: Any, scores: dict[int, Any], ckpt: Checkpoint, target: Target, runtime: str, *, rank: str,
            min_keep: float, round_to: int | None, iterations: int, measure: Measure,
            confirm_rounds: int) -> tuple[Selection, dict[str, Any]]:
    trials: list[dict[str, Any]] = []

    def trial(ratio: float) -> tuple[Selection, float, Checkpoint]:
        sel = select(graph, scores, kind="macs", ratio=ratio, rank=rank, min_keep=min_keep, round_to=round_to)
        model = copy.deepcopy(graph.model)
        sub = type(graph)(model, graph.example)  # same structure: group indices line up
        sub.prune(sel.removal)
        cand = ckpt.derive(model, stage="prune-candidate")
        ms = measure(cand, runtime)
        trials.append({"macs_ratio": ratio, "latency_ms": ms})
        log.info("latency search: macs=%.3f -> %.3f ms on %s", ratio, ms, runtime)
        return sel, ms, cand

    base_ms = measure(ckpt, runtime)
    if base_ms <= target.value:
        raise EdgekitError(f"the unpruned model already runs in {base_ms:.3f} ms on {runtime} "
                           f"(target {target.value:g} ms): nothing to prune")
    # the floor: everything removable under min_keep
    floor = 0.05
    while True:
        try:
            lo_sel, lo_ms, lo_ckpt = trial(floor)
            lo = floor
            break
        except EdgekitError:
            floor *= 1.5
            if floor >= 1:
                raise
    rounding = f"round_to={round_to}" if round_to else "no channel rounding (try round_to='auto')"
    if lo_ms >= base_ms:
        raise EdgekitError(f"no pruned candidate runs faster than the unpruned model on {runtime}: the smallest "
                           f"model min_keep={min_keep:g} allows measures {lo_ms:.3f} ms against {base_ms:.3f} ms "
                           f"unpruned ({rounding})")
    if lo_ms > target.value:
        raise EdgekitError(f"latency target {target.value:g} ms on {runtime} is unreachable: the smallest model "
                           f"allowed by min_keep={min_keep:g} measures {lo_ms:.3f} ms (unpruned {base_ms:.3f} ms, "
                           f"{rounding})")
    best_sel, best_ms, best_ratio, best_ckpt = lo_sel, lo_ms, lo, lo_ckpt
    hi = 1.0
    for _ in range(iterations):
        mid = (lo + hi) / 2
        sel, ms, cand = trial(mid)
        if ms <= target.value:
            best_sel, best_ms, best_ratio, best_ckpt, lo = sel, ms, mid, cand, mid
        else:
            hi = mid
    confirmed = confirm_faster(ckpt, best_ckpt, runtime, measure, rounds=confirm_rounds)
    return best_sel, {"runtime": runtime, "target_ms": target.value, "unpruned_ms": base_ms,
                      "latency_ms": best_ms, "macs_ratio": best_ratio, "round_to": round_to, "trials": trials,
                      "confirmed": confirmed}
