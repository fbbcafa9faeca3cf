"""Benchmarking a streaming artifact: latency **per frame** with the state fed back, clip-end accuracy.

A streaming artifact (``edgekit export --streaming``: the online model of a causal TSM,
one frame per call) is timed as a camera loop runs it: every timed call feeds one frame
and the new states the previous call returned (zeros before the first call only), and
fetches the logits; the states are handed back in the runtime's own form (int8 stays
int8 where the state's input and output scales agree, else it is requantized, as an app
must). Feeding zeros every call would time a different, easier computation for no
runtime but would hide a wiring mistake; the feedback is what an app does. Rows carry
``per: "frame"``, ``streaming: true`` and ``state_feedback: true``: their latencies are
per frame and their throughput is frames per second.

Accuracy with ``--data``: each validation clip of the model's own split runs whole,
frame by frame in order at the manifest's ``process_every`` spacing (the frames
``edgekit eval --streaming`` processes), states zeroed at each clip's start (the reset
rule); the reported top-1 is the prediction after the last frame (clip end), with the
mean per-frame top-1 beside it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import EdgekitError
from ..tasks import get_task
from .runners import Session, make_input

#: manifest fields a streaming bench job carries
STREAM_KEYS = ("frame_input", "logits_output", "states", "reset", "input_spec")


def stream_job(manifest: dict[str, Any]) -> dict[str, Any] | None:
    """What a worker needs to run a streaming artifact (``None`` for any other artifact)."""
    if not manifest.get("streaming"):
        return None
    return {k: manifest.get(k) for k in STREAM_KEYS}


def stream_row(manifest: dict[str, Any]) -> dict[str, Any]:
    """Row fields that label a streaming artifact's rows as per-frame latency (``per`` None for others)."""
    if manifest.get("streaming"):
        return {"per": "frame", "streaming": True, "state_feedback": True}
    return {"per": None, "streaming": False, "state_feedback": False}


def wiring(stream: dict[str, Any]) -> dict[str, Any]:
    return {"frame": stream["frame_input"]["name"], "logits": stream["logits_output"]["name"],
            "states": [{"input": s["input"], "output": s["output"]} for s in stream["states"]]}


def stream_session(job: dict[str, Any], info: dict[str, Any], **options: Any) -> Session:
    """The timed session of a streaming artifact: ``run()`` is one frame with the states fed back;
    ``predict(frames)`` the per-frame logits of one whole clip from zero states."""
    from ..exporters.stream_runners import open_stream, run_stream

    stream, path = job["stream"], Path(job["artifact"])
    wires = wiring(stream)
    runner = open_stream(path, threads=int(job["threads"]), **options)
    names = [wires["frame"], *(s["input"] for s in wires["states"])]
    outs = [wires["logits"], *(s["output"] for s in wires["states"])]
    missing = [n for n in names if n not in runner.inputs] + [n for n in outs if n not in runner.outputs]
    if missing:
        raise EdgekitError(f"{path.name}: its manifest names tensors the artifact does not have: {', '.join(missing)}")
    shape = list(runner.inputs[wires["frame"]]["shape"])
    if job.get("batch", 1) != 1:
        raise EdgekitError(f"{path.name} is a streaming artifact: one frame per call, batch 1")
    step = runner.stepper(wires, make_input(tuple(shape), "float32", job.get("seed", 0)))

    def predict(frames: np.ndarray) -> np.ndarray:
        return run_stream(runner, wires, frames)

    state_bytes = sum(int(np.prod(s["shape"])) * np.dtype(s["dtype"]).itemsize for s in stream["states"])
    return Session(run=step, predict=predict, info={
        **info, "input_shape": shape, "input_dtype": runner.inputs[wires["frame"]]["dtype"], "layout": "NCHW",
        "precision": job.get("precision") or info.get("precision"), "per": "frame", "streaming": True,
        "state_feedback": True, "states": len(wires["states"]), "state_bytes": state_bytes,
        "process_every": (stream.get("reset") or {}).get("process_every")})


def stream_accuracy(session: Session, job: dict[str, Any], bundle: Any,
                    max_samples: int | None = None) -> dict[str, Any]:
    """Clip-end top-1 (%) over whole validation clips of ``bundle`` (the model's own validation
    split, :func:`edgekit.benchmark.accuracy.validation_data`) run frame by frame (module docstring)."""
    from ..data.clips import ArrayClip
    from ..evaluation.streaming import StreamFrames

    stream = job["stream"]
    clip_spec = (stream.get("input_spec") or {}).get("clip_spec")
    if not clip_spec:
        raise EdgekitError("the streaming manifest records no clip spec; re-export with this edgekit")
    if not get_task(bundle.task).clips:
        raise EdgekitError(f"a streaming model is scored on clips; {job['data']!r} is a {bundle.task} dataset")
    labels = job.get("labels")
    if labels and bundle.labels and list(labels) != list(bundle.labels):
        raise EdgekitError(f"the model's labels ({', '.join(labels[:4])}...) differ from the data's "
                           f"({', '.join(bundle.labels[:4])}...)")
    frames = StreamFrames(clip_spec, int((stream.get("reset") or {}).get("process_every") or 1))
    n = len(bundle.val) if max_samples is None else min(len(bundle.val), max_samples)
    end = per_frame = total = 0
    for i in range(n):
        clip, target = bundle.val[i]
        x = frames(ArrayClip(clip) if isinstance(clip, np.ndarray) else clip).float().contiguous().numpy()
        pred = np.asarray(session.predict(x)).argmax(1)
        end += int(pred[-1] == int(target))
        per_frame += int((pred == int(target)).sum())
        total += len(pred)
    return {"data": job["data"], "split": "val", "n": n, "top1": 100.0 * end / max(n, 1),
            "top1_per_frame": 100.0 * per_frame / max(total, 1),
            "measure": "clip end: whole clips frame by frame, states fed back, reset per clip"}
