"""LiteRT runner: the ai-edge-litert interpreter (``tflite_runtime`` where only it
exists, e.g. ARM boards) with a thread count and the XNNPACK delegate.

XNNPACK is LiteRT's default CPU delegate: the builtin op resolver applies it, and
``num_threads`` sizes both the interpreter's and XNNPACK's thread pool. The session
is the export stage's :class:`~edgekit.exporters.runtimes.LiteRTRunner` (int8 inputs
quantized with the tensor's scale and zero point, NHWC handled). Delegate ``none``
loads the same model with ``BUILTIN_WITHOUT_DEFAULT_DELEGATES`` (LiteRT's own
kernels) to show what XNNPACK buys. A run is ``set_tensor`` + ``invoke`` +
``get_tensor`` (a copy).
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import EdgekitError
from ..exporters.runtimes import LiteRTRunner
from .runners import Session, runtime_version, session_from_runner


PRELOAD = ("ai_edge_litert.interpreter",)


def tflite_precision(interp: Any) -> str:
    """int8 if quantized integer tensors carry the weights, fp16 if half-precision constants
    are common, else fp32 (read from the interpreter's tensor table)."""
    kinds: Counter[str] = Counter()
    for t in interp.get_tensor_details():
        dt = np.dtype(t["dtype"])
        q = t.get("quantization_parameters") or {}
        if dt in (np.int8, np.uint8, np.int16) and len(q.get("scales", [])):
            kinds["int8"] += 1
        elif dt == np.float16:
            kinds["fp16"] += 1
        elif dt == np.float32:
            kinds["fp32"] += 1
    if kinds["int8"]:
        return "int8"
    return "fp16" if kinds["fp16"] > kinds["fp32"] / 4 else "fp32"


def open_session(job: dict[str, Any]) -> Session:
    delegate = job.get("delegate") or "xnnpack"
    path, threads = Path(job["artifact"]), int(job["threads"])
    if delegate not in ("xnnpack", "none"):
        raise EdgekitError(f"litert: unknown delegate {delegate!r}; use xnnpack or none")
    if job.get("stream"):  # a streaming artifact: one frame per call, states fed back
        from .streaming import stream_session

        return stream_session(job, {"delegate": delegate, "device": "cpu", "threads_effective": threads,
                                    "versions": {"ai-edge-litert": runtime_version("ai_edge_litert")}},
                              builtin_kernels=delegate == "none")
    runner = LiteRTRunner(path, threads=threads, builtin_kernels=delegate == "none")
    package = "ai_edge_litert" if type(runner.interp).__module__.startswith("ai_edge_litert") else "tflite_runtime"
    info = {"delegate": delegate, "device": "cpu", "threads_effective": threads,
            "precision": job.get("precision") or tflite_precision(runner.interp),
            "versions": {package.replace("_", "-"): runtime_version(package)}}
    return session_from_runner(runner, job, info)
