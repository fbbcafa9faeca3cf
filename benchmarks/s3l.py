"""Benchmark: S3L self-supervised pretraining on the target data vs training from scratch (issue 26 §4).

For each data spec, an ``--arch`` backbone is pretrained without labels by ``edgekit pretrain``
(each ``--methods`` method at each ``--sizes`` input size, and with the last stage dropped at
each ``--drop-sizes`` size), then every pretrained backbone, and a random initialisation
("scratch"), is fine-tuned the same way by ``edgekit train`` at the data's full input size on
each ``--fractions`` fraction of the training labels (stratified, drawn per seed), for each
``--seeds`` seed. A backbone pretrained with its last stage dropped is fine-tuned with
``--warmup-frozen`` (the missing stage and the head first, the rest frozen). Top-1 is on the
validation split, which is fixed (split seed 0) for every run, so pretraining never sees a
validation image as a training image of another seed.

Recorded beside accuracy: the pretraining's wall time (so a smaller input is compared at its
own cost), its images/s and its k-NN probe (k = 20, cosine) per epoch, from random weights
to the last epoch. ``--pretrain-per-seed`` pretrains again for every seed; by default the
pretraining runs once (seed 0) and the seeds vary the label subset and the fine-tuning.

``--throughput SIZE...`` also records ``edgekit pretrain`` images/s and wall time per epoch for
``--arch`` at those input sizes (one short run each, on generated shapes at the largest size).

Every run is cached in the JSON next to the page, keyed by its settings, so a re-run (or a
cut-short run) skips what is done; the page lists every command that added rows.

Usage::

    python benchmarks/s3l.py --work /tmp/s3l --data digits --data synthetic:clutter=3,n=800,size=32 \\
        --seeds 0 1 2 --fractions 0.01 0.1 1 --sizes 32 16 8 --methods simclr mocov2 --drop-sizes 8
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import time
import zlib
from pathlib import Path

import torch
from prune_digits import mean_std  # the same "mean ± std" cell as the other pages (script folder)
from edgekit.benchmark.command import rerun_command

HERE = Path(__file__).resolve().parent

#: the hand-written reading of the tables below this heading survives a rerun
NOTES = "## Reading the tables"


def fraction_option() -> str:
    """The fine-tuning option that takes the labelled fraction: ``labeled_fraction`` where
    TrainConfig has it (its later name), else ``train_fraction``."""
    from edgekit.training.config import TrainConfig

    fields = TrainConfig.__dataclass_fields__
    return "labeled_fraction" if "labeled_fraction" in fields else "train_fraction"


def pinned(spec: str) -> str:
    """``spec`` with its validation split pinned to seed 0 (the split every run shares)."""
    if "seed=" in spec:
        return spec
    if spec.partition(":")[1] and "=" in spec:
        return spec + ",seed=0"
    return spec + "?seed=0" if ":" in spec else spec + ":seed=0"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", action="append", default=[], help="data spec (repeatable)")
    ap.add_argument("--work", required=True, help="folder for the checkpoints")
    ap.add_argument("--arch", default="resnet18")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--fractions", type=float, nargs="+", default=[0.01, 0.1, 1.0])
    ap.add_argument("--methods", nargs="+", default=["simclr", "mocov2"])
    ap.add_argument("--sizes", type=int, nargs="+", default=[32, 16, 8], help="pretraining input sizes")
    ap.add_argument("--drop-sizes", type=int, nargs="*", default=[8],
                    help="pretraining sizes also run with the last stage dropped")
    ap.add_argument("--scratch", action=argparse.BooleanOptionalAction, default=True,
                    help="fine-tune from random weights too")
    ap.add_argument("--pretrain-epochs", type=int, default=10)
    ap.add_argument("--pretrain-batch", type=int, default=128)
    ap.add_argument("--pretrain-per-seed", action="store_true", help="pretrain again for every seed")
    ap.add_argument("--finetune-epochs", type=int, default=10)
    ap.add_argument("--warmup-frozen", type=int, default=2)
    ap.add_argument("--small-input", action=argparse.BooleanOptionalAction, default=None,
                    help="the backbone's small-input stem (default: edgekit's, on for inputs <= 64 px)")
    ap.add_argument("--precise-bn", type=int, default=20, help="BN re-estimation batches after every run")
    ap.add_argument("--throughput", type=int, nargs="*", default=[],
                    help="also time pretraining at these input sizes (1 epoch, generated shapes)")
    ap.add_argument("--throughput-images", type=int, default=400)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(HERE / "s3l.md"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    raw_path = Path(args.out).with_suffix(".json")
    store = json.loads(raw_path.read_text()) if raw_path.is_file() else {}
    for key in ("pretrain", "finetune", "throughput", "commands"):
        store.setdefault(key, [])
    command = rerun_command(__file__, sys.argv[1:], args.work)

    def save() -> None:
        if command not in store["commands"]:
            store["commands"].append(command)
        merged = merge_store(raw_path, store)
        store.update(merged)

    for size in args.throughput:
        throughput(args, work, size, store["throughput"])
        save()
    inits = ([("scratch", None, False)] if args.scratch else []) + [
        (m, s, False) for s in args.sizes for m in args.methods] + [
        (m, s, True) for s in args.drop_sizes for m in args.methods]
    for seed in args.seeds:  # seeds outermost: a cut-short run covers every dataset and fraction
        for spec in args.data:
            for fraction in args.fractions:
                for method, size, drop in inits:
                    weights = None
                    if method != "scratch":
                        rec = pretrained(args, work, spec, method, size, drop, seed if args.pretrain_per_seed else 0,
                                         store["pretrain"])
                        save()
                        weights = rec["path"]
                    finetune(args, work, spec, method, size, drop, weights, fraction, seed, store["finetune"])
                    save()
    write_page(args, store)


def merge_store(path: Path, store: dict) -> dict:
    """Write ``store`` into the JSON at ``path`` under a lock, keeping rows other runs of this
    script (on other data, in parallel) wrote there meanwhile; returns the merged store."""
    import fcntl

    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        disk = json.loads(path.read_text()) if path.is_file() else {}
        merged = {}
        for key in store:
            rows, seen = [], set()
            for row in [*disk.get(key, []), *store[key]]:
                ident = json.dumps(row, sort_keys=True)
                if ident not in seen:
                    seen.add(ident)
                    rows.append(row)
            merged[key] = rows
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(merged, indent=1))
        tmp.replace(path)
    return merged


def pretrained(args: argparse.Namespace, work: Path, spec: str, method: str, size: int, drop: bool, seed: int,
               rows: list[dict]) -> dict:
    """The cached pretraining row of these settings, or a new run's."""
    key = dict(data=spec, arch=args.arch, method=method, size=size, drop_last_stage=drop, seed=seed,
               epochs=args.pretrain_epochs, batch_size=args.pretrain_batch, small_input=args.small_input,
               precise_bn=args.precise_bn)
    for r in reversed(rows):
        if all(r.get(k) == v for k, v in key.items()) and Path(r["path"]).is_file():
            return r
    import edgekit

    tag = f"{spec.partition(':')[0]}-{zlib.crc32(spec.encode()) % 10**6}-{method}-{size}{'-drop' if drop else ''}-s{seed}"
    path = work / f"ssl-{tag}-e{args.pretrain_epochs}.pt"
    t0 = time.perf_counter()
    ck = edgekit.pretrain(args.arch, pinned(spec), path, method=method, epochs=args.pretrain_epochs,
                          batch_size=args.pretrain_batch, input_size=size, drop_last_stage=drop, seed=seed,
                          small_input=args.small_input, precise_bn=args.precise_bn, progress=False, force=True)
    seconds = time.perf_counter() - t0
    epochs = [json.loads(line) for line in Path(str(path) + ".metrics.jsonl").read_text().splitlines() if line.strip()]
    rec = {**key, "path": str(path), "wall_seconds": seconds, "images_per_s": ck.metrics.get("images_per_s"),
           "init_knn_top1": ck.metrics.get("init_knn_top1"), "val_knn_top1": ck.metrics.get("val_knn_top1"),
           "epoch_seconds": [e.get("epoch_seconds") for e in epochs],
           "knn_curve": [e.get("val_knn_top1") for e in epochs]}
    rows[:] = [r for r in rows if not all(r.get(k) == v for k, v in key.items())] + [rec]
    print(f"pretrain {spec} {method} @{size}{' drop' if drop else ''} s{seed}: k-NN {rec['init_knn_top1']:.2f} -> "
          f"{rec['val_knn_top1']:.2f} ({seconds:.0f} s, {rec['images_per_s']:.0f} img/s)", flush=True)
    return rec


def finetune(args: argparse.Namespace, work: Path, spec: str, method: str, size: int | None, drop: bool,
             weights: str | None, fraction: float, seed: int, rows: list[dict]) -> None:
    """Fine-tune from ``weights`` (None: from scratch) on ``fraction`` of the labels, unless cached."""
    key = dict(data=spec, arch=args.arch, init=method, pretrain_size=size, drop_last_stage=drop, fraction=fraction,
               seed=seed, epochs=args.finetune_epochs, pretrain_epochs=None if method == "scratch" else
               args.pretrain_epochs, pretrain_per_seed=None if method == "scratch" else args.pretrain_per_seed,
               warmup_frozen=args.warmup_frozen if drop else None, small_input=args.small_input,
               precise_bn=args.precise_bn)
    if any(all(r.get(k) == v for k, v in key.items()) for r in rows):
        return
    import edgekit

    path = work / f"finetune-{zlib.crc32(spec.encode()) % 10**6}.pt"  # one per data: runs on other data may share work
    options = {fraction_option(): fraction}
    if weights is not None:
        options["weights"] = weights
    if drop:
        options["warmup_frozen"] = args.warmup_frozen
    t0 = time.perf_counter()
    ck = edgekit.train(args.arch, pinned(spec), path, epochs=args.finetune_epochs, seed=seed, progress=False,
                       small_input=args.small_input, precise_bn=args.precise_bn, force=True, **options)
    rec = {**key, "val_top1": ck.metrics["val_top1"], "seconds": time.perf_counter() - t0,
           "input": ck.input_spec.get("shape")}
    rows.append(rec)
    label = "scratch" if method == "scratch" else f"{method}@{size}{'-drop' if drop else ''}"
    print(f"finetune {spec} {label} {fraction:g} s{seed}: {rec['val_top1']:.2f} ({rec['seconds']:.0f} s)", flush=True)


def throughput(args: argparse.Namespace, work: Path, size: int, rows: list[dict]) -> None:
    """One short pretraining at ``size`` px: ``edgekit pretrain``'s images/s and seconds per epoch."""
    key = dict(arch=args.arch, size=size, images=args.throughput_images, threads=args.threads)
    if any(all(r.get(k) == v for k, v in key.items()) for r in rows):
        return
    import edgekit

    top = max(args.throughput)
    spec = f"synthetic:n={args.throughput_images},size={top},seed=0"
    path = work / f"throughput-{size}.pt"
    t0 = time.perf_counter()
    ck = edgekit.pretrain(args.arch, spec, path, method="mocov2", epochs=1, batch_size=64, input_size=size,
                          seed=0, progress=False, force=True)
    wall = time.perf_counter() - t0
    epoch = json.loads(Path(str(path) + ".metrics.jsonl").read_text().splitlines()[0])
    rows.append({**key, "data": spec, "method": "mocov2", "batch_size": 64, "wall_seconds": wall,
                 "epoch_seconds": epoch.get("epoch_seconds"), "images_per_s": ck.metrics.get("images_per_s"),
                 "init_knn_top1": ck.metrics.get("init_knn_top1"), "val_knn_top1": ck.metrics.get("val_knn_top1")})
    print(f"throughput {args.arch} @{size}: {ck.metrics.get('images_per_s'):.1f} img/s, "
          f"{epoch.get('epoch_seconds'):.1f} s/epoch", flush=True)


def _label(r: dict) -> str:
    if r.get("init", r.get("method")) == "scratch":
        return "scratch"
    epochs = r.get("pretrain_epochs", r.get("epochs")) if "init" in r else r["epochs"]
    return f"{r.get('init', r.get('method'))} @ {r['pretrain_size' if 'init' in r else 'size']} px, {epochs} ep" + \
        (", last stage dropped" if r["drop_last_stage"] else "")


def write_page(args: argparse.Namespace, store: dict) -> None:
    import edgekit

    fo = fraction_option()
    lines = [
        "# S3L: self-supervised pretraining on the target data vs from scratch",
        "",
        "Commands that produced the rows below (each skips the runs already in "
        f"{Path(args.out).with_suffix('.json').name}):",
        "",
        *[f"    {c}" for c in store["commands"]],
        "",
        f"Machine: {platform.processor() or platform.machine()}, {args.threads} torch thread(s), 2 CPU cores "
        f"shared with other jobs (wall times are noisy); edgekit {edgekit.__version__}, torch {torch.__version__}.  ",
        f"Fine-tuning: `edgekit train --weights SSL.pt` (or none: scratch) at the data's full input size, the "
        f"default recipe (SGD, lr 0.05 cosine, batch 64, standard augmentation), `--{fo.replace('_', '-')}` "
        "labels drawn per seed (stratified), last-stage-dropped backbones with `--warmup-frozen N` first; "
        f"validation split fixed (seed 0); precise BN {args.precise_bn} batches after every run; small-input "
        f"stem {'edgekit default (on at <= 64 px)' if args.small_input is None else args.small_input} "
        "(per run in the JSON). Top-1 is mean ± std over the seeds; Δ is paired by seed against "
        "scratch. Pretraining wall time is the whole `edgekit pretrain` run (k-NN probes after every epoch included).",
        "",
    ]
    specs = list(dict.fromkeys([r["data"] for r in store["finetune"]] + [r["data"] for r in store["pretrain"]]))
    for spec in specs:
        lines += [f"## `{spec}`", ""]
        pre = [r for r in store["pretrain"] if r["data"] == spec]
        if pre:
            lines += ["### Pretraining (no labels): cost and k-NN probe", "",
                      "| backbone | seed | epochs | wall s | s/epoch (median) | img/s | k-NN random init | "
                      "k-NN pretrained | k-NN per epoch |", "|---|---|---|---|---|---|---|---|---|"]
            for r in sorted(pre, key=lambda r: (r["method"], -r["size"], r["drop_last_stage"], r["seed"])):
                eps = [e for e in r["epoch_seconds"] if e is not None]
                lines.append(f"| {_label(r)} | {r['seed']} | {r['epochs']} | {r['wall_seconds']:.0f} | "
                             f"{statistics.median(eps) if eps else float('nan'):.1f} | {r['images_per_s']:.0f} | "
                             f"{r['init_knn_top1']:.2f} | {r['val_knn_top1']:.2f} | "
                             f"{' → '.join(f'{v:.1f}' for v in r['knn_curve'] if v is not None)} |")
            lines.append("")
        fine = [r for r in store["finetune"] if r["data"] == spec]
        if not fine:
            continue
        wall = {(r["method"], r["size"], r["drop_last_stage"], r["epochs"]): r["wall_seconds"]
                for r in pre if r["seed"] == 0}
        lines += ["### Fine-tuned top-1 (%) by labelled fraction", ""]
        fractions = sorted({r["fraction"] for r in fine})
        head = "| init | pretrain wall s | " + " | ".join(
            f"{f:.0%} labels: top-1 | Δ vs scratch | n" for f in fractions) + " |"
        lines += [head, "|" + "---|" * (2 + 3 * len(fractions))]
        order = {}
        for r in fine:
            order.setdefault((r["init"], r["pretrain_size"], r["drop_last_stage"], r["epochs"],
                              r.get("pretrain_epochs")), r)
        for key in sorted(order, key=lambda k: (k[0] != "scratch", k[0], -(k[1] or 0), k[2])):
            rs = [r for r in fine if (r["init"], r["pretrain_size"], r["drop_last_stage"], r["epochs"],
                                      r.get("pretrain_epochs")) == key]
            cells = []
            for f in fractions:
                fr = [r for r in rs if r["fraction"] == f]
                base = {r["seed"]: r["val_top1"] for r in fine if r["init"] == "scratch" and r["fraction"] == f
                        and r["epochs"] == key[3]}
                deltas = [r["val_top1"] - base[r["seed"]] for r in fr if r["seed"] in base]
                cells.append(f"{mean_std([r['val_top1'] for r in fr])} | "
                             f"{mean_std(deltas) if key[0] != 'scratch' and deltas else '-'} | {len(fr)}")
            w = wall.get((key[0], key[1], key[2], key[4]))
            lines.append(f"| {_label(rs[0])} | {'-' if w is None else f'{w:.0f}'} | " + " | ".join(cells) + " |")
        seeds = sorted({r["seed"] for r in fine})
        lines += ["", f"Fine-tuning: {fine[0]['epochs']} epochs; seeds {seeds}; training images at 100 %: see the "
                  "JSON (`input` is the fine-tuned shape).", ""]
    if store["throughput"]:
        lines += ["## `edgekit pretrain` speed on this CPU", "",
                  "| arch | input px | images | threads | s/epoch | images/s | wall s (probe included) | "
                  "k-NN random | k-NN after 1 epoch |", "|---|---|---|---|---|---|---|---|---|"]
        for r in store["throughput"]:
            lines.append(f"| {r['arch']} | {r['size']} | {r['images']} (`{r['data']}`) | {r['threads']} | "
                         f"{r['epoch_seconds']:.1f} | {r['images_per_s']:.1f} | {r['wall_seconds']:.0f} | "
                         f"{r['init_knn_top1']:.2f} | {r['val_knn_top1']:.2f} |")
        lines.append("")
    out = Path(args.out)
    notes = out.read_text().partition(NOTES)[2] if out.is_file() else ""
    out.write_text("\n".join(lines) + "\n" + (NOTES + notes if notes else ""))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
