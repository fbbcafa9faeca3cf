"""The original model's reference rows: torch eager, and its fp32 ONNX and TFLite exports on
onnxruntime and LiteRT, at the search's threads, with accuracy on the checkpoint's held-out split.

They are what the chosen artifact's speed-ups are taken against (the issue's "4x faster than
the original's best fp32 runtime") and the accuracy ``max_drop`` counts from (the torch
row). Exports go through the parity gate like any other; targets this machine cannot
produce are left out. The rows are cached in ``DIR/original/SHA/bench.tTHREADS.json``
like a candidate's, keyed by the checkpoint's hash.
"""
from __future__ import annotations

import json
from typing import Any

from .. import formats
from ..fileio import write_json
from .candidate import Say, Search, part_top1

#: The original's fp32 exports benchmarked beside torch eager (each on its own runtime): those of the
#: CPU runtimes the latency search measures (the runtimes with a channel multiple in :mod:`edgekit.formats`).
TARGETS = tuple(formats.export_target_for(r.name) for r in formats.RUNTIMES.values() if r.round_to)


def original_rows(search: Search, say: Say) -> list[dict[str, Any]]:
    """Bench rows of the original checkpoint (torch) and its fp32 exports (read back when cached)."""
    from ..benchmark.run import bench
    from ..exporters.pipeline import available_targets, export

    ckpt, cfg = search.ckpt, search.cfg
    folder = search.root / "original" / str(ckpt.sha256)[:16]
    marker = folder / f"bench.t{cfg.threads}.json"
    if marker.is_file():
        return list(json.loads(marker.read_text())["rows"])
    targets = [t for t in TARGETS if t in available_targets()]
    say(f"export fp32 {', '.join(targets)}")
    records = export(ckpt, targets, precision="fp32", output_dir=folder, calib=search.bundle,
                     parity_size=cfg.parity_size, force=True) if targets else []
    say("bench torch, " + ", ".join(r["target"] for r in records))
    assert ckpt.path is not None
    rows = bench([ckpt.path, *[r["path"] for r in records]], threads=cfg.threads, min_seconds=cfg.min_seconds,
                 data=search.bundle.spec)
    if not any(r.get("error") for r in rows):  # a failed timing is retried by a rerun
        write_json(marker, {"rows": rows})
    return rows


def reference_top1(rows: list[dict[str, Any]], part: str = "report") -> float | None:
    """The original's top-1 on ``part`` of the held-out split, from its torch row (else any row that has one)."""
    ordered = sorted(rows, key=lambda r: r.get("runtime") != "torch")
    return next((part_top1(r, part) for r in ordered if not r.get("error") and part_top1(r, part) is not None), None)
