"""Exact CURL scoring in bfloat16 on a CPU: is it faster, and does it keep the ranking?

Issue 13 asked exact KL scoring to get faster "with lower precision where the CPU supports it".
For each checkpoint, this scores every prunable unit exactly (:func:`edgekit.compress.curl.kl_scores`)
twice on the same proxy set, in float32 and in bf16 (``exact_precision="bf16"``: the passes under
``torch.autocast("cpu", dtype=torch.bfloat16)``, the KL itself in float32), times both in one process,
reports the Spearman rank correlation of the bf16 scores with the float32 ones (all units pooled,
median over groups), and prunes a copy to 50 % MACs with each set of scores (kl-per-mac, BN
re-estimated, no recovery) to compare held-out top-1. ``--repeat`` alternates the two that many
times (timings only).

    python benchmarks/exact_precision.py CKPT [CKPT ...] --proxy 256 --out benchmarks/exact_precision.json
"""
from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path
from typing import Any

import torch

from fisher_scoring import open_checkpoint, rank_agreement, score_and_prune


def compare_precisions(ckpt: Path, proxy: int, repeat: int, ratio: float = 0.5) -> dict[str, Any]:
    """float32 against bf16-autocast exact scoring of one checkpoint."""
    dev = torch.device("cpu")
    ck, bundle, x, y, row = open_checkpoint(ckpt, proxy, dev)
    row["checkpoint"] = str(ckpt)
    times: dict[str, list[float]] = {"fp32": [], "bf16": []}
    scores = {}
    for _ in range(repeat):
        for name in ("fp32", "bf16"):
            scores[name] = score_and_prune(ck, bundle, x, y, "exact", dev, ratio, row, name, exact_precision=name)
            times[name].append(row[f"{name}_seconds"])
    row["seconds"] = times
    row.update(rank_agreement(scores["fp32"], scores["bf16"]))
    row["speedup"] = min(times["fp32"]) / min(times["bf16"])
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoints", nargs="+", type=Path)
    ap.add_argument("--proxy", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("exact_precision.json"))
    args = ap.parse_args()
    doc = {"machine": f"{platform.machine()} {platform.processor()}", "torch": torch.__version__,
           "threads": torch.get_num_threads(), "bf16_cpu": torch.backends.mkldnn.is_available(), "rows": []}
    for ckpt in args.checkpoints:
        row = compare_precisions(ckpt, args.proxy, args.repeat)
        doc["rows"].append(row)
        print(json.dumps({k: row[k] for k in ("arch", "seconds", "speedup", "spearman_all", "spearman_group_median",
                                              "fp32_top1_pruned_bn", "bf16_top1_pruned_bn", "top1_unpruned")}),
              flush=True)
        args.out.write_text(json.dumps(doc, indent=1))


if __name__ == "__main__":
    main()
