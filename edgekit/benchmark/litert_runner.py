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
from .artifact_session import export_runtimes, session_from_runner
from .runners import Session, runtime_version


PRELOAD = ("ai_edge_litert.interpreter",)


def preload() -> None:
    export_runtimes()


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


def _builtin_kernels_runner(path: Path, threads: int) -> Any:
    """The export LiteRTRunner, with the interpreter rebuilt without default delegates."""
    from ai_edge_litert import interpreter as mod

    rt = export_runtimes()
    LiteRTRunner, Runner = rt.LiteRTRunner, rt.Runner

    class BuiltinKernels(LiteRTRunner):
        def __init__(self) -> None:
            Runner.__init__(self, path)
            self.interp = mod.Interpreter(model_path=str(path), num_threads=threads,
                                          experimental_op_resolver_type=mod.OpResolverType
                                          .BUILTIN_WITHOUT_DEFAULT_DELEGATES)
            self.interp.allocate_tensors()
            self.inp, self.out = self.interp.get_input_details()[0], self.interp.get_output_details()[0]
            self.input_shape = [int(d) for d in self.inp["shape"]]
            self.fixed_batch = self.input_shape[0]
            self.input_dtype = np.dtype(self.inp["dtype"]).name
            self.layout = "NHWC" if self.input_shape[-1] in (1, 3, 4) and self.input_shape[1] not in (1, 3, 4) \
                else "NCHW"

    return BuiltinKernels()


def open_session(job: dict[str, Any]) -> Session:
    LiteRTRunner = export_runtimes().LiteRTRunner

    delegate = job.get("delegate") or "xnnpack"
    path, threads = Path(job["artifact"]), int(job["threads"])
    if delegate == "xnnpack":
        runner = LiteRTRunner(path, threads=threads)
    elif delegate == "none":
        runner = _builtin_kernels_runner(path, threads)
    else:
        raise EdgekitError(f"litert: unknown delegate {delegate!r}; use xnnpack or none")
    package = "ai_edge_litert" if type(runner.interp).__module__.startswith("ai_edge_litert") else "tflite_runtime"
    info = {"delegate": delegate, "device": "cpu", "threads_effective": threads,
            "precision": job.get("precision") or tflite_precision(runner.interp),
            "versions": {package.replace("_", "-"): runtime_version(package)}}
    return session_from_runner(runner, job, info)
