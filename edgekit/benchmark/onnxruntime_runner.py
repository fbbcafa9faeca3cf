"""ONNX Runtime runner: CPU execution provider with a fixed intra-op thread count;
CUDA and TensorRT execution providers when this onnxruntime build has them.

The session is the export stage's :class:`~edgekit.exporters.runtimes.OnnxRunner`, built by
:func:`~edgekit.exporters.runtimes.ort_session` like every onnxruntime session edgekit opens:
``intra_op_num_threads`` = the requested threads, one inter-op thread, and ONNX
Runtime's defaults otherwise (sequential execution, all graph optimisations), the
configuration its docs recommend for latency; the delegate picks the execution providers
(:data:`~edgekit.exporters.runtimes.PROVIDERS`). A run is ``session.run`` on a ready
input, outputs returned as numpy arrays. The threads in effect are read back from
the session's options.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..exporters.runtimes import PROVIDERS, OnnxRunner
from .runners import Session, runtime_version, session_from_runner

_QUANT_OPS = {"QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger", "QuantizeLinear",
              "DynamicQuantizeLinear", "MatMulNBits"}


PRELOAD = ("onnxruntime", "onnx")


def onnx_precision(path: str) -> str:
    """int8 if the graph holds quantized operators, fp16 if most weights are half, else fp32."""
    import onnx

    model = onnx.load(path, load_external_data=False)
    if any(n.op_type in _QUANT_OPS for n in model.graph.node):
        return "int8"
    half = sum(1 for t in model.graph.initializer if t.data_type == onnx.TensorProto.FLOAT16)
    return "fp16" if half > len(model.graph.initializer) / 2 else "fp32"


def open_session(job: dict[str, Any]) -> Session:
    delegate = job.get("delegate") or "cpu"
    if job.get("stream"):  # a streaming artifact: one frame per call, states fed back
        from .streaming import stream_session

        return stream_session(job, {"delegate": PROVIDERS[delegate][0],
                                    "device": "cpu" if delegate == "cpu" else "cuda",
                                    "threads_effective": int(job["threads"]),
                                    "versions": {"onnxruntime": runtime_version("onnxruntime")}},
                              delegate=delegate)
    runner = OnnxRunner(Path(job["artifact"]), threads=int(job["threads"]), delegate=delegate)
    sess = runner.session
    info = {"delegate": sess.get_providers()[0], "device": "cpu" if delegate == "cpu" else "cuda",
            "threads_effective": sess.get_session_options().intra_op_num_threads,
            "precision": job.get("precision") or onnx_precision(job["artifact"]),
            "versions": {"onnxruntime": runtime_version("onnxruntime")}}
    return session_from_runner(runner, job, info)
