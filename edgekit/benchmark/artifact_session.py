"""Sessions over the export stage's artifact runners (:mod:`edgekit.exporters.runtimes`).

The export stage already knows how to load every artifact format and feed it a float
NCHW batch (NHWC layouts, int8 inputs with scale and zero point, fixed batches). The
benchmark reuses that: the random input is converted to the artifact's native input
once (``prepare``), and a timed run is ``invoke`` alone -- the runtime executing on
ready input and handing back its output, which is what an application's inference
call costs. ``predict`` is the runner itself (accuracy).
"""
from __future__ import annotations

import importlib
import types
from typing import Any

from .runners import Session, make_input, nchw_shape


def export_runtimes() -> types.ModuleType:
    """:mod:`edgekit.exporters.runtimes`: its package imports nothing, so no torch is loaded."""
    return importlib.import_module("edgekit.exporters.runtimes")


def session_from_runner(runner: Any, job: dict[str, Any], info: dict[str, Any]) -> Session:
    """Wrap an export runner as a timed :class:`Session`."""
    shape = nchw_shape(list(runner.input_shape), runner.layout, job, str(runner.path), runner.fixed_batch)
    native = runner.prepare(make_input(shape, "float32", job.get("seed", 0)))
    invoke = runner.invoke

    def run() -> Any:
        return invoke(native)

    base = {"input_shape": list(getattr(native, "shape", shape)), "input_dtype": runner.input_dtype,
            "layout": runner.layout}
    return Session(run=run, predict=runner, info={**base, **info})
