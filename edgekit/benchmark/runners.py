"""The runtimes edgekit benchmarks on, and the one interface every runner implements.

A runner opens an artifact as a :class:`Session` inside the isolated worker process
(:mod:`edgekit.benchmark.worker`). ``Session.run()`` is one inference as an application
makes it: feed the input, execute, fetch the output into host memory. The harness
times exactly that call, so every runtime is measured the same way.
``Session.predict(x)`` maps a float NCHW batch to outputs (accuracy with ``--data``).

Which runtime runs which format, its session module and its default delegate are in
:mod:`edgekit.formats` (the one table); ``torch`` and ``torch-compile`` run edgekit
checkpoints, the others exported artifacts through the export stage's runners
(:mod:`edgekit.exporters.runtimes`, wrapped by :func:`session_from_runner`), ``adb``
runs a .tflite on a phone with the user's benchmark binary.
"""
from __future__ import annotations

import contextlib
import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, ContextManager

import numpy as np

from .. import formats
from ..errors import EdgekitError


@dataclass
class Session:
    """An artifact loaded on a runtime, ready to time.

    ``run`` does one inference (input in, output out); ``predict`` maps a float32
    NCHW batch to a float32 output array; ``context`` wraps the timed region (e.g.
    ``torch.inference_mode``); ``info`` carries what the runtime reports about itself
    (delegate or execution provider in effect, threads in effect, precision, input
    shape and dtype, versions)."""

    run: Callable[[], Any]
    predict: Callable[[np.ndarray], np.ndarray]
    info: dict[str, Any] = field(default_factory=dict)
    context: Callable[[], ContextManager[Any]] = contextlib.nullcontext


def preload(job: dict[str, Any]) -> None:
    """Import the runtime's Python modules, so ``init_ms`` times loading the model and
    creating the session -- what benchmark_model calls Init -- not library imports."""
    module = importlib.import_module(formats.runtime(job["runtime"]).session)
    for name in getattr(module, "PRELOAD", ()):
        try:
            importlib.import_module(name)
        except ImportError:  # reported by open_session in one line
            pass


def open_session(job: dict[str, Any]) -> Session:
    """Open ``job['artifact']`` on ``job['runtime']`` (inside the worker)."""
    return importlib.import_module(formats.runtime(job["runtime"]).session).open_session(job)


def make_input(shape: tuple[int, ...], dtype: str = "float32", seed: int = 0) -> np.ndarray:
    """A fixed, seeded input: standard normal floats (a normalised image's range) or
    random integers over the full range of integer types."""
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    if np.issubdtype(dt, np.integer):
        info = np.iinfo(dt)
        return rng.integers(info.min, int(info.max) + 1, size=shape, dtype=dt)
    return rng.standard_normal(shape).astype(dt)


def nchw_shape(native_shape: list[Any], layout: str, job: dict[str, Any], what: str,
               fixed_batch: int | None = None) -> tuple[int, ...]:
    """The float NCHW input to time: ``job['input_shape']`` if given, else the artifact's
    own input (``native_shape`` in ``layout``) with the batch set to ``job['batch']``;
    dynamic image dimensions come from the manifest's input spec."""
    batch = int(job["batch"])
    if fixed_batch is not None and fixed_batch != batch:
        raise EdgekitError(f"{what} takes a fixed batch of {fixed_batch}; cannot time batch {batch}")
    if job.get("input_shape"):
        return tuple(int(d) for d in job["input_shape"])
    dims = list(native_shape)
    if layout == "NHWC" and len(dims) == 4:
        dims = [dims[0], dims[3], dims[1], dims[2]]
    spec = list((job.get("input_spec") or {}).get("shape") or [])
    out = [batch]
    for i, d in enumerate(dims[1:], start=1):
        if isinstance(d, int) and d > 0:
            out.append(d)
        elif len(spec) == len(dims) - 1:
            out.append(int(spec[i - 1]))
        else:
            raise EdgekitError(f"{what} has a dynamic input dimension {i} ({d!r}) and no manifest gives it; "
                               "pass input_shape (--input-shape 1,3,224,224)")
    return tuple(out)


def runtime_version(module: str) -> str | None:
    try:
        return str(importlib.import_module(module).__version__)
    except (ImportError, AttributeError):
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version(module.replace("_", "-"))
        except PackageNotFoundError:
            return None


def session_from_runner(runner: Any, job: dict[str, Any], info: dict[str, Any]) -> Session:
    """Wrap an export-stage runner (:mod:`edgekit.exporters.runtimes`) as a timed :class:`Session`.

    The random input is converted to the artifact's native input once (``prepare``), and a
    timed run is ``invoke`` alone -- the runtime executing on ready input and handing back
    its output, which is what an application's inference call costs. ``predict`` is the
    runner itself (accuracy)."""
    shape = nchw_shape(list(runner.input_shape), runner.layout, job, str(runner.path), runner.fixed_batch)
    native = runner.prepare(make_input(shape, "float32", job.get("seed", 0)))
    invoke = runner.invoke

    def run() -> Any:
        return invoke(native)

    base = {"input_shape": list(getattr(native, "shape", shape)), "input_dtype": runner.input_dtype,
            "layout": runner.layout}
    return Session(run=run, predict=runner, info={**base, **info})
