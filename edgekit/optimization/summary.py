"""``optimize.json``, the report of every row, and the one-screen summary of a search.

``optimize.json`` (``format: edgekit.optimize``) holds: the budget and settings; the
original's top-1 and its rows (torch eager, fp32 onnxruntime and LiteRT p50); ``chosen``
(artifact path, measured p50, top-1, drop against the original, plan, precision, and the
speed-up against each original row) or None; ``meets_budget`` and a one-line ``message``
saying which candidate was chosen, or that none meets the budget within ``max_drop``
and which came ``closest`` (among those under the budget, the most accurate; else the most
accurate recovery of the fastest MACs fraction); every candidate (plan, key, folder, p50, top-1, drop, reused or computed); the
accuracy-latency ``pareto`` front of the candidates (:func:`edgekit.benchmark.plots.pareto_front`);
the ``results`` file and ``report`` written by :func:`edgekit.benchmark.report.report`.
"""
from __future__ import annotations

import sys
import time
from typing import Any

from ..fileio import write_json
from .baseline import reference_top1
from .candidate import Candidate, Search, part_top1

FORMAT = "edgekit.optimize"
VERSION = 1


def document(search: Search, originals: list[dict[str, Any]], candidates: list[Candidate],
             reference: float) -> dict[str, Any]:
    """The optimize.json document (writes the results file and the report on the way; the
    caller adds ``wall_seconds``, the search's time with the report)."""
    budget, cfg = search.budget, search.cfg
    select_reference = reference_top1(originals, "select")
    records = [c.record(budget, {"report": reference, "select": select_reference}) for c in candidates]
    eligible = [r for r in records if r["meets_budget"] and r["select_drop"] is not None
                and r["select_drop"] <= cfg.max_drop]
    chosen = max(eligible, key=lambda r: (r["select_top1"], -r["p50_ms"]), default=None)
    closest = None if chosen else _closest(records)
    head = chosen or closest
    if head is not None:
        head["speedups"] = speedups(originals, head["p50_ms"])
    results, report = _report(search, originals, candidates)
    return {
        "format": FORMAT, "version": VERSION, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": " ".join(sys.argv), "checkpoint": str(search.ckpt.path),
        "budget": {"text": str(budget), "ms": budget.ms, "runtime": budget.runtime, "target": budget.target,
                   "threads": cfg.threads, "max_drop": cfg.max_drop, "precision": cfg.precision},
        "data": search.bundle.record,
        "selection": _selection(originals),
        "original": {"name": search.ckpt.lineage["name"], "sha256": search.ckpt.sha256, "top1": reference,
                     "select_top1": select_reference,
                     "latency_ms": _original_latency(originals, budget.runtime),
                     "rows": [_row_summary(r) for r in originals]},
        "meets_budget": chosen is not None, "message": _message(search, chosen, closest, len(records)),
        "chosen": chosen, "closest": closest, "candidates": records, "pareto": pareto(records),
        "output": str(search.root), "results": str(results), "report": str(report),
        "computed": sum(not c.reused for c in candidates), "reused": sum(c.reused for c in candidates),
        "wall_seconds": None, "settings": cfg.as_dict(),
    }


def _closest(records: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Under the budget but losing too much: the most accurate of those; else the fastest model,
    i.e. the most accurate recovery of the fastest candidate's MACs fraction (its recoveries share
    one architecture, so their latencies differ by timing noise alone)."""
    ok = [r for r in records if not r["error"] and r["p50_ms"] is not None]
    under = [r for r in ok if r["meets_budget"] and r["select_top1"] is not None]
    if under:
        return max(under, key=lambda r: r["select_top1"])
    fastest = min(ok, key=lambda r: r["p50_ms"], default=None)
    if fastest is None:
        return None
    arch = _architecture(fastest)
    same = [r for r in ok if _architecture(r) == arch and r["select_top1"] is not None]
    return max(same, key=lambda r: (r["select_top1"], -r["p50_ms"]), default=fastest)


def _selection(originals: list[dict[str, Any]]) -> dict[str, Any]:
    """How the choice is kept apart from the numbers reported (optimize.json's ``selection``)."""
    halves = next(((r.get("accuracy") or {}).get("halves") for r in originals
                   if (r.get("accuracy") or {}).get("halves")), None) or {}
    return {"choose_on": "select", "report_on": "report",
            "select_n": (halves.get("select") or {}).get("n"), "report_n": (halves.get("report") or {}).get("n"),
            "seed": halves.get("seed"),
            "note": "the held-out split is cut into two fixed class-stratified halves: candidates are compared "
                    "and max_drop checked on 'select'; every top1 and drop reported is on 'report', "
                    "which the choice never saw"}


def _architecture(record: dict[str, Any]) -> tuple[Any, bool]:
    """What fixes a candidate's architecture: its MACs fraction and whether its counts were rounded."""
    return record["plan"]["macs"], bool(record["plan"].get("unrounded"))


def _message(search: Search, chosen: dict[str, Any] | None, closest: dict[str, Any] | None, n: int) -> str:
    budget, cfg = search.budget, search.cfg
    if chosen is not None:
        return (f"chosen {chosen['label']} ({chosen['precision']}): {chosen['p50_ms']:.3f} ms on {budget.runtime} "
                f"<= {budget.ms:g} ms, top-1 {chosen['top1']:.2f}% ({0.0 - chosen['drop']:+.2f} points against the original)")
    lead = f"no candidate of {n} meets {budget} within {cfg.max_drop:g} points"
    if closest is None:
        return f"{lead}; every candidate failed"
    if closest["meets_budget"]:
        return (f"{lead}; closest: {closest['label']} ({closest['precision']}) meets it at {closest['p50_ms']:.3f} ms "
                f"but loses {closest['drop']:.2f} points")
    return (f"{lead}; closest: {closest['label']} ({closest['precision']}) at {closest['p50_ms']:.3f} ms, "
            f"{closest['p50_ms'] / budget.ms:.3g}x the budget")


def _row_summary(row: dict[str, Any]) -> dict[str, Any]:
    """An original row as optimize.json lists it: ``top1`` on the report half, as every candidate's
    (so the two compare), ``top1_all`` on the whole held-out split (as ``edgekit bench`` reports it)."""
    return {"runtime": row.get("runtime"), "precision": row.get("precision"), "artifact": row.get("artifact"),
            "p50_ms": row.get("p50_ms"), "top1": part_top1(row, "report"),
            "top1_all": (row.get("accuracy") or {}).get("top1"), "error": row.get("error")}


def _original_latency(originals: list[dict[str, Any]], runtime: str) -> float | None:
    """The original's fp32 p50 on the budget's runtime (None when it has no such row)."""
    return next((r["p50_ms"] for r in originals if r.get("runtime") == runtime and not r.get("error")), None)


def speedups(originals: list[dict[str, Any]], p50_ms: float | None) -> dict[str, Any]:
    """Per original row (torch, fp32 onnxruntime, fp32 litert): its p50 and its p50 / ``p50_ms``."""
    from ..benchmark.speedup import p50

    out: dict[str, Any] = {}
    for row in originals:
        ref = p50(row) if not row.get("error") else None
        if ref and p50_ms:
            out[str(row["runtime"])] = {"precision": row.get("precision"), "p50_ms": ref, "speedup": ref / p50_ms}
    return out


def pareto(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The candidates no other beats on both latency (lower) and top-1 (higher), fastest first."""
    from ..benchmark.plots import pareto_front

    pts = [r for r in records if not r["error"] and r["p50_ms"] is not None and r["top1"] is not None]
    front = pareto_front([(r["p50_ms"], r["top1"]) for r in pts])
    return [{"label": pts[i]["label"], "key": pts[i]["key"], "p50_ms": pts[i]["p50_ms"], "top1": pts[i]["top1"],
             "meets_budget": pts[i]["meets_budget"]} for i in front]


def _report(search: Search, originals: list[dict[str, Any]], candidates: list[Candidate]) -> tuple[Any, Any]:
    """``DIR/results.json`` (original rows + every candidate's row) and ``DIR/report/``."""
    from ..benchmark.machine import machine_info
    from ..benchmark.report import report
    from ..benchmark.schema import results_document

    rows = list(originals) + [c.row for c in candidates]
    results = search.root / "results.json"
    write_json(results, results_document(rows, machine_info(), " ".join(sys.argv)))
    title = f"edgekit optimize: {search.ckpt.lineage['name']}, budget {search.budget}"
    return results, report([results], search.root / "report", title=title, force=True)


def summary_lines(doc: dict[str, Any]) -> list[str]:
    """The one-screen summary: original, every candidate, the choice and its speed-ups, where things are."""
    b, orig = doc["budget"], doc["original"]
    lines = [f"edgekit optimize: {orig['name']} on {doc['data'].get('spec')}, budget {b['text']} at {b['threads']} "
             f"thread{'s' if b['threads'] > 1 else ''}, max drop {b['max_drop']:g} points",
             f"original: top-1 {orig['top1']:.2f}%  " + "  ".join(
                 f"{r['runtime']} {r['precision'] or ''} {r['p50_ms']:.3f} ms".replace("  ", " ")
                 for r in orig["rows"] if r["p50_ms"] is not None)]
    front = {p["key"] for p in doc["pareto"]}
    lines.append(f"candidates: {len(doc['candidates'])} ({doc['computed']} computed, {doc['reused']} reused)")
    lines.append(f"  {'plan':<18} {'precision':<9} {'p50 ms':>9} {'top-1 %':>8} {'drop':>6}  budget  pareto")
    for c in doc["candidates"]:
        if c["error"]:
            lines.append(f"  {c['label']:<18} failed: {str(c['error'])[:80]}")
            continue
        top1 = f"{c['top1']:.2f}" if c["top1"] is not None else "-"
        drop = f"{c['drop']:+.2f}" if c["drop"] is not None else "-"
        lines.append(f"  {c['label']:<18} {str(c['precision']):<9} {c['p50_ms']:>9.3f} {top1:>8} {drop:>6}  "
                     f"{'yes' if c['meets_budget'] else 'no':<6}  {'*' if c['key'] in front else ''}")
    head = doc["chosen"] or doc["closest"]
    lines.append(doc["message"])
    if head is not None:
        sp = ", ".join(f"{v['speedup']:.2f}x vs {rt} {v['precision'] or ''}".rstrip()
                       for rt, v in head.get("speedups", {}).items())
        lines.append(f"{'chosen' if doc['chosen'] else 'closest'}: {head['artifact']}" + (f"  ({sp})" if sp else ""))
    lines.append(f"report: {doc['report']}  optimize.json: {doc['output']}/optimize.json  "
                 f"wall {doc['wall_seconds']:.1f} s")
    return lines
