"""``edgekit quickstart``: the main job end to end on built-in data, in minutes on 2 CPU cores.

Trains edgekit's compact CNN on scikit-learn's digits (32x32), evaluates it, and
runs every later stage on the result, writing everything under one folder and
printing a summary table. Each stage is a function of the folder and the previous
results, so the sequence reads as the pipeline in DESIGN.md.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from .errors import EdgekitError
from .fileio import write_json

DATA = "digits"
ARCH = "compact_cnn"


def _train(out: Path, epochs: int, results: dict[str, Any]) -> None:
    from .train.trainer import train

    ckpt = train(ARCH, DATA, out / "model.pt", epochs=epochs, batch_size=64, lr=0.1, force=True)
    results["model"] = {"checkpoint": str(out / "model.pt"), "val_top1": ckpt.metrics.get("val_top1"),
                        "images_per_s": ckpt.metrics.get("images_per_s")}


def _evaluate(out: Path, epochs: int, results: dict[str, Any]) -> None:
    from .evaluate import evaluate

    results["model"]["eval"] = evaluate(out / "model.pt", DATA)


STAGES = [("train", _train), ("evaluate", _evaluate)]


def quickstart(output: str | Path = "quickstart", *, epochs: int = 8, force: bool = False) -> dict[str, Any]:
    """Run every stage under ``output``; returns (and writes ``summary.json``) the results."""
    out = Path(output)
    if out.exists() and any(out.iterdir()) and not force:
        raise EdgekitError(f"{out} is not empty; pass --force to reuse it")
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"data": DATA, "arch": ARCH, "timings_s": {}}
    t_all = time.perf_counter()
    for name, stage in STAGES:
        t0 = time.perf_counter()
        stage(out, epochs, results)
        results["timings_s"][name] = round(time.perf_counter() - t0, 2)
    results["timings_s"]["total"] = round(time.perf_counter() - t_all, 2)
    write_json(out / "summary.json", results)
    _print_summary(out, results)
    return results


def _print_summary(out: Path, results: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"edgekit quickstart: {ARCH} on {DATA}")
    table.add_column("stage")
    table.add_column("result")
    table.add_column("seconds", justify="right")
    m = results["model"]["eval"]
    table.add_row("train + eval", f"val top-1 {m['top1']:.2f}%  top-5 {m['top5']:.2f}%",
                  f"{results['timings_s']['train'] + results['timings_s']['evaluate']:.1f}")
    table.add_row("total", f"everything under {out}/", f"{results['timings_s']['total']:.1f}")
    Console().print(table)
