"""Sessions over the export stage's artifact runners (:mod:`edgekit.export.runtimes`).

The export stage already knows how to load every artifact format and feed it a float
NCHW batch (NHWC layouts, int8 inputs with scale and zero point, fixed batches). The
benchmark reuses that: the random input is converted to the artifact's native input
once (``prepare``), and a timed run is ``invoke`` alone -- the runtime executing on
ready input and handing back its output, which is what an application's inference
call costs. ``predict`` is the runner itself (accuracy).
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import Any

from .runners import Session, make_input, nchw_shape


def export_runtimes() -> types.ModuleType:
    """:mod:`edgekit.export.runtimes` without running ``edgekit/export/__init__.py``.

    The export package's ``__init__`` imports torch (hundreds of MB, seconds); the
    runners module itself needs only numpy and the runtime. A worker that measures
    onnxruntime or LiteRT must not carry torch in its peak memory, so where the
    package is not loaded yet it is registered as a bare namespace (this is only
    done inside the single-purpose worker process)."""
    name = "edgekit.export"
    if name not in sys.modules:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.submodule_search_locations:
            pkg = types.ModuleType(name, "edgekit.export (runners only, loaded by the bench worker)")
            pkg.__path__ = list(spec.submodule_search_locations)
            pkg.__package__ = name
            sys.modules[name] = pkg
    return importlib.import_module(name + ".runtimes")


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
