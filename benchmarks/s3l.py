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

``--gestures SPEC`` runs the gestures arm instead (issue 26 §4, the real-time TSM paper's
initialisation finding without ImageNet): ``--arch`` (mobilenet_v2) pretrained on random frames of
the training clips, then scratch and each pretrained backbone fine-tuned identically as the causal
``--clip-arch`` TSM, scored offline and streamed frame by frame (raw and smoothed at the clip end);
every pretrained run checks that all backbone tensors were loaded. ``--table-only`` rewrites the page.

Every run is cached in the JSON next to the page, keyed by its settings, so a re-run (or a
cut-short run) skips what is done; the page lists every command that added rows.

Usage::

    python benchmarks/s3l.py --work /tmp/s3l --data digits --data synthetic:clutter=3,n=800,size=32 \\
        --seeds 0 1 2 --fractions 0.01 0.1 1 --sizes 32 16 8 --methods simclr mocov2 --drop-sizes 8
    python benchmarks/s3l.py --work /tmp/s3l --gestures gestures:n=440,size=32,gen_seed=0 --arch mobilenet_v2 \
        --sizes 32 --pretrain-epochs 15 --pretrain-batch 32 --finetune-epochs 10 --finetune-batch 16 \
        --no-small-input --threads 1 --seeds 0 1 2
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
    ap.add_argument("--gestures", metavar="SPEC", default=None,
                    help="the gestures arm instead of the image one: a clip data spec (e.g. "
                    "gestures:n=220,size=32,gen_seed=0); --arch must be a 2D backbone (mobilenet_v2), "
                    "fine-tuned as the causal --clip-arch")
    ap.add_argument("--clip-arch", default="tsm_mobilenet_v2")
    ap.add_argument("--inits", nargs="+", default=["scratch", "simclr", "mocov2"],
                    help="gestures arm: which initialisations to fine-tune (split them over processes)")
    ap.add_argument("--frames", type=int, default=8, help="gestures arm: TSM segments")
    ap.add_argument("--finetune-batch", type=int, default=32, help="gestures arm: fine-tuning batch")
    ap.add_argument("--lr", type=float, default=0.02, help="gestures arm: peak lr (the house gestures benchmark's)")
    ap.add_argument("--table-only", action="store_true", help="only rewrite the page from the JSON")
    ap.add_argument("--out", default=str(HERE / "s3l.md"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    raw_path = Path(args.out).with_suffix(".json")
    store = json.loads(raw_path.read_text()) if raw_path.is_file() else {}
    for key in ("pretrain", "finetune", "throughput", "commands", "gestures"):
        store.setdefault(key, [])
    command = rerun_command(__file__, sys.argv[1:], args.work)
    if args.table_only:
        write_page(args, store)
        return

    def save() -> None:
        if command not in store["commands"]:
            store["commands"].append(command)
        merged = merge_store(raw_path, store)
        store.update(merged)

    if args.gestures:
        gestures_arm(args, work, store, save)
        write_page(args, store)
        return
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


# ---------------------------------------------------------------- gestures arm

def gestures_arm(args: argparse.Namespace, work: Path, store: dict, save) -> None:
    """Issue 26 §4's gestures part (the real-time TSM paper's initialisation finding, arXiv
    1906.07052, without ImageNet): the 2D ``--arch`` backbone pretrained by each SSL method in
    ``--inits`` on random frames of the training clips (once, seed 0, at ``--sizes[0]`` px),
    then every init (``scratch``: random) fine-tuned identically as the causal ``--clip-arch``
    for each seed, scored offline (clip top-1) and streamed (raw and smoothed at the clip end)."""
    spec, size = args.gestures, args.sizes[0]
    recs = {}
    for method in [m for m in args.inits if m != "scratch"]:  # pretrain first: a parallel process finds them cached
        recs[method] = pretrained(args, work, spec, method, size, False, 0, store["pretrain"])
        save()
    for seed in args.seeds:
        for init in args.inits:
            gesture_finetune(args, work, spec, init, size, recs[init]["path"] if init in recs else None, seed,
                             store["gestures"])
            save()


def weights_report(ckpt, weights: str, arch: str) -> dict:
    """What loading ``weights`` into a fresh copy of ``ckpt``'s model does, tensor by tensor:
    the train provenance counts what was loaded but lists only shape mismatches as skipped, so
    this also names the model's tensors the file did not fill and the file's tensors it dropped."""
    import copy

    from edgekit.registry import load_weights

    rep = load_weights(copy.deepcopy(ckpt.model), weights, arch)
    own = ckpt.model.state_dict()
    backbone = [k for k in own if k.startswith("backbone.") and not k.startswith("backbone.classifier")]
    return {"loaded": len(rep["loaded"]), "model_tensors": len(own), "backbone_tensors": len(backbone),
            "backbone_loaded": sum(k in set(rep["loaded"]) for k in backbone),
            "missing": rep["missing"], "unexpected": rep["unexpected"], "mismatched": rep["mismatched"]}


def gesture_finetune(args: argparse.Namespace, work: Path, spec: str, init: str, size: int, weights: str | None,
                     seed: int, rows: list[dict]) -> None:
    """Fine-tune the causal clip model from ``weights`` (None: scratch) unless cached; score it
    offline and streamed frame by frame (:func:`edgekit.evaluation.streaming.evaluate_streaming`)."""
    key = dict(data=spec, arch=args.clip_arch, backbone=args.arch, shift="causal", init=init,
               pretrain_size=None if init == "scratch" else size,
               pretrain_epochs=None if init == "scratch" else args.pretrain_epochs, seed=seed,
               epochs=args.finetune_epochs, frames=args.frames, batch_size=args.finetune_batch, lr=args.lr,
               small_input=args.small_input, precise_bn=args.precise_bn)
    if any(all(r.get(k) == v for k, v in key.items()) for r in rows):
        return
    import edgekit
    from edgekit.checkpoint import load_checkpoint
    from edgekit.evaluation.streaming import evaluate_streaming
    from edgekit.training.trainer import metrics_path

    path = work / f"gest-{zlib.crc32(spec.encode()) % 10**6}-{init}-s{seed}.pt"  # per run: processes run in parallel
    options = {} if weights is None else {"weights": weights}
    t0 = time.perf_counter()
    ck = edgekit.train(args.clip_arch, pinned(spec), path, shift="causal", frames=args.frames,
                       epochs=args.finetune_epochs, batch_size=args.finetune_batch, lr=args.lr, seed=seed,
                       small_input=args.small_input, precise_bn=args.precise_bn, progress=False, force=True, **options)
    seconds = time.perf_counter() - t0
    log = [json.loads(line) for line in metrics_path(path).read_text().splitlines() if line.strip()]
    res = evaluate_streaming(load_checkpoint(path), batch_size=32, device="cpu")
    rec = {**key, "val_top1_trainer": ck.metrics["val_top1"], "offline_top1": res["offline"]["top1"],
           "stream_end": res["online"]["end"], "stream_smoothed_end": res["smoothed"]["end"],
           "smoothed_window": res["smoothed"]["window"], "equivalence": res["equivalence"],
           "val_clips": res["clips"], "train_clips": len(ck.load_data().train), "seconds": seconds,
           "val_top1_by_epoch": [r.get("val_top1") for r in log],
           "weights": None if weights is None else {"provenance": ck.provenance.get("weights"),
                                                     **weights_report(ck, weights, args.clip_arch)}}
    if weights is not None and rec["weights"]["backbone_loaded"] != rec["weights"]["backbone_tensors"]:
        raise SystemExit(f"{weights}: only {rec['weights']['backbone_loaded']} of "
                         f"{rec['weights']['backbone_tensors']} backbone tensors loaded into {args.clip_arch}")
    rows.append(rec)
    print(f"gestures {init} s{seed}: offline {rec['offline_top1']:.1f} stream end {rec['stream_end']:.1f} "
          f"smoothed {rec['stream_smoothed_end']:.1f} ({seconds:.0f} s)", flush=True)


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


def pretrain_table(pre: list[dict]) -> list[str]:
    """The pretraining rows of one data spec: cost and k-NN probe per epoch."""
    if not pre:
        return []
    lines = ["### Pretraining (no labels): cost and k-NN probe", "",
             "| backbone | seed | epochs | wall s | s/epoch (median) | img/s | k-NN random init | "
             "k-NN pretrained | k-NN per epoch |", "|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(pre, key=lambda r: (r["method"], -r["size"], r["drop_last_stage"], r["seed"])):
        eps = [e for e in r["epoch_seconds"] if e is not None]
        lines.append(f"| {_label(r)} | {r['seed']} | {r['epochs']} | {r['wall_seconds']:.0f} | "
                     f"{statistics.median(eps) if eps else float('nan'):.1f} | {r['images_per_s']:.0f} | "
                     f"{r['init_knn_top1']:.2f} | {r['val_knn_top1']:.2f} | "
                     f"{' → '.join(f'{v:.1f}' for v in r['knn_curve'] if v is not None)} |")
    return lines + [""]


def gestures_section(spec: str, store: dict) -> list[str]:
    """The gestures arm of one clip spec: pretraining, then offline and streamed top-1 by init."""
    pre = [r for r in store["pretrain"] if r["data"] == spec]
    fine = [r for r in store["gestures"] if r["data"] == spec]
    lines = [f"## Gestures: causal TSM from scratch vs from SSL on the clips' frames (`{spec}`)", ""]
    pre_lines = pretrain_table(pre)
    if pre_lines:
        pre_lines[0] = "### Pretraining of the 2D backbone on random frames of the training clips (no labels)"
    lines += pre_lines
    if not fine:
        return lines
    wall = {(r["method"], r["size"], r["epochs"]): r["wall_seconds"] for r in pre if r["seed"] == 0}
    r0 = fine[0]
    lines += [f"### Fine-tuned as `{r0['arch']}` (causal shift): top-1 (%) on the validation clips", "",
              "| init | pretrain wall s | offline clip top-1 | streamed, clip end (raw) | streamed, clip end "
              "(smoothed) | Δ offline vs scratch | Δ streamed raw | Δ streamed smoothed | n | backbone tensors "
              "loaded | fine-tune s (mean) |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    groups: dict[tuple, list[dict]] = {}
    for r in fine:
        groups.setdefault((r["init"], r["pretrain_size"], r["pretrain_epochs"], r["epochs"]), []).append(r)
    metrics = ("offline_top1", "stream_end", "stream_smoothed_end")
    for key in sorted(groups, key=lambda k: (k[0] != "scratch", k[0], -(k[1] or 0))):
        rs = sorted(groups[key], key=lambda r: r["seed"])
        base = {r["seed"]: r for r in fine if r["init"] == "scratch" and r["epochs"] == key[3]}
        cells = [mean_std([r[m] for r in rs]) for m in metrics]
        deltas = ["-" if key[0] == "scratch" else
                  mean_std([round(r[m] - base[r["seed"]][m], 9) + 0.0 for r in rs if r["seed"] in base]) for m in metrics]
        w = wall.get((key[0], key[1], key[2]))
        loaded = "-" if key[0] == "scratch" else ", ".join(
            sorted({f"{r['weights']['backbone_loaded']}/{r['weights']['backbone_tensors']}" for r in rs}))
        label = "scratch" if key[0] == "scratch" else f"{key[0]} @ {key[1]} px, {key[2]} ep"
        lines.append(f"| {label} | {'-' if w is None else f'{w:.0f}'} | " + " | ".join(cells + deltas) +
                     f" | {len(rs)} | {loaded} | {statistics.mean(r['seconds'] for r in rs):.0f} |")
    lines += ["", f"Fine-tuning: {r0['epochs']} epochs, {r0['frames']} frames, batch {r0['batch_size']}, peak lr "
              f"{r0['lr']}, small-input stem {r0['small_input']}; {r0['train_clips']} training / {r0['val_clips']} "
              f"validation clips (split fixed, seed 0); seeds {sorted({r['seed'] for r in fine})}. Streamed: the "
              f"online model frame by frame, the smoother's window {r0['smoothed_window']}; equivalence error of the "
              f"stream vs the offline causal model at most "
              f"{max(r['equivalence']['max_abs_error'] for r in fine):.1e} (logits).", ""]
    return lines


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
        f"Fine-tuning (image sections; the gestures section states its own): `edgekit train --weights SSL.pt` "
        "(or none: scratch) at the data's full input size, the "
        f"default recipe (SGD, lr 0.05 cosine, batch 64, standard augmentation), `--{fo.replace('_', '-')}` "
        "labels drawn per seed (stratified), last-stage-dropped backbones with `--warmup-frozen N` first; "
        f"validation split fixed (seed 0); precise BN {args.precise_bn} batches after every run; small-input "
        f"stem {'edgekit default (on at <= 64 px)' if args.small_input is None else args.small_input} "
        "(per run in the JSON). Top-1 is mean ± std over the seeds; Δ is paired by seed against "
        "scratch. Pretraining wall time is the whole `edgekit pretrain` run (k-NN probes after every epoch included).",
        "",
    ]
    clips = {r["data"] for r in store["gestures"]} | {r["data"] for r in store["pretrain"] if r["data"].startswith("gestures")}
    specs = [s for s in dict.fromkeys([r["data"] for r in store["finetune"]] + [r["data"] for r in store["pretrain"]])
             if s not in clips]
    for spec in specs:
        lines += [f"## `{spec}`", ""]
        pre = [r for r in store["pretrain"] if r["data"] == spec]
        lines += pretrain_table(pre)
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
    for spec in sorted(clips, key=lambda s: -sum(r["data"] == s for r in store["gestures"])):  # the main run first
        lines += gestures_section(spec, store)
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
