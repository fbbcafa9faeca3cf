"""Benchmark: ``edgekit optimize`` on the built-in digits for compact_cnn, resnet18 (32 px) and
mobilenet_v2 (96 px), against compressing by hand (issue 14).

Each model is trained on digits by ``edgekit train`` (the commands are in :data:`MODELS`;
a checkpoint already in the work folder is reused). ``edgekit.optimize`` then searches for
the most accurate LiteRT artifact (1 thread, int8 by default, at most 1 point lost, CURL
with Fisher scoring and channel counts rounded to LiteRT's multiple, KD and fine-tuning recovery) under
budgets of 1/2, 1/4 and 1/8 of the original's fp32 LiteRT latency, all three in one output
folder per model so later budgets reuse the candidates earlier ones measured (the candidate
key is the plan, not the budget). The hand-made comparison is what a user would do without
``optimize``: CURL to 50 % MACs with ``prune``'s defaults and Fisher scoring (exact KL scoring
of mobilenet_v2 at 96 px takes over 20 minutes here), then int8 TFLite, on LiteRT at 1 thread.

Usage::

    python benchmarks/optimize_digits.py --work /tmp/opt_bench [--models compact_cnn,resnet18,mobilenet_v2]

writes ``benchmarks/optimize_digits.md`` and ``.json`` (a model's finished results are kept
in ``WORK/MODEL/result.json`` and reused, so a rerun after a kill continues).
"""
from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent
FRACTIONS = (0.5, 0.25, 0.125)
#: name -> (architecture, ``edgekit.train`` options); all on the built-in digits, seed 0.
MODELS: dict[str, tuple[str, dict[str, Any]]] = {
    "compact_cnn": ("compact_cnn", {"epochs": 8, "batch_size": 64, "lr": 0.1}),
    "resnet18": ("resnet18", {"epochs": 12, "small_input": False}),  # standard stem at 32 px: 37 M MACs
    "mobilenet_v2": ("mobilenet_v2", {"epochs": 15, "input_size": 96}),
}


def _command(arch: str, opts: dict[str, Any]) -> str:
    flags = []
    for k, v in opts.items():
        flag = "--" + k.replace("_", "-")
        flags.append(flag if v is True else f"--no-{k.replace('_', '-')}" if v is False else f"{flag} {v}")
    return f"edgekit train --arch {arch} --data digits {' '.join(flags)} --seed 0"


def _search(model: Path, work: Path, budget: str) -> dict[str, Any]:
    from edgekit.optimization.search import optimize

    t0 = time.perf_counter()
    doc = optimize(model, output=work / "optimize", budget=budget, progress=False)
    doc["bench_wall_seconds"] = time.perf_counter() - t0
    return doc


def by_hand(model: Path, work: Path) -> dict[str, Any]:
    """CURL to 50 % MACs (prune's defaults: Fisher scoring in 3 steps, its own recovery), int8 TFLite, LiteRT 1 thread with accuracy."""
    from edgekit.benchmark.run import bench
    from edgekit.compress.prune import prune
    from edgekit.exporters.pipeline import export

    t0 = time.perf_counter()
    pruned = prune(model, None, work / "hand_pruned.pt", target="macs=0.5", scoring="fisher", progress=False,
                   force=True)
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        rec = export(pruned, "tflite", precision="int8", output_dir=tmp, force=True)[0]
        row = bench(rec["path"], runtime="litert", threads=1, data=pruned.data_record["spec"])[0]
    return {"p50_ms": row["p50_ms"], "top1": (row.get("accuracy") or {}).get("top1"),
            "seconds": time.perf_counter() - t0}


def section(res: dict[str, Any]) -> list[str]:
    """One model's table: each budget's chosen (or closest) artifact, then the hand-made one."""
    orig = res["searches"][0]["original"]
    rows = {r["runtime"]: r for r in orig["rows"]}
    torch_ms = rows["torch"]["p50_ms"]
    lines = [f"## {res['model']}", "", f"`{res['train_command']}` ({res['train_seconds']:.0f} s; reused when 0). "
             f"Original: top-1 {orig['top1']:.2f} %; 1 thread p50: " + ", ".join(
                 f"{r['runtime']} fp32 {r['p50_ms']:.3f} ms" for r in orig["rows"]), "",
             "| budget | chosen plan | MACs | precision | top-1 % (vs original) | p50 ms | x torch eager | "
             "x fp32 LiteRT | x best fp32 runtime | candidates (new / reused) | search s |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    best = min((r for r in orig["rows"] if r["runtime"] != "torch"), key=lambda r: r["p50_ms"])
    for frac, doc in zip(FRACTIONS, res["searches"]):
        head = doc["chosen"] or doc["closest"]
        mark = "" if doc["chosen"] else " (none meets it within 1 point; closest)"
        macs = head.get("macs_ratio")
        lines.append(f"| {frac:g} x = {doc['budget']['ms']:.4f} ms | {head['label']}{mark} | "
                     f"{'-' if macs is None else f'{macs:.2f}'} | {head['precision']} | "
                     f"{head['top1']:.2f} ({head['top1'] - orig['top1']:+.2f}) | {head['p50_ms']:.4f} | "
                     f"{torch_ms / head['p50_ms']:.1f} | {orig['latency_ms'] / head['p50_ms']:.2f} | "
                     f"{best['p50_ms'] / head['p50_ms']:.2f} ({best['runtime']}) | "
                     f"{doc['computed']} / {doc['reused']} | {doc['bench_wall_seconds']:.0f} |")
    h = res["hand"]
    lines += ["", "By hand (`edgekit prune --target macs=0.5 --scoring fisher`, otherwise its defaults, then `edgekit export --target tflite "
              f"--precision int8`): top-1 {h['top1']:.2f} % ({h['top1'] - orig['top1']:+.2f}), {h['p50_ms']:.4f} ms "
              f"({torch_ms / h['p50_ms']:.1f} x torch eager, {orig['latency_ms'] / h['p50_ms']:.2f} x fp32 LiteRT), "
              f"{h['seconds']:.0f} s.", "", "Every candidate of the last search (grid and bisection, all budgets' "
              "candidates are in the same folder):", "", "| plan | MACs | precision | top-1 % | p50 ms | meets 1/8 | s |",
              "|---|---|---|---|---|---|---|"]
    for c in res["searches"][-1]["candidates"]:
        if c.get("error"):
            lines.append(f"| {c['label']} | - | - | - | - | refused: {str(c['error'])[:90]} | {c['seconds']:.0f} |")
            continue
        macs = c.get("macs_ratio")
        lines.append(f"| {c['label']} | {'-' if macs is None else f'{macs:.2f}'} | {c['precision']} | "
                     f"{c['top1']:.2f} | {c['p50_ms']:.4f} | {'yes' if c['meets_budget'] else 'no'} | "
                     f"{c['seconds']:.0f} |")
    lines += ["", f"Report of the last search: `{res['searches'][-1]['report']}`.", ""]
    return lines


def page(results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    import edgekit

    lines = ["# `edgekit optimize` on the built-in digits", "",
             f"Generated by `python benchmarks/optimize_digits.py --work {args.work} --models {args.models}` "
             f"(edgekit {edgekit.__version__}, torch {torch.__version__}, {platform.machine()}, "
             f"{time.strftime('%Y-%m-%d')}, 2-core CPU). LiteRT and onnxruntime at 1 thread, "
             "batch 1, p50; accuracy on each checkpoint's held-out digits split (360 images); budgets are fractions "
             "of the original's fp32 LiteRT p50 measured in the same search. Search defaults: int8, max drop 1 "
             "point, CURL grid 0.75/0.5/0.35/0.25/0.15/0.1 of the MACs with Fisher scoring in 3 re-scored steps and "
             "counts rounded to 16, each fraction recovered by 5 epochs of KD from the original and, as its own "
             "candidate, by 5 epochs of fine-tuning on the labels, 1 bisection step. `search s` is that budget's "
             "wall time (candidates found in the folder are reused, not recomputed).", ""]
    for res in results:
        lines += section(res)
    return "\n".join(lines)


def run_model(name: str, work: Path) -> dict[str, Any]:
    """Train (once), search the three budgets, compress by hand; cached in ``work/result.json``."""
    done = work / "result.json"
    if done.is_file():
        return json.loads(done.read_text())
    work.mkdir(parents=True, exist_ok=True)
    arch, opts = MODELS[name]
    model = work / "model.pt"
    t0 = time.perf_counter()
    if not model.exists():
        from edgekit.training.trainer import train

        train(arch, "digits", model, seed=0, progress=False, **opts)
    train_s = time.perf_counter() - t0
    probe = _search(model, work, "1000ms@litert")  # the original's rows (cached for the searches)
    fp32_ms = probe["original"]["latency_ms"]
    searches = [_search(model, work, f"{frac * fp32_ms:.6f}ms@litert") for frac in FRACTIONS]
    res = {"model": name, "train_command": _command(arch, opts), "train_seconds": train_s, "work": str(work),
           "fp32_litert_ms": fp32_ms, "searches": searches, "hand": by_hand(model, work)}
    done.write_text(json.dumps(res, indent=1, default=str) + "\n")
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", required=True)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--out", default=str(HERE / "optimize_digits.md"))
    args = ap.parse_args()
    work = Path(args.work)
    results = [run_model(name, work / name) for name in args.models.split(",")]
    Path(args.out).write_text(page(results, args) + "\n")
    Path(args.out).with_suffix(".json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    print(Path(args.out).read_text())


if __name__ == "__main__":
    main()
