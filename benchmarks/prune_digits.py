"""Benchmark: CURL vs magnitude and random pruning on digits, at 50 % MACs, 3 seeds.

Reproduces the claims of ``edgekit prune`` (issue 5, docs/findings.md items 1-4):

* accuracy of CURL (``kl-per-mac`` and ``kl`` rankings), L1 and random against the
  unpruned teacher, right after pruning (BatchNorm re-estimated, no training) and after
  the same fine-tuning budget;
* CURL with plain fine-tuning vs the limited-data recipe when only 10 % of the
  training set is available (the proxy set then comes from that 10 % too);
* measured latency (onnxruntime and LiteRT, 1 thread) before and after;
* scoring and pruning wall time.

The teacher is trained by ``edgekit train`` (the command is in the table header).
CURL scores are computed once per data regime on one proxy set (seed 0) and cached;
seeds vary the random baseline, the selection ties and the fine-tuning.

Usage::

    edgekit train --arch resnet18 --data digits -o teacher.pt --epochs 12 --no-small-input
    python benchmarks/prune_digits.py --teacher teacher.pt --work /tmp/prune_bench
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from edgekit.benchmark.command import rerun_command

HERE = Path(__file__).resolve().parent


def mean_std(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--teacher", required=True)
    ap.add_argument("--work", required=True, help="folder for pruned checkpoints and score caches")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--target", default="macs=0.5")
    ap.add_argument("--epochs", type=int, default=3, help="fine-tuning epochs on the full training set")
    ap.add_argument("--limited-epochs", type=int, default=15, help="recovery epochs on the 10%% subset")
    ap.add_argument("--proxy", type=int, default=256)
    ap.add_argument("--proxy-limited", type=int, default=128)
    ap.add_argument("--harsh-target", default="macs=0.25",
                    help="extra, harsher target evaluated right after pruning only (no recovery)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--skip", nargs="*", default=[], help="parts to skip: full limited harsh latency")
    ap.add_argument("--out", default=str(HERE / "prune_digits.md"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from edgekit.checkpoint import load_checkpoint
    from edgekit.compress.latency import speedup
    from edgekit.compress.prune import prune

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    teacher = load_checkpoint(args.teacher)
    raw_path = Path(args.out).with_suffix(".json")
    results: list[dict] = json.loads(raw_path.read_text()) if raw_path.is_file() else []
    done = {(r["config"], r["seed"]) for r in results}

    def run(config: str, seed: int, **kw: object) -> None:
        if (config, seed) in done:
            return
        t0 = time.perf_counter()
        kw.setdefault("target", args.target)
        ck = prune(teacher, "digits", work / f"{config}-s{seed}.pt", seed=seed, proxy_seed=0,
                   force=True, progress=False, **kw)
        rec = {"config": config, "seed": seed, "target": kw["target"], **{k: v for k, v in ck.metrics.items() if not isinstance(v, dict)},
               "wall_seconds": time.perf_counter() - t0}
        results.append(rec)
        raw_path.write_text(json.dumps(results, indent=1))
        print(f"{config} seed {seed}: pruned+BN {rec['top1_pruned_bn']:.2f} -> {rec['val_top1']:.2f} "
              f"(macs {rec['macs_ratio']:.3f}, score {rec['score_seconds']:.0f}s)", flush=True)

    full = {"curl-kl-per-mac": dict(method="curl", rank="kl-per-mac"), "curl-kl": dict(method="curl", rank="kl"),
            "l1": dict(method="l1"), "random": dict(method="random")}
    if "full" not in args.skip:
        for seed in args.seeds:
            for name, kw in full.items():
                run(name, seed, finetune_epochs=args.epochs, proxy_size=args.proxy,
                    scores_path=work / f"scores-{kw['method']}-full.pt", **kw)
    limited = {"10%-curl-finetune": ("finetune", None), "10%-curl-limited-data": ("limited-data", None),
               "10%-curl-mixup-kd-only": ("limited-data", 0)}
    if "limited" not in args.skip:
        for seed in args.seeds:
            for name, (recipe, refine) in limited.items():
                run(name, seed, method="curl", rank="kl-per-mac", train_fraction=0.1, recipe=recipe,
                    finetune_epochs=args.limited_epochs, refine_epochs=refine, proxy_size=args.proxy_limited,
                    scores_path=work / "scores-curl-10pct.pt")
    if "harsh" not in args.skip and args.harsh_target:
        for seed in args.seeds:
            for name, kw in full.items():
                run(f"{args.harsh_target}-{name}-no-recovery", seed, finetune_epochs=0, proxy_size=args.proxy,
                    scores_path=work / f"scores-{kw['method']}-full.pt", target=args.harsh_target, **kw)
    latency: dict[str, dict] = {}
    lat_path = Path(args.out).with_suffix(".latency.json")
    if lat_path.is_file():
        latency = json.loads(lat_path.read_text())
    if "latency" not in args.skip:
        for name in ("curl-kl-per-mac", "l1"):
            path = work / f"{name}-s{args.seeds[0]}.pt"
            if name not in latency and path.is_file():
                latency[name] = speedup(teacher, load_checkpoint(path), data="digits", workdir=work)
                lat_path.write_text(json.dumps(latency, indent=1))
    write_table(args, teacher, results, latency)


def write_table(args: argparse.Namespace, teacher: object, results: list[dict], latency: dict) -> None:
    import edgekit
    import torch_pruning

    by: dict[str, list[dict]] = {}
    for r in results:
        by.setdefault(r["config"], []).append(r)
    t_metrics = teacher.metrics  # type: ignore[attr-defined]
    lines = [
        "# Pruning on digits: CURL vs L1 vs random at 50 % MACs",
        "",
        f"Command: `{rerun_command(__file__, sys.argv[1:], args.work)}`  ",
        f"Teacher: `{teacher.provenance.get('command', '')}` "  # type: ignore[attr-defined]
        f"({teacher.arch}, input {teacher.input_spec.get('shape')}, val top-1 "  # type: ignore[attr-defined]
        f"{t_metrics.get('val_top1', float('nan')):.2f} %)  ",
        f"Machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch thread(s), "
        f"2 shared CPU cores (3 other jobs running); edgekit {edgekit.__version__}, torch {torch.__version__}, "
        f"torch-pruning {torch_pruning.__version__}  ",
        f"Budgets: target {args.target}, min keep 0.3; full data: proxy {args.proxy} images, "
        f"{args.epochs} fine-tuning epochs (SGD lr 0.01, cosine); 10 % data: proxy {args.proxy_limited}, "
        f"{args.limited_epochs} epochs (limited-data: {args.limited_epochs} mixup+KD epochs then "
        f"{max(1, -(-args.limited_epochs // 8))} label-refinement epoch(s) on the 6x expanded set); "
        f"seeds {args.seeds}; mean ± std over seeds.",
        "",
        "| config | target | MACs ratio | top-1 unpruned | top-1 pruned + BN re-est. | top-1 after recovery | "
        "scoring s | prune s (graph+score+select+BN) | recovery s | n |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, rows in by.items():
        lines.append(
            f"| {name} | {rows[0].get('target', args.target)} | {statistics.mean(r['macs_ratio'] for r in rows):.3f} | "
            f"{mean_std([r['top1_unpruned'] for r in rows])} | {mean_std([r['top1_pruned_bn'] for r in rows])} | "
            f"{mean_std([r['val_top1'] for r in rows])} | "
            f"{statistics.mean(r['score_seconds'] for r in rows if not r.get('scores_cached')) if any(not r.get('scores_cached') for r in rows) else 0:.1f} | "
            f"{statistics.mean(r['prune_seconds'] for r in rows):.1f} | "
            f"{statistics.mean(r['recovery_seconds'] for r in rows):.1f} | {len(rows)} |")
    lines += ["", "Scoring s is the uncached scoring time (scores are computed once per regime and reused "
              "across seeds and rankings; cached runs report prune s without it).", ""]
    if latency:
        lines += ["## Measured latency (batch 1, 1 thread, median)", "",
                  "| pruned model | runtime | unpruned ms | pruned ms | speed-up |", "|---|---|---|---|---|"]
        for name, lat in latency.items():
            for rt, v in lat.items():
                if isinstance(v, dict):
                    lines.append(f"| {name} (seed {args.seeds[0]}) | {rt} | {v['before_ms']:.3f} | "
                                 f"{v['after_ms']:.3f} | {v['speedup']:.2f}x |")
        lines.append("")
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
