"""CoreML runner (macOS only): the export stage's
:class:`~edgekit.exporters.runtimes.CoreMLRunner` (``MLModel.predict`` on an
``.mlpackage``) with the chosen compute units: delegate ``all`` (default), ``cpu``,
``cpu_gpu`` or ``cpu_ne``. Elsewhere the runtime is reported unavailable in one line
before any process starts: coremltools converts on Linux but cannot predict.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import EdgekitError
from ..exporters.runtimes import CoreMLRunner
from .runners import Session, runtime_version, session_from_runner

_UNITS = {"all": "ALL", "cpu": "CPU_ONLY", "cpu_gpu": "CPU_AND_GPU", "cpu_ne": "CPU_AND_NE"}


PRELOAD = ("coremltools",)


def open_session(job: dict[str, Any]) -> Session:
    delegate = job.get("delegate") or "all"
    if delegate not in _UNITS:
        raise EdgekitError(f"coreml: unknown compute units {delegate!r}; use one of {', '.join(_UNITS)}")
    if job.get("stream"):  # a streaming artifact: one frame per call, states fed back
        from .streaming import stream_session

        return stream_session(job, {"delegate": delegate, "device": "apple", "threads_effective": None,
                                    "versions": {"coremltools": runtime_version("coremltools")}},
                              compute_units=_UNITS[delegate])
    runner = CoreMLRunner(Path(job["artifact"]), compute_units=_UNITS[delegate])
    info = {"delegate": delegate, "device": "apple", "threads_effective": None,
            "precision": job.get("precision") or "fp16", "versions": {"coremltools": runtime_version("coremltools")}}
    return session_from_runner(runner, job, info)
