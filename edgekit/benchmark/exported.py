"""Export a checkpoint and time the artifact: the latency of a model as it would ship.

Benchmark scripts compare trained or compressed checkpoints by what they cost on a runtime;
this is their one recipe (parity-gated fp32 export into a temporary folder, then
:func:`edgekit.benchmark.run.bench` at batch 1).
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from ..errors import EdgekitError

__all__ = ["exported_latency"]


def exported_latency(ckpt: Any, work: str | Path, name: str, *, target: str = "tflite", threads: int = 1,
                     calib: Any = None, parity_size: int = 64, min_seconds: float = 2.0) -> dict[str, Any]:
    """Median and p90 latency (ms), size and parity of ``ckpt`` exported to ``target`` at fp32.

    ``calib``: the parity gate's data (default: the checkpoint's own held-out split). The
    artifact lives in a temporary folder under ``work`` and is removed afterwards.
    """
    from .run import bench
    from ..exporters.pipeline import export

    Path(work).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        rec = export(ckpt, target, output_dir=tmp, name=name, calib=calib, parity_size=parity_size, force=True)[0]
        row = bench(rec["path"], threads=threads, min_seconds=min_seconds)[0]
    if row.get("error"):
        raise EdgekitError(f"{name}: timing the {target} artifact failed: {row['error']}")
    return {"p50_ms": row["p50_ms"], "p90_ms": row["p90_ms"], "size_mb": row["model_size_mb"],
            "parity_max_abs": rec.get("parity", {}).get("max_abs_err")}
