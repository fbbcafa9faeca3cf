"""``edgekit eval --streaming``: a causal TSM run as its online model, frame by frame, over whole clips.

The real-time setting of Lin, Gan & Han ("TSM: Temporal Shift Module for Efficient Video
Understanding", ICCV 2019, online demo) and of Zhang, Liu & Wu ("Towards Real-Time Action
Recognition on Mobile Devices Using Deep Models", arXiv 1906.07052, 2019): each prediction
uses only the frames seen so far. :func:`evaluate_streaming` takes the online model of a
causal TSM checkpoint (:func:`edgekit.models.temporal.to_online`, the same weights) and
feeds it every processed frame of every validation clip of the checkpoint's own split,
states fed back, then reports what a user of the stream would see:

* **accuracy over time**: at each processed frame t (clips shorter than t+1 frames drop
  out), and at normalised clip positions q = 1/bins .. 1 (the prediction of the last frame
  processed once a fraction q of the clip has been seen; every clip counts at every q);
* **accuracy at the clip end** (the prediction after the last frame) and the **settle
  frame**: the first processed frame from which the argmax never changes again (0-based;
  also as the fraction ``(settle + 1) / frames`` of the clip seen), mean and median over all
  clips and over the clips right at the end;
* the same for a **smoother** (:mod:`edgekit.evaluation.smoothing`: logits summed over the last
  ``window`` frames, a new label accepted after ``agree`` agreeing predictions);
* the **offline clip accuracy** of the same checkpoint (its clip model on T segment
  centres: exactly :func:`edgekit.evaluation.evaluate`, what ``edgekit eval`` prints);
* the **equivalence error**: max abs difference between the streamed per-frame logits and
  the causal offline model's per-frame logits on the same frames (a sanity number: a
  misplaced state would show here, not just as lower accuracy). On CUDA, PyTorch's default
  TF32 convolutions round at about 1e-3, so expect a larger number there than on the CPU.

**Reading the numbers.** A clip model is trained on the *average* of its per-frame logits
(TSN's consensus), so one frame's logits were never trained to be right on their own, and
the causal model's last frames see mostly the end of a gesture: expect the raw per-frame
accuracy at the clip end below the offline clip accuracy, and the smoother, which sums the
logits of its window as the consensus does, close to it (at the auto stride on the built-in
gestures the 12-frame window spans the whole 8 processed frames, the offline model's frames).

**Preprocessing.** Every processed frame goes through the per-frame eval transform of the
checkpoint's clip spec (:func:`edgekit.data.clips.frame_spec`), the one its clip frames go
through; all frames of a clip share it, as in the offline clip transform.

**Stride** (which frames are processed). The shift mixes features of *consecutive
processed* frames, and training showed the model frames one TSN segment apart (the clip's
length / T). ``stride="auto"`` (the default) processes every s-th frame with s the
median validation clip length / T, rounded (at least 1): the stream then steps through time
at the spacing the model learnt. On the built-in gestures (16-frame clips, T=8) that is
every other frame, the rate of the TSM demo (which processes every other camera frame),
and the processed frames are exactly the segment centres the offline model sees. The
stride is one number per run, as a camera loop's frame skip is, and the processed frames
end at each clip's last frame (``(length - 1) % s, ..., length - 1``). ``stride=1``
processes every frame: the real-time setting when the model is fast enough, at a motion
per step the model was not trained at (compare both with this function).

**State reset.** States are zeroed at the first frame of every clip (each clip is a new
stream: :meth:`~edgekit.models.temporal.OnlineTSM.initial_states`) and never carried from
one clip or batch to another, so a clip's result does not depend on which clips it is
batched with or in which order clips come. In a deployed stream the same rule holds at
every stream start and after frames stop arriving in order (see
:mod:`edgekit.models.temporal`).

**Batching.** Clips with the same number of processed frames run together (states batched
``(N, ...)``), ``batch_size`` clips per call, on ``device``.
"""
from __future__ import annotations

import math
import statistics
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..checkpoint import Checkpoint, load_checkpoint
from ..data import DataBundle
from ..data.clips import ClipTransform, frame_spec, is_clip
from ..data.datasets import Transformed
from ..data.transforms import eval_transform
from ..device import resolve_device
from ..errors import EdgekitError
from .config import DEFAULT_AGREE, DEFAULT_BINS, DEFAULT_WINDOW, STREAM_BATCH_SIZE, EvalConfig, parse_stride
from ..numbers import positive_int
from .smoothing import smooth
from ..stage_config import default
from ..tasks import get_task

RESET_RULE = "states zeroed at the first frame of every clip (each clip is a new stream)"

__all__ = ["DEFAULT_BINS", "RESET_RULE", "StreamFrames", "evaluate_streaming", "format_streaming",
           "resolve_stride", "settle_frames", "stream_indices", "stream_logits"]


# ---------------------------------------------------------------- which frames, how prepared

def stream_indices(length: int, stride: int) -> list[int]:
    """Frames of a ``length``-frame clip a stream at ``stride`` processes: every ``stride``-th,
    ending at the last frame."""
    return list(range((length - 1) % stride, length, stride))


def resolve_stride(stride: int | str, lengths: Sequence[int], frames: int) -> int:
    """``stride`` as a number: ``"auto"`` is the training segment spacing, the median clip
    length over ``frames`` (T) rounded, at least 1 (see the module doc)."""
    if stride == "auto":
        if not lengths:
            raise EdgekitError("no clips to evaluate")
        return max(1, round(statistics.median(lengths) / frames))
    return parse_stride(stride)


class StreamFrames(ClipTransform):
    """clip -> ``(L', C, H, W)``: the frames a stream at ``stride`` processes, each through the
    per-frame eval transform of clip spec ``spec`` (shared by all frames, as offline)."""

    def __init__(self, spec: dict[str, Any], stride: int) -> None:
        super().__init__(int(spec["frames"]), eval_transform(frame_spec(spec)), train=False)
        self.stride = positive_int("stride", stride)

    def indices(self, length: int) -> list[int]:
        return stream_indices(length, self.stride)


# ---------------------------------------------------------------- running and scoring a stream

@torch.no_grad()
def stream_logits(online: torch.nn.Module, clips: torch.Tensor) -> torch.Tensor:
    """Per-frame logits ``(N, L, classes)`` of an online model run frame by frame over clips
    ``(N, L, C, H, W)``, each output state fed back; zero states at frame 0 (the reset)."""
    n, length, _, h, w = clips.shape
    states = online.initial_states(n, h, w, device=clips.device, dtype=clips.dtype)
    out = []
    for t in range(length):
        logits, *states = online(clips[:, t], *states)
        out.append(logits)
    return torch.stack(out, 1)


@torch.no_grad()
def _offline_frame_logits(model: torch.nn.Module, clips: torch.Tensor, max_frames: int) -> torch.Tensor:
    """The offline clip model's per-frame logits of clips ``(N, L, ...)``, a few whole clips at
    a time (about ``max_frames`` frames: the memory of an offline batch, not N x L frames)."""
    step = max(1, max_frames // clips.shape[1])
    return torch.cat([model.frame_logits(clips[k:k + step]) for k in range(0, clips.shape[0], step)])


def settle_frames(labels: torch.Tensor) -> torch.Tensor:
    """``(N, L)`` labels per frame -> ``(N,)``: the first frame from which the label never
    changes again (0 when it never changes; L - 1 when it changes at the last frame)."""
    differs = labels != labels[:, -1:]
    position = torch.arange(1, labels.shape[1] + 1, device=labels.device)
    return (differs * position).amax(1)


def _settle_stats(settle: np.ndarray, lengths: np.ndarray) -> dict[str, Any]:
    if not len(settle):
        return {"n": 0}
    fraction = (settle + 1) / lengths
    return {"n": int(len(settle)), "mean": float(settle.mean()), "median": float(np.median(settle)),
            "mean_fraction": float(fraction.mean()), "median_fraction": float(np.median(fraction))}


def _percent(hits: np.ndarray) -> float:
    return 100.0 * float(hits.mean()) if len(hits) else math.nan


def _summary(correct: list[np.ndarray], settle: np.ndarray, bins: int) -> dict[str, Any]:
    """Clip-end accuracy, curves and settle statistics of one prediction sequence per clip."""
    lengths = np.array([len(c) for c in correct])
    end = np.array([c[-1] for c in correct])
    by_frame = [_percent(np.array([c[t] for c in correct if len(c) > t])) for t in range(lengths.max())]
    curve = [_percent(np.array([c[(b * len(c) + bins - 1) // bins - 1] for c in correct]))
             for b in range(1, bins + 1)]
    return {"end": _percent(end), "mean_over_frames": _percent(np.concatenate(correct)),
            "curve": curve, "by_frame": by_frame,
            "settle": _settle_stats(settle.astype(float), lengths),
            "settle_correct": _settle_stats(settle[end].astype(float), lengths[end])}


def _batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Clip indices grouped by processed length (equal-length clips share states), in
    index order within a length, ``batch_size`` at most per batch."""
    groups: dict[int, list[int]] = {}
    for i, n in enumerate(lengths):
        groups.setdefault(n, []).append(i)
    return [idx[k:k + batch_size] for n in sorted(groups) for idx in [groups[n]]
            for k in range(0, len(idx), batch_size)]


def _online_model(ckpt: Checkpoint) -> tuple[torch.nn.Module, torch.nn.Module]:
    from ..models.temporal import to_online

    if not get_task(ckpt.task).clips or not is_clip(ckpt.input_spec):
        raise EdgekitError(f"streaming evaluation needs a clip model checkpoint (task clip_classify, e.g. "
                           f"tsm_mobilenet_v2 with shift=causal); this one is {ckpt.arch}, task {ckpt.task}")
    model = ckpt.model
    try:
        online = to_online(model)
    except EdgekitError as exc:
        shift = ckpt.arch_kwargs.get("shift") or ("none" if ckpt.arch.startswith("tsn_") else "?")
        raise EdgekitError(f"{ckpt.arch} (shift {shift}) cannot stream: {exc}") from None
    return model, online.eval()


def _stream_all(online: torch.nn.Module, model: torch.nn.Module, loader: DataLoader, batches: list[list[int]],
                window: int, agree: int, max_frames: int, device: torch.device, progress: bool
                ) -> tuple[dict[int, torch.Tensor], dict[int, torch.Tensor], dict[str, Any]]:
    """Stream every batch of clips: per clip index its per-frame argmax and smoothed labels
    (CPU), and the equivalence of the streamed logits with the offline per-frame logits."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    raw: dict[int, torch.Tensor] = {}
    shown: dict[int, torch.Tensor] = {}
    max_err, max_logit, agreeing, total = 0.0, 0.0, 0, 0
    with Progress(TextColumn("streaming eval"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  disable=not progress) as bar:
        task = bar.add_task("clips", total=sum(map(len, batches)))
        for idx, (x, _) in zip(batches, loader):
            x = x.to(device)
            logits = stream_logits(online, x)
            reference = _offline_frame_logits(model, x, max_frames)
            max_err = max(max_err, float((logits - reference).abs().max()))
            max_logit = max(max_logit, float(reference.abs().max()))
            agreeing += int((logits.argmax(-1) == reference.argmax(-1)).sum())
            total += logits.shape[0] * logits.shape[1]
            labels, smoothed = logits.argmax(-1).cpu(), smooth(logits, window, agree).cpu()
            for row, i in enumerate(idx):
                raw[i], shown[i] = labels[row], smoothed[row]
            bar.advance(task, len(idx))
    equivalence = {"max_abs_error": max_err, "max_abs_logit": max_logit, "argmax_agreement": agreeing / max(total, 1),
                   "reference": "the causal offline model's per-frame logits on the same frames"}
    return raw, shown, equivalence


def evaluate_streaming(checkpoint: str | Path | Checkpoint, data: str | DataBundle | None = None, *,
                       split: str = "val", window: int = DEFAULT_WINDOW, agree: int = DEFAULT_AGREE,
                       stride: int | str = default(EvalConfig, "stride"), bins: int = DEFAULT_BINS,
                       batch_size: int = STREAM_BATCH_SIZE, device: str = default(EvalConfig, "device"),
                       workers: int = default(EvalConfig, "workers"), progress: bool = False) -> dict[str, Any]:
    """Run the online model of a causal TSM checkpoint over whole clips of its ``split``
    (its own data and split unless ``data`` is given, split as its training split it) and
    report accuracy over time, at the clip end, the settle frame, the smoother's, the
    offline clip accuracy and the streaming-vs-offline equivalence error (see the module doc).

    Accuracies are percentages; curves have ``bins`` points (position ``1/bins .. 1``) and
    one point per processed frame (``by_frame``, with how many clips reach it).
    ``per_clip`` lists, in dataset order, each clip's length, processed frames, label, final
    predictions and settle frames (raw and smoothed)."""
    from .scores import evaluate

    cfg = EvalConfig(split=split, batch_size=batch_size, device=device, window=window, agree=agree, bins=bins,
                     stride=stride, workers=workers)
    window, agree, bins, batch_size, workers, stride = cfg.window, cfg.agree, cfg.bins, cfg.batch_size, \
        cfg.workers, cfg.stride
    ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint)
    model, online = _online_model(ckpt)
    bundle = data if isinstance(data, DataBundle) else ckpt.load_data(data)
    if not get_task(bundle.task).clips:
        raise EdgekitError(f"data {bundle.spec!r} holds {bundle.task} samples, not clips")
    if bundle.labels and len(bundle.labels) != ckpt.num_outputs:
        raise EdgekitError(f"data {bundle.spec!r} has {len(bundle.labels)} classes; the model has {ckpt.num_outputs}")
    dev = resolve_device(device)
    t0 = time.perf_counter()
    offline = evaluate(ckpt, bundle, split=split, batch_size=batch_size, device=str(dev))

    dataset: Dataset = bundle.val if split == "val" else bundle.train
    items = [dataset[i] for i in range(len(dataset))]  # lazy clips: nothing decoded yet
    lengths = [len(clip) for clip, _ in items]
    targets = [int(t) for _, t in items]
    frames = int(ckpt.input_spec["frames"])
    step = resolve_stride(stride, lengths, frames)
    processed = [len(stream_indices(n, step)) for n in lengths]
    batches = _batches(processed, batch_size)
    loader = DataLoader(Transformed(dataset, StreamFrames(ckpt.input_spec, step)), batch_sampler=batches,
                        num_workers=workers)
    online, model = online.to(dev), model.to(dev).eval()

    raw, shown, equivalence = _stream_all(online, model, loader, batches, window, agree, batch_size * frames,
                                          dev, progress)
    order = range(len(items))
    settle_raw = np.array([int(settle_frames(raw[i][None])[0]) for i in order])
    settle_shown = np.array([int(settle_frames(shown[i][None])[0]) for i in order])
    online_summary = _summary([(raw[i] == targets[i]).numpy() for i in order], settle_raw, bins)
    smooth_summary = _summary([(shown[i] == targets[i]).numpy() for i in order], settle_shown, bins)
    n_frame = [sum(p > t for p in processed) for t in range(max(processed))]
    ends = {i: (int(raw[i][-1]), int(shown[i][-1])) for i in order}
    by_class = {}
    for c, name in enumerate(bundle.labels):
        mine = [i for i in order if targets[i] == c]
        if mine:
            by_class[name] = {"n": len(mine),
                              "end": _percent(np.array([ends[i][0] == c for i in mine])),
                              "smoothed_end": _percent(np.array([ends[i][1] == c for i in mine]))}
    return {
        "checkpoint": str(ckpt.path) if ckpt.path else ckpt.arch, "arch": ckpt.arch,
        "shift": ckpt.arch_kwargs.get("shift"), "states": online.num_states,
        "data": bundle.spec, "split": split, "clips": len(items), "frames": frames,
        "stride": step, "stride_auto": stride == "auto", "reset": RESET_RULE,
        "clip_length": _range(lengths), "processed_frames": {**_range(processed), "total": int(sum(processed))},
        "offline": {**offline, "frames": frames},
        "online": {k: v for k, v in online_summary.items() if k not in ("curve", "by_frame")},
        "smoothed": {"window": window, "agree": agree,
                     **{k: v for k, v in smooth_summary.items() if k not in ("curve", "by_frame")}},
        "curve": {"position": [b / bins for b in range(1, bins + 1)], "online": online_summary["curve"],
                  "smoothed": smooth_summary["curve"]},
        "by_frame": {"n": n_frame, "online": online_summary["by_frame"], "smoothed": smooth_summary["by_frame"]},
        "equivalence": equivalence,
        "by_class": by_class,
        "per_clip": [{"index": i, "target": targets[i], "length": lengths[i], "processed": processed[i],
                      "end": ends[i][0], "settle": int(settle_raw[i]),
                      "smoothed_end": ends[i][1], "smoothed_settle": int(settle_shown[i])} for i in order],
        "device": str(dev), "seconds": time.perf_counter() - t0,
    }


def _range(values: Sequence[int]) -> dict[str, Any]:
    return {"min": int(min(values)), "median": float(statistics.median(values)), "max": int(max(values))}


# ---------------------------------------------------------------- text report

def _settle_text(s: dict[str, Any]) -> str:
    if not s.get("n"):
        return "-"
    return f"{s['mean']:.1f} / {s['median']:.0f}  ({100 * s['mean_fraction']:.0f}% of clip)"


def format_streaming(res: dict[str, Any]) -> str:
    """The report ``edgekit eval --streaming`` prints: a table and the accuracy curve."""
    pf, sm = res["processed_frames"], res["smoothed"]
    auto = " (auto: clip length / T)" if res["stride_auto"] else ""
    lines = [
        f"{res['arch']} streamed as its online model ({res['states']} state tensors) over {res['clips']} "
        f"{res['split']} clips of {res['data']}",
        f"stride {res['stride']}{auto}: {pf['median']:g} processed frames per clip (median; "
        f"{pf['min']}-{pf['max']}); {res['reset']}",
        "",
        f"{'':34}{'clip end':>9}   settle frame mean / median (settled to the right label)",
        f"{'offline clip model (T=' + str(res['frames']) + ' segments)':34}{res['offline']['top1']:8.2f}%",
        f"{'online, per-frame argmax':34}{res['online']['end']:8.2f}%   {_settle_text(res['online']['settle_correct'])}",
        f"{'smoothed (K=' + str(sm['window']) + ', ' + str(sm['agree']) + ' agreeing)':34}{sm['end']:8.2f}%   "
        f"{_settle_text(sm['settle_correct'])}",
        f"settle frame over all clips: online {_settle_text(res['online']['settle'])}; "
        f"smoothed {_settle_text(sm['settle'])}",
        f"equivalence: max |online - causal offline| per-frame logit {res['equivalence']['max_abs_error']:.2e} "
        f"(logits up to {res['equivalence']['max_abs_logit']:.3g}; argmax agreement "
        f"{100 * res['equivalence']['argmax_agreement']:.2f}%)",
        "",
        "accuracy over the clip (% top-1 after seeing this fraction of it):",
        "  seen     " + "".join(f"{q:>7.0%}" for q in res["curve"]["position"]),
        "  online   " + "".join(f"{a:>7.1f}" for a in res["curve"]["online"]),
        "  smoothed " + "".join(f"{a:>7.1f}" for a in res["curve"]["smoothed"]),
    ]
    return "\n".join(lines)
