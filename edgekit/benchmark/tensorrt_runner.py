"""TensorRT runner: a serialized engine (``.engine`` / ``.plan``) on an NVIDIA GPU,
loaded by the export stage's :class:`~edgekit.exporters.runtimes.TensorRTRunner`.

The input is placed on the GPU once; a run enqueues the engine
(``execute_async_v3``), synchronises the stream and returns the output tensor on
the GPU. CUDA events around each run also record the GPU-side time
(``device_p50_ms`` and friends). Where TensorRT or CUDA is missing the runtime is
reported unavailable in one line before any process starts.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..exporters.runtimes import TensorRTRunner, require_tensorrt
from .runners import Session, runtime_version, session_from_runner


PRELOAD = ("torch", "tensorrt")


def open_session(job: dict[str, Any]) -> Session:
    require_tensorrt()
    import torch

    runner = TensorRTRunner(Path(job["artifact"]))
    device_ms: list[float] = []
    info = {"delegate": "gpu", "device": torch.cuda.get_device_name(), "threads_effective": None,
            "precision": job.get("precision") or "fp32", "versions": {"tensorrt": runtime_version("tensorrt")},
            "device_latencies_ms": device_ms}
    session = session_from_runner(runner, job, info)
    host_run = session.run

    def run() -> Any:
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record(runner.stream)
        out = host_run()
        end.record(runner.stream)
        end.synchronize()
        device_ms.append(start.elapsed_time(end))
        return out

    session.run = run
    return session
