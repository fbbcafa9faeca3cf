"""``edgekit quickstart``: the main job end to end on built-in data, in minutes on 2 CPU cores.

The whole pipeline (train, prune, distill, export, bench, report) on scikit-learn's digits
(32x32), everything under one folder:

1. **train** edgekit's ``compact_cnn`` (``model.pt``) and evaluate it;
2. **prune** it with CURL to half its MACs, with a short fine-tune (``pruned.pt``);
3. **distill** it into the half-width ``compact_cnn_s`` student (``student.pt``);
4. **export** the model to every target this machine can produce (fp32, plus int8
   TFLite), and the pruned model and the student to ONNX and TFLite, each artifact
   behind the parity gate (``artifacts/``);
5. **bench** every ONNX and TFLite artifact at 1 thread with digits accuracy
   (``results.json``) and write the **report** (``report/report.html``).

A summary table shows accuracy, size and measured latency of each model side by side.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

from .errors import EdgekitError
from .fileio import write_json

DATA = "digits"
ARCH = "compact_cnn"
STUDENT = "compact_cnn_s"


def _train(out: Path, epochs: int, res: dict[str, Any]) -> None:
    from .evaluation import evaluate
    from .training.trainer import train

    train(ARCH, DATA, out / "model.pt", epochs=epochs, batch_size=64, lr=0.1, force=True)
    res["models"]["model"] = {"checkpoint": "model.pt", **_scores(evaluate(out / "model.pt", DATA))}


def _prune(out: Path, epochs: int, res: dict[str, Any]) -> None:
    from .compress.prune import prune
    from .evaluation import evaluate

    ck = prune(out / "model.pt", DATA, out / "pruned.pt", target="macs=0.5", finetune_epochs=max(1, epochs // 4),
               proxy_size=64, force=True)
    res["models"]["pruned"] = {"checkpoint": "pruned.pt", **_scores(evaluate(ck, DATA)),
                               "after_prune_top1": ck.metrics.get("top1_pruned_bn")}


def _distill(out: Path, epochs: int, res: dict[str, Any]) -> None:
    from .compress.distill import distill
    from .evaluation import evaluate

    ck = distill(out / "model.pt", STUDENT, DATA, out / "student.pt", epochs=epochs, force=True)
    res["models"]["student"] = {"checkpoint": "student.pt", "method": ck.provenance.get("method"),
                                **_scores(evaluate(ck, DATA))}


def _export(out: Path, epochs: int, res: dict[str, Any]) -> None:
    from .exporters.pipeline import available_targets, export

    arts = out / "artifacts"
    targets = [t for t in available_targets() if t != "tensorrt" or _has_cuda()]
    manifests = export(out / "model.pt", targets, output_dir=arts, force=True)
    if "tflite" in targets:
        manifests += export(out / "model.pt", "tflite", precision="int8", output_dir=arts, force=True)
    for name in ("pruned", "student"):
        manifests += export(out / f"{name}.pt", [t for t in ("onnx", "tflite") if t in targets],
                            output_dir=arts, force=True)
    res["artifacts"] = [{"file": m["file"], "model": m["model"], "target": m["target"], "precision": m["precision"],
                         "size_mb": round(m["size_bytes"] / 1e6, 3), "parity": _parity_line(m["parity"])}
                        for m in manifests]


def _bench(out: Path, epochs: int, res: dict[str, Any]) -> None:
    from .benchmark.report import report
    from .benchmark.run import bench

    # The checkpoints are benchmarked too: the torch rows are the report's speed-up baseline.
    files = [out / f"{m['checkpoint']}" for m in res["models"].values()]
    files += sorted(p for p in (out / "artifacts").iterdir() if p.suffix in (".onnx", ".tflite"))
    rows = bench(files, threads=(1,), warmup=5, runs=30, data=DATA, output=out / "results.json", force=True)
    res["bench"] = [{"model": r["model"], "file": Path(r["artifact"]).name, "runtime": r["runtime"],
                     "precision": r.get("precision"),
                     "p50_ms": r.get("p50_ms"), "p90_ms": r.get("p90_ms"), "error": r.get("error"),
                     "top1": (r.get("accuracy") or {}).get("top1")} for r in rows]
    res["report"] = str(report([out / "results.json"], out / "report", force=True))


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _scores(ev: dict[str, Any]) -> dict[str, Any]:
    return {"val_top1": round(ev["top1"], 2), "val_top5": round(ev["top5"], 2)}


def _parity_line(p: dict[str, Any]) -> str:
    if p.get("mode") == "structural":
        return "structural (no runtime here)"
    agree = p.get("top1_agreement")
    return f"cos={p['cosine']:.5f}" + (f" agree={100 * agree:.1f}%" if agree is not None else "")


Stage = Callable[[Path, int, dict[str, Any]], None]
STAGES: list[tuple[str, Stage]] = [("train", _train), ("prune", _prune), ("distill", _distill),
                                   ("export", _export), ("bench", _bench)]


def quickstart(output: str | Path = "quickstart", *, epochs: int = 8, force: bool = False) -> dict[str, Any]:
    """Run every stage under ``output``; returns (and writes ``summary.json``) the results."""
    out = Path(output)
    if out.exists() and any(out.iterdir()) and not force:
        raise EdgekitError(f"{out} is not empty; pass --force to reuse it")
    out.mkdir(parents=True, exist_ok=True)
    res: dict[str, Any] = {"data": DATA, "arch": ARCH, "models": {}, "timings_s": {}}
    t_all = time.perf_counter()
    for name, stage in STAGES:
        t0 = time.perf_counter()
        stage(out, epochs, res)
        res["timings_s"][name] = round(time.perf_counter() - t0, 1)
        write_json(out / "summary.json", res)
    res["timings_s"]["total"] = round(time.perf_counter() - t_all, 1)
    write_json(out / "summary.json", res)
    _print_summary(out, res)
    return res


def _print_summary(out: Path, res: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    import edgekit

    from .registry import count_macs, count_params

    console = Console()
    table = Table(title=f"edgekit quickstart: {ARCH} on {DATA} (32x32), latency at 1 thread")
    for col in ("model", "params (M)", "MACs (M)", "val top-1", "torch p50", "onnxruntime p50", "litert p50"):
        table.add_column(col, justify="left" if col == "model" else "right")
    lat = {(b["model"], b["runtime"], b["precision"]): b for b in res.get("bench", [])}
    for name, m in res["models"].items():
        ck = edgekit.load_checkpoint(out / m["checkpoint"])
        params = count_params(ck.model) / 1e6
        macs = count_macs(ck.model, (1, *ck.input_spec["shape"])) / 1e6

        def p50(runtime: str) -> str:
            row = lat.get((name, runtime, "fp32"))
            return f"{row['p50_ms']:.3f} ms" if row and row.get("p50_ms") else "-"

        table.add_row(name, f"{params:.3f}", f"{macs:.2f}", f"{m['val_top1']:.2f}%",
                      p50("torch"), p50("onnxruntime"), p50("litert"))
    console.print(table)
    arts = Table(title="artifacts (each passed its parity gate against PyTorch)")
    for col in ("file", "target", "precision", "size (MB)", "parity"):
        arts.add_column(col)
    for a in res.get("artifacts", []):
        arts.add_row(a["file"], a["target"], a["precision"], f"{a['size_mb']:.3f}", a["parity"])
    console.print(arts)
    t = res["timings_s"]
    console.print("seconds: " + ", ".join(f"{k} {v}" for k, v in t.items()))
    if res.get("report"):
        console.print(f"report: {res['report']}")
    console.print(f"everything is under {out}/ (summary.json, checkpoints, artifacts/, results.json, report/)")
