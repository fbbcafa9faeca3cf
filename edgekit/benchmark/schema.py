"""The result schema: one row per (artifact, runtime, threads), the same for every runtime.

A results file is JSON::

    {"format": "edgekit.bench", "version": 1, "created": ..., "command": ...,
     "machine": {...}, "rows": [ROW, ...]}

Every row carries the fields below (``None`` where a runtime cannot say, e.g. p90 from
a phone tool that prints only a mean). Times are milliseconds, sizes megabytes.
A failed measurement is a row with ``error`` set and no statistics.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ..errors import EdgekitError
from ..fileio import Kind, is_json_document

FORMAT = "edgekit.bench"
VERSION = 1
#: Only a results file is ever overwritten by one (``--force`` or not).
RESULTS_KIND = Kind("an edgekit bench results file", lambda p: is_json_document(p, FORMAT))

FIELDS: dict[str, str] = {
    "model": "the model the artifact is a form of (manifest source, else file stem)",
    "lineage": "{sha256, name, parent_sha256, root_sha256, root_name}: the checkpoint measured (a torch row's "
               "own, an artifact's source checkpoint from its manifest), its parent and the original model it "
               "descends from; reports take speed-ups against the original's rows (None: unknown)",
    "artifact": "path of the benchmarked file", "format": "torch | onnx | tflite | tensorrt | coreml",
    "runtime": "torch | torch-compile | onnxruntime | litert | tensorrt | coreml | adb",
    "delegate": "delegate / execution provider in effect (eager, CPUExecutionProvider, xnnpack, ...)",
    "device": "cpu, cuda, a GPU name or an adb serial",
    "threads": "threads requested", "threads_effective": "threads the runtime reports in effect",
    "process_threads": "OS threads in the measuring process after the runs",
    "batch": "batch size", "input_shape": "input tensor shape", "input_dtype": "input dtype",
    "precision": "fp32 | fp16 | int8 (manifest, else read from the weights)",
    "warmup_runs": "untimed runs after the first", "timed_runs": "runs in the statistics",
    "init_ms": "load + prepare (session/interpreter creation)", "first_run_ms": "the first inference alone",
    "min_ms": "", "mean_ms": "", "std_ms": "sample standard deviation", "p50_ms": "", "p90_ms": "", "p99_ms": "",
    "max_ms": "", "cv": "std / mean", "noisy": "cv above cv_threshold: interference, compare with care",
    "throughput_ips": "inputs per second (batch / mean latency)",
    "peak_rss_mb": "peak resident memory of the measuring process",
    "baseline_rss_mb": "resident memory before the model was loaded",
    "model_size_mb": "artifact size on disk", "latencies_ms": "every timed run, in order",
    "accuracy": "{data, n, top1[, top5]} with --data ({data, n, mae, rmse, pearson[, eps_error]} for "
                "label-distribution models), or {error}", "machine": "CPU model, cores, OS",
    "load_avg_1m": "1-minute load average when the run started", "versions": "runtime and edgekit versions",
    "error": "why the measurement failed (None when it succeeded)",
    "per": "'frame' for a streaming artifact: every latency is one frame's call with the previous call's states "
           "fed back, throughput is frames/s (None: one input per call)",
    "streaming": "True for a streaming (one frame per call, stateful) artifact", "state_feedback": "states fed back",
}


def error_row(base: dict[str, Any], error: str) -> dict[str, Any]:
    """A failed measurement: identification fields plus the one-line error."""
    return {**{k: None for k in FIELDS}, **base, "error": error, "latencies_ms": []}


def results_document(rows: list[dict[str, Any]], machine: dict[str, Any], command: str) -> dict[str, Any]:
    import time

    from .. import __version__

    return {"format": FORMAT, "version": VERSION, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "command": command, "edgekit": __version__, "machine": machine, "rows": rows}


def load_results(path: str | Path) -> dict[str, Any]:
    """Read a results file written by :func:`edgekit.bench`; one clear line if it is not one."""
    p = Path(path)
    if not p.is_file():
        raise EdgekitError(f"results file not found: {p}")
    try:
        doc = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise EdgekitError(f"{p} is not a readable results file: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("rows"), list):
        raise EdgekitError(f"{p} is not an edgekit bench results file (no '{FORMAT}' header)")
    if doc.get("version", 0) > VERSION:
        raise EdgekitError(f"{p} was written by a newer edgekit (results v{doc['version']})")
    for i, row in enumerate(doc["rows"]):
        if not isinstance(row, dict):
            raise EdgekitError(f"{p}: rows[{i}] is not a result row (a JSON object)")
        bad = _non_finite(row)
        if bad is not None:
            raise EdgekitError(f"{p}: rows[{i}].{bad[0]} is {bad[1]}; a measurement is a finite number "
                               "(this file was damaged or not written by edgekit bench)")
    return doc


#: fields that may hold NaN in a sound row: Pearson's r of constant predictions is undefined
MAY_BE_NAN = frozenset({"accuracy.pearson"})


def _non_finite(value: Any, field: str = "") -> tuple[str, float] | None:
    """The first (dotted field, value) in ``value`` that is a NaN or infinite number, else None.

    JSON readers accept ``NaN`` and ``Infinity``; a report drawn from them would print "nan"
    as if it had been measured."""
    if isinstance(value, float) and not math.isfinite(value):
        return None if field in MAY_BE_NAN and math.isnan(value) else (field, value)
    if isinstance(value, dict):
        items = ((f"{field}.{k}" if field else str(k), v) for k, v in value.items())
    elif isinstance(value, list):
        items = ((f"{field}[{j}]", v) for j, v in enumerate(value))
    else:
        return None
    for name, v in items:
        found = _non_finite(v, name)
        if found is not None:
            return found
    return None
