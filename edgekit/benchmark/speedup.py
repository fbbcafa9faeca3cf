"""Speed-ups of bench rows: against the model's own torch row and against the original model.

A row's **lineage** (``{"sha256", "name", "parent_sha256", "root_sha256", "root_name"}``,
written by ``edgekit bench`` from the checkpoint, or from an artifact manifest's source
checkpoint) says which checkpoint the row measured and which original model (the lineage's
root: the checkpoint every pruned or distilled one descends from) it came from. Three
ratios follow, each ``reference p50 / row p50`` (above 1: the row is faster):

* ``own``: the same checkpoint's torch eager row: what the runtime, the precision and
  the export gave.
* ``original_torch``: the original model's torch eager row: what compression and export
  gave together.
* ``original_runtime``: the original model's row on the same runtime and delegate, its
  fp32 row where it has one (else the row at this row's precision): e.g. a pruned int8
  TFLite model against the original fp32 TFLite model.

A reference row has the same threads and batch and was measured on the same machine: one
in the same results file first, else one from another file of the same CPU and host.
Rows without a lineage (results from an older edgekit) fall back to the model name: their
own torch row is the torch row of the same model name, or the only torch model of their
results file; they have an original only when ``baseline`` names it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence


@dataclass(frozen=True)
class Speedup:
    """The three ratios of one row and the rows they were taken against (``None``: no such row)."""

    own: float | None = None
    own_model: str | None = None
    original: str | None = None
    original_torch: float | None = None
    original_runtime: float | None = None
    original_precision: str | None = None


def p50(row: dict[str, Any]) -> float | None:
    """The row's median latency (its mean where the runtime reports no percentiles)."""
    return row.get("p50_ms") if row.get("p50_ms") is not None else row.get("mean_ms")


def lineage(row: dict[str, Any]) -> dict[str, Any] | None:
    """The row's lineage record, or ``None`` for rows written without one."""
    rec = row.get("lineage")
    return rec if isinstance(rec, dict) and rec.get("sha256") else None


def _machine_key(row: dict[str, Any]) -> tuple[Any, ...] | None:
    m = row.get("machine")
    if not isinstance(m, dict):
        return None
    return tuple(m.get(k) for k in ("cpu", "hostname", "arch", "logical_cores", "usable_cores"))


def _same_model(a: dict[str, Any], b: dict[str, Any]) -> bool:
    la, lb = lineage(a), lineage(b)
    if la and lb:
        return la["sha256"] == lb["sha256"]
    return a["model"] == b["model"]


def original_name(row: dict[str, Any], baseline: str | None = None) -> str | None:
    """Name of the row's original model: ``baseline`` when given, else its lineage's root."""
    if baseline is not None:
        return baseline
    rec = lineage(row)
    if rec is None:
        return None
    if rec.get("root_sha256") in (None, rec["sha256"]):  # the row is an original itself
        return rec.get("name") or row["model"]
    return rec.get("root_name") or rec["name"]


def _is_original(cand: dict[str, Any], row: dict[str, Any], baseline: str | None) -> bool:
    rec = lineage(cand)
    if baseline is not None:
        return cand["model"] == baseline or bool(rec and rec.get("name") == baseline)
    own = lineage(row)
    if own is None:
        return False
    if rec is not None:
        return rec["sha256"] == (own.get("root_sha256") or own["sha256"])
    return cand["model"] == (own.get("root_name") or own["name"])


def _reference(row: dict[str, Any], pool: Sequence[dict[str, Any]],
               match: Callable[[dict[str, Any]], bool]) -> dict[str, Any] | None:
    """The first row of ``pool`` that ``match`` accepts at the row's threads, batch and
    machine, preferring one from the row's own results file. Per-frame (streaming) rows are
    compared only with per-frame rows: a frame is not a clip."""
    machine = _machine_key(row)
    cands = [c for c in pool if c["threads"] == row["threads"] and c["batch"] == row["batch"]
             and c.get("per") == row.get("per") and match(c)]
    same_file = [c for c in cands if c.get("_source") == row.get("_source")]
    if same_file:
        return same_file[0]
    other = [c for c in cands if machine is not None and _machine_key(c) == machine]
    return other[0] if other else None


def speedups(rows: Sequence[dict[str, Any]], baseline: str | None = None) -> list[Speedup]:
    """One :class:`Speedup` per row (failed rows get an empty one)."""
    ok = [r for r in rows if not r.get("error") and p50(r)]
    torch = [r for r in ok if r["runtime"] == "torch"]
    out: list[Speedup] = []
    for row in rows:
        mine = p50(row)
        if row.get("error") or not mine:
            out.append(Speedup())
            continue
        own = _reference(row, torch, lambda c: _same_model(c, row))
        if own is None and lineage(row) is None:  # today's fallback: the only torch model of the file
            same = [t for t in torch if t.get("_source") == row.get("_source") and t["threads"] == row["threads"]
                    and t["batch"] == row["batch"]]
            if len({t["model"] for t in same}) == 1:
                own = same[0]
        orig_torch = _reference(row, torch, lambda c: _is_original(c, row, baseline))

        def same_runtime(c: dict[str, Any], precision: str | None) -> bool:
            return (c["runtime"] == row["runtime"] and c.get("delegate") == row.get("delegate")
                    and c.get("precision") == precision and _is_original(c, row, baseline))

        orig_rt = _reference(row, ok, lambda c: same_runtime(c, "fp32")) or _reference(
            row, ok, lambda c: same_runtime(c, row.get("precision")))
        out.append(Speedup(
            own=p50(own) / mine if own else None, own_model=own["model"] if own else None,
            original=original_name(row, baseline),
            original_torch=p50(orig_torch) / mine if orig_torch else None,
            original_runtime=p50(orig_rt) / mine if orig_rt else None,
            original_precision=orig_rt.get("precision") if orig_rt else None))
    return out
