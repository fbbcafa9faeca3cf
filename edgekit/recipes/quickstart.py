"""``edgekit quickstart``: the main job end to end on built-in data, in minutes on 2 CPU cores.

The quickstart is a recipe, ``models/quickstart.yaml``: ``edgekit quickstart -o DIR
--epochs N`` is ``edgekit run quickstart -o DIR --set training.epochs=N`` (the same
runner, stages and cache, :func:`edgekit.recipes.run.run_recipe`) followed by a summary.
On scikit-learn's digits (32x32) it

1. **trains** edgekit's ``compact_cnn`` (``train/model.pt``);
2. **distils** it into the half-width ``compact_cnn_s`` student (``distill/model.pt``);
3. **exports** both to ONNX and TFLite at fp32, each behind the parity gate (``export/``);
4. **benches** the checkpoints (PyTorch eager) and the artifacts at 1 thread with accuracy
   on the held-out split, and writes the report (``bench/``);
5. **optimizes** the trained model (``edgekit optimize``, ``optimize/``) against half its
   fp32 LiteRT latency with one fixed plan: int8 alone, and CURL to half the MACs with KD
   recovery and int8, each measured as it would ship.

The summary (``summary.json`` and the screen) ends with the **headline**: the optimised
artifact's top-1 and latency against the original model in PyTorch eager and against its
plain fp32 export on the same runtime, at 1 thread. All of them come from
``optimize/optimize.json``, measured by the same search in this run, accuracies on the
validation split the checkpoint's training held apart.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ..errors import EdgekitError
from ..fileio import check_writable, write_json
from ..formats import RUNTIMES

RECIPE = "quickstart"
#: The recipe's checkpoint stages as the summary names them.
MODELS = {"train": "model", "distill": "student"}
#: How the headline names a runtime (the runtime table's label, :mod:`edgekit.formats`).
RUNTIME_NAMES = {name: rt.display for name, rt in RUNTIMES.items()}


def quickstart(output: str | Path = "quickstart", *, epochs: int | None = None, force: bool = False,
               progress: bool = True) -> dict[str, Any]:
    """Run the quickstart recipe into ``output`` and return (and write ``summary.json``) its summary.

    ``epochs``: the training (and distillation) epochs; None keeps the recipe's. A
    non-empty ``output`` needs ``force``; stages finished there with the same settings are
    then read back, not rerun (the recipe runner's cache)."""
    from ..numbers import epoch_count, optional
    from .run import run_recipe

    epochs = optional(epoch_count, "epochs", epochs)
    out = check_writable(output, folder=True)
    if out.exists() and any(out.iterdir()) and not force:
        raise EdgekitError(f"{out} is not empty; pass --force to reuse it")
    t0 = time.perf_counter()
    overrides = [f"training.epochs={epochs}"] if epochs is not None else []
    run = run_recipe(RECIPE, out, overrides=overrides, progress=progress)
    res = summarize(out, run)
    res["timings_s"]["total"] = round(time.perf_counter() - t0, 1)
    write_json(out / "summary.json", res)
    if progress:
        _print_summary(out, res)
    return res


def summarize(out: Path, run: dict[str, Any]) -> dict[str, Any]:
    """The summary of a finished quickstart run (``run``: its ``run.json`` document)."""
    import json

    stages = {s["stage"]: s for s in run["stages"]}
    exported = stages["export"]["outputs"]
    rows = stages["bench"]["outputs"]["rows"]
    opt = json.loads(Path(stages["optimize"]["outputs"]["optimize_json"]).read_text())
    stage_of = {a["path"]: a["model"] for a in exported["artifacts"]}
    stage_of.update({path: model for model, path in exported["checkpoints"].items()})
    bench = [{"model": MODELS.get(stage_of.get(r["artifact"], ""), stage_of.get(r["artifact"])),
              "file": _under(out, r["artifact"]),
              **{k: r[k] for k in ("runtime", "precision", "threads", "p50_ms", "top1", "error")}} for r in rows]
    models = {}
    for stage, name in MODELS.items():
        torch_row = next((b for b in bench if b["model"] == name and b["runtime"] == "torch"), None)
        models[name] = {"stage": stage, "checkpoint": stages[stage]["outputs"]["checkpoint"],
                        "val_top1": torch_row["top1"] if torch_row else None}
    return {
        "recipe": run["recipe"], "recipe_path": run["path"], "overrides": run["overrides"],
        "arch": run["resolved"]["arch"], "student": run["resolved"]["distill"]["student"],
        "data": run["resolved"]["data"], "input_size": run["resolved"]["training"].get("input_size"),
        "epochs": run["resolved"]["training"]["epochs"],
        "models": models,
        "artifacts": [{"model": MODELS[a["model"]], "file": Path(a["path"]).name, "target": a["target"],
                       "precision": a["precision"], "parity": _parity_line(a.get("parity") or {})}
                      for a in exported["artifacts"]],
        "bench": bench, "report": stages["bench"]["outputs"].get("report"),
        "optimize": {"json": stages["optimize"]["outputs"]["optimize_json"], "budget": opt["budget"],
                     "message": opt["message"], "report": opt["report"],
                     "candidates": [{k: c.get(k) for k in ("label", "precision", "artifact", "p50_ms", "top1", "drop",
                                                           "meets_budget", "error")} for c in opt["candidates"]]},
        "timings_s": {s["stage"]: s["seconds"] for s in run["stages"]},
        "reused": [s["stage"] for s in run["stages"] if s["reused"]],
        "headline": headline(opt),
    }


def headline(opt: dict[str, Any]) -> dict[str, Any]:
    """The optimised artifact (the chosen one, else the closest) against the original model in
    PyTorch eager and in its fp32 export on the artifact's runtime, from one ``optimize.json``:
    every number was measured by that search, at its threads, on the checkpoint's held-out split.
    ``line`` is the sentence the quickstart's summary ends with."""
    budget, orig = opt["budget"], opt["original"]
    head = opt.get("chosen") or opt.get("closest")
    res: dict[str, Any] = {"meets_budget": bool(opt.get("meets_budget")), "threads": budget["threads"],
                           "runtime": budget["runtime"], "budget_ms": budget["ms"], "max_drop": budget["max_drop"],
                           "message": opt["message"]}
    if head is None or head.get("p50_ms") is None or head.get("top1") is None:
        res["line"] = f"headline: no optimised artifact: {opt['message']}"
        return res
    references = []
    for runtime in ("torch", budget["runtime"]):
        row = next((r for r in orig["rows"] if r["runtime"] == runtime and (r["precision"] or "fp32") == "fp32"
                    and not r["error"] and r["p50_ms"] and r["top1"] is not None), None)
        if row is None:
            continue
        references.append({"runtime": runtime, "precision": "fp32", "name": _reference_name(runtime),
                           "artifact": row["artifact"], "top1": row["top1"], "p50_ms": row["p50_ms"],
                           "speedup": row["p50_ms"] / head["p50_ms"], "delta_points": head["top1"] - row["top1"]})
    res.update({"label": head["label"], "precision": head["precision"], "artifact": head["artifact"],
                "top1": head["top1"], "p50_ms": head["p50_ms"], "against": references})
    res["line"] = _line(res)
    return res


def _under(out: Path, path: str) -> str:
    """``path`` relative to the run's folder (``export/train.fp32.onnx``), else as it is."""
    try:
        return str(Path(path).resolve().relative_to(out.resolve()))
    except ValueError:
        return path


def _reference_name(runtime: str) -> str:
    name = RUNTIME_NAMES.get(runtime, runtime)
    return name if runtime == "torch" else f"fp32 {name}"


def _line(h: dict[str, Any]) -> str:
    what = "optimised" if h["meets_budget"] else \
        f"closest (no candidate met {h['budget_ms']:.4g} ms within {h['max_drop']:g} points)"
    threads = f"{h['threads']} thread{'s' if h['threads'] > 1 else ''}"
    parts = [f"headline: {what} {h['label']} {h['precision']} on {RUNTIME_NAMES.get(h['runtime'], h['runtime'])}, "
             f"{threads}: top-1 {h['top1']:.2f}% at {h['p50_ms']:.4g} ms"]
    for ref in h["against"]:
        parts.append(f"vs original {ref['name']} {ref['top1']:.2f}% at {ref['p50_ms']:.4g} ms: "
                     f"{ref['speedup']:.2f}x faster, {ref['delta_points']:+.2f} points")
    return "; ".join(parts)


def _parity_line(p: dict[str, Any]) -> str:
    if p.get("mode") == "structural":
        return "structural (no runtime here)"
    if p.get("cosine") is None:
        return "-"
    agree = p.get("top1_agreement")
    return f"cos={p['cosine']:.5f}" + (f" agree={100 * agree:.1f}%" if agree is not None else "")


def _print_summary(out: Path, res: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    import edgekit

    from ..registry import count_macs, count_params

    console = Console()
    table = Table(title=f"edgekit quickstart: {res['arch']} on {res['data']} ({res['input_size']} px) and its "
                        f"student {res['student']}, latency at 1 thread")
    for col in ("model", "params (M)", "MACs (M)", "val top-1", "torch p50", "onnxruntime p50", "litert p50"):
        table.add_column(col, justify="left" if col == "model" else "right")
    lat = {(b["model"], b["runtime"], b["precision"]): b for b in res["bench"]}
    for name, m in res["models"].items():
        ck = edgekit.load_checkpoint(m["checkpoint"])
        params = count_params(ck.model) / 1e6
        macs = count_macs(ck.model, (1, *ck.input_spec["shape"])) / 1e6

        def p50(runtime: str) -> str:
            row = lat.get((name, runtime, "fp32"))
            return f"{row['p50_ms']:.3f} ms" if row and row.get("p50_ms") else "-"

        top1 = f"{m['val_top1']:.2f}%" if m["val_top1"] is not None else "-"
        table.add_row(name, f"{params:.3f}", f"{macs:.2f}", top1,
                      p50("torch"), p50("onnxruntime"), p50("litert"))
    console.print(table)
    arts = Table(title="fp32 artifacts (each passed its parity gate against PyTorch)")
    for col in ("file", "target", "precision", "parity"):
        arts.add_column(col)
    for a in res["artifacts"]:
        arts.add_row(a["file"], a["target"], a["precision"], a["parity"])
    console.print(arts)
    opt = res["optimize"]
    b = opt["budget"]
    points = f"{b['max_drop']:g} point{'' if b['max_drop'] == 1 else 's'}"
    cands = Table(title=f"edgekit optimize: budget {b['text']}, losing at most {points}")
    widest = max((len(c["label"]) for c in opt["candidates"]), default=4)
    # narrow headers and bare numbers: the plan labels (macs0.50+finetune3) fit 80 columns uncut
    for col in ("plan", "precision", "p50 ms", "top-1 %", "vs orig.", "in budget"):
        cands.add_column(col, justify="left" if col in ("plan", "precision") else "right",
                         min_width=widest if col == "plan" else None, no_wrap=col == "plan")
    for c in opt["candidates"]:
        if c["error"]:
            cands.add_row(c["label"], "-", "-", "-", "-", f"failed: {str(c['error'])[:60]}")
            continue
        cands.add_row(c["label"], str(c["precision"]), f"{c['p50_ms']:.4g}",
                      f"{c['top1']:.2f}" if c["top1"] is not None else "-",
                      f"{0.0 - c['drop']:+.2f}" if c["drop"] is not None else "-", "yes" if c["meets_budget"] else "no")
    console.print(cands)
    console.print(opt["message"], soft_wrap=True)
    console.print("seconds: " + ", ".join(f"{k} {v}" for k, v in res["timings_s"].items()), soft_wrap=True)
    console.print(f"reports: {res['report']} (bench), {opt['report']} (optimize)", soft_wrap=True)
    console.print(f"everything is under {out}/ (summary.json, run.json, train/, distill/, export/, bench/, "
                  f"optimize/); rerun it with: edgekit run {RECIPE} -o {out}", soft_wrap=True)
    print(res["headline"]["line"], flush=True)  # one line, never wrapped: what the run was for
