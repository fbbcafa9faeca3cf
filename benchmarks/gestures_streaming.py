"""Benchmark: TSN vs TSM offline vs streaming TSM on the built-in gestures (issue 9's closing note).

What it measures, per training seed (the clips are the same for every seed: ``gen_seed=0``;
the seed draws the train/val split, the initialisation and the batch order):

* **accuracy** of three clip models with the same mobilenet_v2 backbone and recipe:
  ``tsn_mobilenet_v2`` (frames averaged, order-blind), ``tsm_mobilenet_v2`` with the
  bidirectional shift (offline TSM) and with the causal shift, the latter also run as its
  online model frame by frame (:func:`edgekit.evaluation.streaming.evaluate_streaming`: accuracy at
  the clip end raw and through the smoother, the settle frame, the equivalence error against
  the causal offline model). Overall top-1 over the 11 classes, and **within-pair accuracy**
  on the five direction pairs (:data:`edgekit.data.gestures.PAIRS`): for the validation clips
  of a pair's two classes, whether the logit of the right class beats the logit of its
  partner (chance 50 %: the partner is the same gesture played backwards). For the stream
  the pair decision uses the last frame's logits (raw) and the logits summed over the
  smoother's window (smoothed; the agreement rule is left out of the pair decision);
* **wall time to train** each model: the sum of its epochs' times from the trainer's log (so an
  interrupted and resumed run still counts every epoch), on the shared 2-core machine;
* **per-frame cost** of the streaming artifact at 112 and 160 px (``edgekit export
  --streaming`` to LiteRT fp32 and int8, ``edgekit bench`` at 1 thread with the states fed
  back): p50 and min latency, MACs per frame, state size in bytes. The artifacts hold the
  trained causal TSM of the first seed with its input respecified to 112 / 160 px (the
  network is fully convolutional; latency does not depend on the weights, but int8
  calibration and the parity gate need logits that are not all alike, which an untrained
  network does not give), calibrated and gated on gesture frames rendered at that size;
* the **CURL-pruned** causal TSM (50 % MACs, Fisher scoring in ``--prune-steps`` steps, a short
  fine-tune) of each seed: offline and streaming accuracy against its unpruned parent (part
  ``prune``), and the per-frame latency of its streaming artifact at 160 px (its trained weights,
  the input respecified to 160 px: the network is fully convolutional) against the unpruned
  architecture's row (part ``latency``).

``--device cuda`` trains and prunes on a GPU (the recorded run did: one process per model and
seed sharing ``--work``); the ``latency`` part needs LiteRT and runs where the table is measured.

**Accuracy setting and why.** 2 CPU cores shared with other jobs (load 5-10). A one-batch
probe of ``tsm_mobilenet_v2`` (8 frames, batch 32) trained at 8 clips/s at 32 px and 2-3
clips/s at 48 px, so 32 px it is, with the standard ImageNet stem (``small_input=False``:
the deployed network, whose MACs and latency the second part measures at 112/160 px) and
8 frames (TSN segments) of the 16-frame clips. In real runs (three models training side by
side, one torch thread each) an epoch of 704-880 clips took 25-65 s. A first run with 880
clips, 8 epochs and edgekit's default peak lr 0.05 did not learn enough to compare (seed 0:
TSN 16.5 %, TSM bidirectional 11.4 %, TSM causal 25.6 %; the loss rose after the warm-up
epoch), so the defaults are 1100 clips (100 per class, 880 for training), 16 epochs and peak
lr 0.02: at epoch 9 of 16 both TSMs were at 69-74 % and TSN at 20 %, about 17 min per TSM
and 12 min per TSN under that load.

Every finished run is cached in ``WORK/cache.json`` under a key made of its settings, and
checkpoints live in ``WORK``; a rerun skips what is finished (an interrupted training
resumes from its ``.resume`` file), so a later session can add the missing seeds with the
same command. ``--parts`` picks what to run; the table is rewritten from the cache at the end
(``--table-only`` just rewrites it).

Usage::

    python benchmarks/gestures_streaming.py --work bench_gest --seeds 0 1 2
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from edgekit.benchmark.command import rerun_command

HERE = Path(__file__).resolve().parent

#: model name -> (architecture, shift)
MODELS = {"tsn": ("tsn_mobilenet_v2", None), "tsm_bi": ("tsm_mobilenet_v2", "bidirectional"),
          "tsm_causal": ("tsm_mobilenet_v2", "causal")}
NOTES = "## Reading the table"


def _key(*parts: object) -> str:
    return "|".join(str(p) for p in parts)


class Cache:
    """Finished runs in ``WORK/cache.json``, keyed by their settings; written after every run."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, dict] = json.loads(path.read_text()) if path.is_file() else {}

    def get(self, key: str) -> dict | None:
        return self.data.get(key)

    def refresh(self) -> None:
        """Merge runs that another process of this script (same --work) finished meanwhile."""
        if self.path.is_file():
            self.data = {**json.loads(self.path.read_text()), **self.data}

    def put(self, key: str, rec: dict) -> None:
        self.refresh()
        self.data[key] = {**rec, "key": key, "loadavg": os.getloadavg()[0],
                          "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp")  # processes sharing --work never share a temp file
        tmp.write_text(json.dumps(self.data, indent=1))
        tmp.replace(self.path)


def data_spec(args: argparse.Namespace) -> str:
    return f"gestures:n={args.n},size={args.size},gen_seed=0"


def train_key(args: argparse.Namespace, model: str, seed: int) -> str:
    return _key("train", model, f"s{seed}", data_spec(args), f"T{args.frames}", f"e{args.epochs}", f"b{args.batch}", f"lr{args.lr}")


# ---------------------------------------------------------------- accuracy

@torch.no_grad()
def pair_accuracy(logits: torch.Tensor, targets: torch.Tensor, labels: list[str]) -> dict:
    """Within-pair accuracy (%) per direction pair and over all pair clips: the right class's
    logit beats its partner's."""
    from edgekit.data.gestures import PAIRS

    out, hits = {}, []
    for a, b in PAIRS:
        if a not in labels or b not in labels:
            continue
        ia, ib = labels.index(a), labels.index(b)
        mine = (targets == ia) | (targets == ib)
        if not mine.any():
            continue
        right = torch.where(targets[mine] == ia, logits[mine, ia] > logits[mine, ib], logits[mine, ib] > logits[mine, ia])
        out[f"{a}/{b}"] = 100.0 * right.float().mean().item()
        hits.append(right)
    out["all"] = 100.0 * torch.cat(hits).float().mean().item() if hits else float("nan")
    return out


@torch.no_grad()
def offline_logits(ckpt, bundle) -> tuple[torch.Tensor, torch.Tensor]:
    model = ckpt.model.eval()
    xs, ys = [], []
    for x, y in bundle.loader("val", ckpt.eval_transform, 32):
        xs.append(model(x))
        ys.append(torch.as_tensor(y))
    return torch.cat(xs), torch.cat(ys)


@torch.no_grad()
def stream_pair(ckpt, bundle, window: int) -> tuple[dict, dict]:
    """Within-pair accuracy of the online model at the clip end: last frame's logits, and the
    logits summed over the last ``window`` processed frames (the smoother's sum)."""
    from torch.utils.data import DataLoader

    from edgekit.data.datasets import Transformed
    from edgekit.models.temporal import to_online
    from edgekit.evaluation.streaming import StreamFrames, resolve_stride, stream_logits

    online = to_online(ckpt.model.eval()).eval()
    lengths = [len(bundle.val[i][0]) for i in range(len(bundle.val))]
    step = resolve_stride("auto", lengths, int(ckpt.input_spec["frames"]))
    loader = DataLoader(Transformed(bundle.val, StreamFrames(ckpt.input_spec, step)), batch_size=32)
    raw, smooth, ys = [], [], []
    for clips, y in loader:
        per_frame = stream_logits(online, clips)
        raw.append(per_frame[:, -1])
        smooth.append(per_frame[:, -window:].sum(1))
        ys.append(torch.as_tensor(y))
    y = torch.cat(ys)
    return pair_accuracy(torch.cat(raw), y, bundle.labels), pair_accuracy(torch.cat(smooth), y, bundle.labels)


def accuracy_record(ckpt, streaming: bool) -> dict:
    from edgekit.evaluation.smoothing import DEFAULT_WINDOW

    bundle = ckpt.load_data()
    logits, y = offline_logits(ckpt, bundle)
    rec = {"offline_top1": 100.0 * (logits.argmax(1) == y).float().mean().item(),
           "offline_pairs": pair_accuracy(logits, y, bundle.labels), "val_clips": len(y)}
    if streaming:
        from edgekit.evaluation.streaming import evaluate_streaming

        res = evaluate_streaming(ckpt, batch_size=32, device="cpu")
        raw, smooth = stream_pair(ckpt, bundle, res["smoothed"]["window"] or DEFAULT_WINDOW)
        rec["streaming"] = {k: res[k] for k in ("stride", "states", "online", "smoothed", "equivalence", "by_class",
                                                "offline", "processed_frames")}
        rec["streaming"]["pairs_end"], rec["streaming"]["pairs_smoothed"] = raw, smooth
    return rec


def device_name(device: str) -> str:
    """What trained or pruned a model, for the table: the GPU's name (CUDA runs use AMP) or ``cpu``."""
    from edgekit.device import resolve_device

    dev = resolve_device(device)
    return f"{torch.cuda.get_device_name(dev)} (AMP)" if dev.type == "cuda" else "cpu"


def run_train(args: argparse.Namespace, cache: Cache, work: Path, model: str, seed: int) -> None:
    from edgekit.checkpoint import load_checkpoint
    from edgekit.training.trainer import metrics_path, resume_path, train

    key = train_key(args, model, seed)
    if cache.get(key):
        return
    arch, shift = MODELS[model]
    out = work / f"{model}-s{seed}.pt"
    prev = json.loads((work / f"{out.name}.seconds").read_text()) if (work / f"{out.name}.seconds").is_file() else 0.0
    t0 = time.perf_counter()
    if not out.is_file() or resume_path(out).is_file():
        opts = dict(frames=args.frames, epochs=args.epochs, batch_size=args.batch, lr=args.lr, seed=seed, small_input=False,
                    progress=False, precise_bn=20, device=args.device)
        if shift:
            opts["shift"] = shift
        print(f"[{time.strftime('%H:%M:%S')}] train {model} seed {seed}", flush=True)
        ckpt = train(arch, data_spec(args), out, resume=resume_path(out).is_file(), force=True, **opts)
        seconds = prev + time.perf_counter() - t0
        (work / f"{out.name}.seconds").write_text(json.dumps(seconds))
    else:
        ckpt = load_checkpoint(out)
        seconds = prev
    log = [json.loads(line) for line in metrics_path(out).read_text().splitlines() if line.strip()]
    # the sum of the epochs' times survives an interrupted and resumed run; the wall time of this
    # process does not (it counts only what ran after the resume)
    rec = {"part": "train", "model": model, "arch": arch, "shift": shift, "seed": seed, "device": device_name(args.device),
           "train_seconds": sum(r["epoch_seconds"] for r in log) if log else seconds, "process_seconds": seconds,
           "val_top1_by_epoch": [r.get("val_top1") for r in log],
           "train_clips": None, "images_per_s": ckpt.metrics.get("images_per_s"),
           "val_top1_trainer": ckpt.metrics.get("val_top1"),
           **accuracy_record(ckpt, streaming=shift == "causal")}
    rec["train_clips"] = len(ckpt.load_data().train)
    cache.put(key, rec)
    s = rec.get("streaming", {})
    print(f"[{time.strftime('%H:%M:%S')}] {model} s{seed}: offline {rec['offline_top1']:.1f} % "
          f"pairs {rec['offline_pairs']['all']:.1f} %" + (f", stream end {s['online']['end']:.1f} % smoothed "
                                                            f"{s['smoothed']['end']:.1f} %" if s else "")
          + f" ({seconds:.0f} s)", flush=True)


# ---------------------------------------------------------------- per-frame cost

def _resized(ckpt, size: int, frames: int):
    """``ckpt`` with its input respecified to ``size`` px and its data rendered at that size
    (calibration and parity frames), the weights unchanged (a fully convolutional net)."""
    import copy

    from edgekit.data import load_data
    from edgekit.data.transforms import make_input_spec

    out = copy.copy(ckpt)
    bundle = load_data(f"gestures:n=66,size={size},gen_seed=0", seed=0)
    out.input_spec = make_input_spec(size, crop_ratio=0.875, frames=frames)
    out.data = bundle.record
    out.path = None
    return out, bundle


def per_frame_cost(ckpt, bundle, out_dir: Path, precisions: list[str], threads: int) -> list[dict]:
    """Export the streaming artifacts of ``ckpt`` and bench them per frame, states fed back."""
    from edgekit.benchmark.run import bench
    from edgekit.exporters.pipeline import export
    from edgekit.registry import count_macs

    frames = int(ckpt.input_spec["frames"])
    size = ckpt.input_spec["shape"][-1]
    macs = count_macs(ckpt.model, (1, frames, 3, size, size)) / frames
    from edgekit.errors import EdgekitError

    t0 = time.perf_counter()
    manifests, gate_failures = [], {}
    for prec in precisions:
        opts = dict(precision=prec, output_dir=out_dir / prec, streaming=True, calib=bundle, calib_size=16,
                    parity_size=8, force=True)
        try:
            manifests += export(ckpt, "tflite", **opts)
        except EdgekitError as exc:  # keep the artifact for timing, record the failed gate next to its row
            if "parity gate failed" not in str(exc):
                raise
            gate_failures[prec] = str(exc)
            manifests += export(ckpt, "tflite", thresholds={"min_top1_agreement": 0.0, "min_cosine": 0.0}, **opts)
    export_s = time.perf_counter() - t0
    paths = [m.get("path") or m.get("artifact") or m.get("file") for m in manifests]
    rows = bench(paths, runtime="litert", threads=1, warmup=20, min_seconds=3.0, force=True)
    out = []
    for man, row in zip(manifests, rows):
        out.append({"size": size, "precision": man.get("precision"), "macs_per_frame": macs,
                    "state_bytes": row.get("state_bytes"), "states": row.get("states"), "per": row.get("per"),
                    "p50_ms": row.get("p50_ms"), "min_ms": row.get("min_ms"), "mean_ms": row.get("mean_ms"),
                    "p90_ms": row.get("p90_ms"), "runs": row.get("runs"), "noisy": row.get("noisy"),
                    "error": row.get("error"), "parity": man.get("parity"),
                    "gate_failed": gate_failures.get(man.get("precision")), "export_seconds": export_s,
                    "artifact": str(paths[len(out)])})
    return out


def run_latency(args: argparse.Namespace, cache: Cache, work: Path, wait_s: float = 3600) -> None:
    """Per-frame cost of the causal TSM of the first seed, respecified to each latency size, and
    of its CURL-pruned child at ``--prune-latency-size`` once the prune part has made it
    (waits up to ``wait_s`` for another process of this script to finish training the parent)."""
    from edgekit.checkpoint import load_checkpoint

    seed = args.seeds[0]
    parent_key = train_key(args, "tsm_causal", seed)
    deadline = time.monotonic() + wait_s
    while not cache.get(parent_key) and time.monotonic() < deadline:
        time.sleep(20)
        cache.refresh()
    if not cache.get(parent_key):
        print(f"latency: no trained tsm_causal seed {seed} yet; skipped", flush=True)
        return
    for size in args.latency_sizes:
        key = _key("latency", parent_key, size, ",".join(args.precisions))
        if cache.get(key):
            continue
        print(f"[{time.strftime('%H:%M:%S')}] latency {size} px", flush=True)
        ckpt, bundle = _resized(load_checkpoint(work / f"tsm_causal-s{seed}.pt"), size, args.frames)
        rows = per_frame_cost(ckpt, bundle, work / f"latency-{size}", args.precisions, 1)
        cache.put(key, {"part": "latency", "model": f"tsm_causal seed {seed}", "rows": rows})
        _print_rows(rows)
    pruned = cache.get(prune_key(args, seed))
    key = _key("latency", prune_key(args, seed), args.prune_latency_size, ",".join(args.precisions))
    if pruned and not cache.get(key):
        print(f"[{time.strftime('%H:%M:%S')}] latency of the pruned TSM, {args.prune_latency_size} px", flush=True)
        size = args.prune_latency_size
        ckpt, bundle = _resized(load_checkpoint(pruned_path(args, work, seed)), size, args.frames)
        rows = per_frame_cost(ckpt, bundle, work / f"latency-curl-s{seed}-{size}", args.precisions, 1)
        cache.put(key, {"part": "latency", "model": f"CURL-pruned seed {seed} ({pruned['macs_ratio']:.2f} MACs)",
                        "rows": rows})
        _print_rows(rows)


def _print_rows(rows: list[dict]) -> None:
    for r in rows:
        print(f"  {r['size']} px {r['precision']}: p50 {r['p50_ms']} ms min {r['min_ms']} ms, "
              f"{r['macs_per_frame'] / 1e6:.1f} MMAC/frame, state {r['state_bytes']} B {r['error'] or ''}", flush=True)


# ---------------------------------------------------------------- CURL pruning

def prune_key(args: argparse.Namespace, seed: int) -> str:
    steps = "" if args.prune_steps == 1 else f"k{args.prune_steps}"  # the recorded runs: one step
    return _key("prune", train_key(args, "tsm_causal", seed), args.prune_target, "fisher" + steps,
                f"ft{args.prune_epochs}")


def pruned_path(args: argparse.Namespace, work: Path, seed: int) -> Path:
    return work / f"tsm_causal-s{seed}-curl{'' if args.prune_steps == 1 else args.prune_steps}.pt"


def run_prune(args: argparse.Namespace, cache: Cache, work: Path, seed: int) -> None:
    """CURL-prune the causal TSM of ``seed`` and record its offline and streaming accuracy (its
    per-frame cost is the ``latency`` part's, which needs LiteRT)."""
    from edgekit.checkpoint import load_checkpoint
    from edgekit.compress.prune import prune

    parent_key = train_key(args, "tsm_causal", seed)
    key = prune_key(args, seed)
    parent = work / f"tsm_causal-s{seed}.pt"
    if cache.get(key) or not cache.get(parent_key):
        return
    out = pruned_path(args, work, seed)
    print(f"[{time.strftime('%H:%M:%S')}] prune tsm_causal seed {seed}", flush=True)
    t0 = time.perf_counter()
    if not out.is_file():
        prune(parent, None, out, target=args.prune_target, scoring="fisher", steps=args.prune_steps,
              finetune_epochs=args.prune_epochs,
              proxy_size=args.proxy_size, seed=seed, progress=False, force=True, device=args.device)
    seconds = time.perf_counter() - t0
    ckpt = load_checkpoint(out)
    rec = {"part": "prune", "model": "tsm_causal_curl", "seed": seed, "prune_seconds": seconds,
           "device": device_name(args.device),
           "macs_ratio": ckpt.metrics.get("macs", float("nan")) / ckpt.metrics.get("macs_before", float("nan")),
           "metrics": {k: v for k, v in ckpt.metrics.items() if isinstance(v, (int, float, str))},
           **accuracy_record(ckpt, streaming=True)}
    cache.put(key, rec)
    print(f"[{time.strftime('%H:%M:%S')}] pruned s{seed}: offline {rec['offline_top1']:.1f} %, stream end "
          f"{rec['streaming']['online']['end']:.1f} % ({seconds:.0f} s)", flush=True)


# ---------------------------------------------------------------- table

def _ms(values: list[float], digits: int = 1) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def write_table(args: argparse.Namespace, cache: Cache) -> None:
    import edgekit

    cache.refresh()
    recs = list(cache.data.values())
    lines = [
        "# Gestures: TSN vs TSM offline vs streaming TSM (issue 9)", "",
        f"Command: `{rerun_command(__file__, sys.argv[1:], args.work)}` (results cached in "
        f"`WORK/cache.json`; a rerun with more `--seeds` adds rows)  ",
        f"Machine for latency and this table: {platform.machine()}, 2 CPU cores shared with other agents' jobs (load "
        f"average at each run in the JSON), {args.threads} torch thread(s); edgekit {edgekit.__version__}, torch "
        f"{torch.__version__}  ",
        f"Trained and pruned on: {', '.join(sorted({r.get('device', 'cpu') for r in recs if r.get('part') in ('train', 'prune')})) or '-'} "
        "(the streaming evaluation always on the CPU)  ",
        f"Data: `{data_spec(args)}` (11 classes, 16-frame clips, 20 % validation split drawn by the seed), "
        f"{args.frames} frames per clip (TSN segments); mobilenet_v2 backbone, standard stem, from scratch; "
        f"{args.epochs} epochs, batch {args.batch}, SGD peak lr {args.lr} (cosine, 1 warm-up epoch); mean ± std over the seeds "
        "listed in column n (a single number: one seed).", "",
        "## Accuracy (validation, %)", "",
        "| model | overall top-1 | within-pair (5 direction pairs, chance 50) | clip end smoothed | "
        "pairs smoothed | settle frame (raw, mean of 8) | train wall s | seeds (n) |",
        "|---|---|---|---|---|---|---|---|"]
    train = [r for r in recs if r.get("part") == "train"]
    for model, name in (("tsn", "TSN (order-blind)"), ("tsm_bi", "TSM offline (bidirectional)"),
                        ("tsm_causal", "TSM causal, offline clip model")):
        rs = sorted((r for r in train if r["model"] == model), key=lambda r: r["seed"])
        if rs:
            lines.append(f"| {name} | {_ms([r['offline_top1'] for r in rs])} | "
                         f"{_ms([r['offline_pairs']['all'] for r in rs])} | - | - | - | "
                         f"{_ms([r['train_seconds'] for r in rs], 0)} | {[r['seed'] for r in rs]} ({len(rs)}) |")
        if model == "tsm_causal" and rs:
            st = [r["streaming"] for r in rs]
            lines.append(f"| TSM online (causal, streamed, clip end raw) | {_ms([s['online']['end'] for s in st])} | "
                         f"{_ms([s['pairs_end']['all'] for s in st])} | {_ms([s['smoothed']['end'] for s in st])} | "
                         f"{_ms([s['pairs_smoothed']['all'] for s in st])} | "
                         f"{_ms([s['online']['settle']['mean'] for s in st], 2) if isinstance(st[0]['online'].get('settle'), dict) else '-'} | "
                         f"(same weights) | {[r['seed'] for r in rs]} ({len(rs)}) |")
    pruned = sorted((r for r in recs if r.get("part") == "prune"), key=lambda r: r["seed"])
    if pruned:
        st = [r["streaming"] for r in pruned]
        lines.append(f"| TSM causal CURL-pruned ({args.prune_target}, fisher, {args.prune_steps} step(s), "
                     f"{args.prune_epochs}-epoch fine-tune), "
                     f"offline / streamed end raw | {_ms([r['offline_top1'] for r in pruned])} / "
                     f"{_ms([s['online']['end'] for s in st])} | {_ms([r['offline_pairs']['all'] for r in pruned])} / "
                     f"{_ms([s['pairs_end']['all'] for s in st])} | {_ms([s['smoothed']['end'] for s in st])} | "
                     f"{_ms([s['pairs_smoothed']['all'] for s in st])} | - | "
                     f"prune+fine-tune {_ms([r['prune_seconds'] for r in pruned], 0)} | "
                     f"{[r['seed'] for r in pruned]} ({len(pruned)}) |")
    causal = [r for r in train if r["model"] == "tsm_causal"]
    if causal:
        eq = [f"{r['streaming']['equivalence']['max_abs_error']:.1e}" for r in causal]
        lines += ["", f"Streaming-vs-offline equivalence (max abs per-frame logit difference, online TSM frame by "
                      f"frame vs the causal clip model, fp32 CPU), per seed: {', '.join(eq)}; states per stream: "
                      f"{causal[0]['streaming']['states']}; stride {causal[0]['streaming']['stride']} "
                      f"(every other frame of the 16: the 8 segment centres)."]
        pairs = {}
        for r in sorted(train, key=lambda r: r["seed"]):
            for name, v in r["offline_pairs"].items():
                pairs.setdefault((r["model"], name), []).append(v)
        names = [k for k in causal[0]["offline_pairs"] if k != "all"]
        lines += ["", "Within-pair accuracy per pair (offline clip models; %):", "",
                  "| model | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
        for model in MODELS:
            if (model, names[0]) in pairs:
                lines.append(f"| {model} | " + " | ".join(_ms(pairs[(model, n)]) for n in names) + " |")
        lines.append("| tsm_causal streamed, end raw | " + " | ".join(
            _ms([r["streaming"]["pairs_end"][n] for r in causal]) for n in names) + " |")
    lat = [r for r in recs if r.get("part") == "latency"]
    if lat:
        lines += ["", "## Per-frame cost of the streaming artifact (LiteRT, 1 thread, states fed back)", "",
                  "| model | input | precision | p50 ms / frame | min ms / frame | MMAC / frame | state bytes | "
                  "states | parity | load avg |", "|---|---|---|---|---|---|---|---|---|---|"]
        rows = [(r["model"] if r["model"].startswith("CURL") else f"TSM causal ({r['model']})", r, x)
                for r in lat for x in r["rows"]]
        for name, r, x in sorted(rows, key=lambda t: (t[2]["size"], t[2]["precision"], t[0])):
            parity = x.get("parity")
            ptxt = ("FAILED (kept for timing)" if x.get("gate_failed") else "pass") + (
                f", top-1 agr. {parity['top1_agreement']:.0%}" if isinstance(parity, dict) and "top1_agreement" in parity
                else "")
            err = f" ({x['error']})" if x.get("error") else ""
            lines.append(f"| {name} | {x['size']} px | {x['precision']} | {_fmt(x['p50_ms'])}{err} | {_fmt(x['min_ms'])} | "
                         f"{x['macs_per_frame'] / 1e6:.1f} | {x['state_bytes']} | {x['states']} | {ptxt} | "
                         f"{r['loadavg']:.1f} |")
    out = Path(args.out)
    notes = out.read_text().partition(NOTES)[2] if out.is_file() else ""
    out.write_text("\n".join(lines) + "\n\n" + (NOTES + notes if notes else ""))
    out.with_suffix(".json").write_text(json.dumps(sorted(recs, key=lambda r: r["key"]), indent=1))
    print("\n".join(lines))


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", required=True, help="folder for checkpoints, artifacts and cache.json")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--parts", nargs="+", default=["train", "latency", "prune"], choices=["train", "latency", "prune"])
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS),
                    help="which clip models to train (split them over processes sharing --work)")
    ap.add_argument("--n", type=int, default=1100, help="gesture clips in all (100 per class)")
    ap.add_argument("--size", type=int, default=32, help="training frame size (px)")
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=16)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=0.02, help="peak SGD learning rate (edgekit's default 0.05 spiked "
                    "the loss after warm-up in the 8-epoch probe)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads for training and evaluation")
    ap.add_argument("--device", default="auto", help="where training and pruning run (auto: CUDA when present)")
    ap.add_argument("--latency-sizes", type=int, nargs="+", default=[112, 160])
    ap.add_argument("--precisions", nargs="+", default=["fp32", "int8"])
    ap.add_argument("--prune-target", default="macs=0.5")
    ap.add_argument("--prune-epochs", type=int, default=2)
    ap.add_argument("--prune-steps", type=int, default=1, help="re-scored prune steps (the recorded run: 1)")
    ap.add_argument("--proxy-size", type=int, default=256, help="training clips CURL scores on (edgekit's default)")
    ap.add_argument("--prune-latency-size", type=int, default=160)
    ap.add_argument("--table-only", action="store_true")
    ap.add_argument("--out", default=str(HERE / "gestures_streaming.md"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    cache = Cache(work / "cache.json")
    if not args.table_only:
        # order: seed 0 of every model, its pruned TSM, the per-frame cost (of both), then the other seeds
        for i, seed in enumerate(args.seeds):
            if "train" in args.parts:
                for model in [m for m in ("tsm_causal", "tsn", "tsm_bi") if m in args.models]:
                    run_train(args, cache, work, model, seed)
                    write_table(args, cache)
            if "prune" in args.parts:
                run_prune(args, cache, work, seed)
                write_table(args, cache)
            if i == 0 and "latency" in args.parts:
                run_latency(args, cache, work)
                write_table(args, cache)
    write_table(args, cache)


if __name__ == "__main__":
    main()
