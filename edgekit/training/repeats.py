"""Repeated training runs, reported as mean ± std: ``edgekit train --repeats N``.

One run is one number; small validation sets (a tabular set of 30 rows, a few hundred
images) move a score by whole points from one seed to the next. ``--repeats N`` trains
N models whose seeds are ``seed, seed+1, ..., seed+N-1``. The seed also draws the
train/validation split (unless the spec fixes ``seed=``), so the spread covers both the
initialisation and the choice of held-apart data, as the NFL/NRS paper's repeated rounds
do (Cao et al., "Neural Random Subspace", Pattern Recognition 2021). Run ``k`` is written
to ``STEM.seedS.SUFFIX`` beside ``output`` (each is an ordinary checkpoint, scored on its
own split), and the summary to ``OUTPUT.repeats.json``.
"""
from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from ..fileio import JSON_KIND, check_writable, data_input, output_path, write_json
from ..numbers import positive_int


def run_path(output: str | Path, seed: int) -> Path:
    """Where the run with ``seed`` is written: ``m.ckpt`` -> ``m.seed3.ckpt``."""
    output = Path(output)
    return output.with_name(f"{output.stem}.seed{seed}{output.suffix}")


def summary_path(output: str | Path) -> Path:
    output = Path(output)
    return output.with_name(output.name + ".repeats.json")


def mean_std(values: list[float]) -> dict[str, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0}


def train_repeats(arch: str, data: str, output: str | Path, repeats: int, *, seed: int = 0, force: bool = False,
                  progress: bool = True, **options: Any) -> dict[str, Any]:
    """Train ``repeats`` models (seeds ``seed`` .. ``seed + repeats - 1``) and summarise their
    validation metrics as mean ± std; returns the summary (also written as JSON)."""
    from .trainer import train

    repeats = positive_int("repeats", repeats)
    seeds = [seed + k for k in range(repeats)]
    paths = [run_path(output_path(output), s) for s in seeds]
    from ..checkpoint import KIND

    inputs = [options.get("weights"), data_input(data)]
    for path in paths:  # refuse before any run is trained
        check_writable(path, force, kind=KIND, inputs=inputs)
    check_writable(summary_path(output), force, kind=JSON_KIND, inputs=inputs)
    runs = []
    for s, path in zip(seeds, paths):
        ckpt = train(arch, data, path, seed=s, force=force, progress=progress, **options)
        runs.append({"seed": s, "checkpoint": str(path),
                     **{k: v for k, v in ckpt.metrics.items() if k.startswith("val_") and isinstance(v, float)}})
    keys = sorted({k for r in runs for k in r if k.startswith("val_")})
    summary = {"arch": arch, "data": data, "repeats": repeats, "seeds": seeds, "runs": runs,
               **{k: mean_std([r[k] for r in runs if k in r]) for k in keys}}
    write_json(summary_path(output), summary)
    return summary
