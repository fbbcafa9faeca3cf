"""Phones over adb: push a ``.tflite`` and the user's benchmark binary (for example
LiteRT's ``benchmark_model``), run it pinned to chosen cores, parse its output into
the result schema.

``parse_benchmark_model`` reads both output styles of that tool: the TFLite style
(``count=50 first=... min=... max=... avg=... std=...`` statistics lines, optionally
with ``p5= median= p95=``, then ``Inference timings in us: Init: ..., First
inference: ..., Warmup (avg): ..., Inference (avg): ...``, even with logcat prefixes)
and the newer LiteRT style (``Model initialization: X ms``, ``Inference (avg): X ms
(N runs)``, ``Inference (min|max|std)``). The tool prints no per-run times, so rows
from it have no distribution; p90/p99 stay None unless the tool printed them, and
its p5/p95 are kept as ``p5_ms`` / ``p95_ms``.
"""
from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

from ..errors import EdgekitError
from .stats import CV_THRESHOLD

_NUM = r"([-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)"
_STATS = re.compile(r"count=(\d+)((?:[ \t]+\w+=" + _NUM + r")+)")
_PAIR = re.compile(r"(\w+)=" + _NUM)
_SUMMARY = re.compile(r"Inference timings in us: Init: " + _NUM + r", First inference: " + _NUM
                      + r", Warmup \(avg\): " + _NUM + r", Inference \(avg\): " + _NUM)
_OLD_SUMMARY = re.compile(r"Average inference timings in us: Warmup: " + _NUM + r", Init: " + _NUM
                          + r", (?:no stats|Inference): " + _NUM)
_LITERT = re.compile(r"(Model initialization|Warmup \(first\)|Warmup \(avg\)|Inference \((\w+)\)):\s*"
                     + _NUM + r"(?:\s*ms)?(?:\s*\((\d+) runs\))?")
_MEMORY = [re.compile(r"Overall peak memory footprint \(MB\) via periodic monitoring: " + _NUM),
           re.compile(r"(?:Peak memory footprint|Memory footprint delta from the start of the tool) \(MB\): "
                      r"init=" + _NUM + r" overall=" + _NUM),
           re.compile(r"Overall footprint:\s*" + _NUM + r"\s*MB")]


def _last_number(m: re.Match[str]) -> float:
    return float([g for g in m.groups() if g is not None][-1])


def parse_benchmark_model(text: str, *, cv_threshold: float = CV_THRESHOLD) -> dict[str, Any]:
    """Fields of the result schema from one run of LiteRT/TFLite ``benchmark_model``.

    Raises :class:`EdgekitError` when the text holds no inference timing (the tool
    failed; its last lines are quoted)."""
    out: dict[str, Any] = {}
    summary = _SUMMARY.search(text) or _OLD_SUMMARY.search(text)
    # Statistics lines before the summary; op-profiling tables after it repeat 'count=' lines.
    head = text[: summary.start()] if summary else text
    stats = [(int(m.group(1)), {k: float(v) for k, v in _PAIR.findall(m.group(2))})
             for m in _STATS.finditer(head)]
    stats = [s for s in stats if "avg" in s[1] or "curr" in s[1]]
    if (m := _SUMMARY.search(text)):
        init, first, warm, avg = (float(g) for g in m.groups())
        out.update(init_ms=init / 1e3, first_run_ms=first / 1e3, warmup_mean_ms=warm / 1e3, mean_ms=avg / 1e3)
    elif (m := _OLD_SUMMARY.search(text)):
        warm, init, avg = (float(g) for g in m.groups())
        out.update(init_ms=init / 1e3, warmup_mean_ms=warm / 1e3, mean_ms=avg / 1e3)
    for m in ([] if summary else _LITERT.finditer(text)):  # the newer LiteRT log, times in ms
        key, sub, value, nruns = m.group(1), m.group(2), float(m.group(3)), m.group(4)
        if key == "Model initialization":
            out["init_ms"] = value
        elif key == "Warmup (first)":
            out["first_run_ms"] = value
        elif key == "Warmup (avg)":
            out["warmup_mean_ms"] = value
            if nruns:
                out["warmup_runs"] = int(nruns)
        elif sub:
            field = {"avg": "mean_ms", "min": "min_ms", "max": "max_ms", "std": "std_ms",
                     "median": "p50_ms", "p50": "p50_ms", "p90": "p90_ms", "p95": "p95_ms", "p99": "p99_ms",
                     "p5": "p5_ms"}.get(sub)
            if field:
                out[field] = value
            if sub == "avg" and nruns:
                out["timed_runs"] = int(nruns)
    if stats:
        count, timed = stats[-1]
        out["timed_runs"] = count
        for src, dst in (("min", "min_ms"), ("max", "max_ms"), ("avg", "mean_ms"), ("std", "std_ms"),
                         ("median", "p50_ms"), ("p5", "p5_ms"), ("p95", "p95_ms")):
            if src in timed:
                out[dst] = timed[src] / 1e3
        if len(stats) > 1:
            out["warmup_runs"] = stats[-2][0]
        elif "first" in timed and "first_run_ms" not in out:
            out["first_run_ms"] = timed["first"] / 1e3
    if "mean_ms" not in out:
        tail = " | ".join(ln.strip() for ln in text.strip().splitlines()[-3:])
        raise EdgekitError(f"benchmark output has no inference timings (did the tool fail?): {tail[:300]}")
    for pat in _MEMORY:
        if (m := pat.search(text)):
            out["peak_rss_mb"] = _last_number(m)
            break
    if (m := re.search(r"#threads used for CPU inference: \[(\d+)\]", text) or
            re.search(r"Num threads: \[(\d+)\]", text)):
        out["threads_effective"] = int(m.group(1))
    if (m := re.search(r"The input model file size \(MB\): " + _NUM, text)):
        out["model_size_mb"] = float(m.group(1))
    if (m := re.search(r"Replacing (\d+) out of (\d+) node\(s\) with delegate \((\w+)\)", text)):
        out["delegated_nodes"] = f"{m.group(1)}/{m.group(2)}"
        out["delegate"] = {"TfLiteXNNPackDelegate": "xnnpack"}.get(m.group(3), m.group(3))
    elif "XNNPACK delegate" in text:
        out["delegate"] = "xnnpack"
    if out.get("std_ms") is not None and out["mean_ms"] > 0:
        out["cv"] = out["std_ms"] / out["mean_ms"]
        out["noisy"] = out["cv"] > cv_threshold
        out["cv_threshold"] = cv_threshold
    out["throughput_ips"] = 1000.0 / out["mean_ms"] if out["mean_ms"] > 0 else None
    out.setdefault("p50_ms", None)
    out.setdefault("p90_ms", None)
    out.setdefault("p99_ms", None)
    out["latencies_ms"] = []
    return out


def core_mask(cores: str | list[int]) -> str:
    """``"4-7"``, ``"4,5"`` or [4, 5] -> the hex mask taskset takes (``f0``)."""
    ids: list[int] = []
    parts = cores.split(",") if isinstance(cores, str) else [str(c) for c in cores]
    try:
        for part in parts:
            part = part.strip()
            if "-" in part:
                lo, hi = part.split("-", 1)
                ids.extend(range(int(lo), int(hi) + 1))
            elif part:
                ids.append(int(part))
    except ValueError:
        ids = []
    if not ids or min(ids) < 0:
        raise EdgekitError(f"bad core list {cores!r}; use e.g. 4-7 or 4,5")
    return format(sum(1 << i for i in set(ids)), "x")


def _adb(serial: str | None) -> list[str]:
    exe = shutil.which("adb")
    if exe is None:
        raise EdgekitError("adb runtime unavailable: adb is not on PATH (install Android platform-tools)")
    return [exe, *(["-s", serial] if serial else [])]


def _call(cmd: list[str], timeout: float) -> str:
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise EdgekitError(f"adb timed out after {timeout:g} s: {' '.join(cmd[-3:])}") from None
    if res.returncode != 0:
        raise EdgekitError(f"adb failed ({res.returncode}): {(res.stderr or res.stdout).strip()[-300:]}")
    return res.stdout + res.stderr


def device_info(adb: list[str]) -> dict[str, Any]:
    props = {}
    for prop in ("ro.product.model", "ro.soc.model", "ro.board.platform", "ro.build.version.release"):
        try:
            props[prop] = _call([*adb, "shell", "getprop", prop], 15).strip()
        except EdgekitError:
            props[prop] = ""
    return {"cpu": props["ro.soc.model"] or props["ro.board.platform"] or None, "device": props["ro.product.model"],
            "os": f"Android {props['ro.build.version.release']}".strip()}


def bench_on_device(art: Any, *, binary: str, threads: int, warmup: int = 10, runs: int | None = None,
                    timeout: float = 600.0, serial: str | None = None, cores: str | None = None,
                    remote_dir: str = "/data/local/tmp/edgekit", extra_args: list[str] | None = None) -> dict[str, Any]:
    """Push, run and parse; returns the measured fields of a result row."""
    if art.format != "tflite":
        raise EdgekitError(f"adb runtime runs .tflite files with the benchmark binary, not {art.path.suffix}")
    local_bin = Path(binary)
    if not local_bin.is_file():
        raise EdgekitError(f"benchmark binary not found: {local_bin} (pass adb={{'binary': PATH}}, --adb-binary)")
    adb = _adb(serial)
    state = _call([*adb, "get-state"], 30).strip()
    if state != "device":
        raise EdgekitError(f"adb device not ready (state {state!r})")
    _call([*adb, "shell", "mkdir", "-p", remote_dir], 30)
    remote_bin, remote_model = f"{remote_dir}/{local_bin.name}", f"{remote_dir}/{art.path.name}"
    _call([*adb, "push", str(local_bin), remote_bin], timeout)
    _call([*adb, "push", str(art.path), remote_model], timeout)
    _call([*adb, "shell", "chmod", "755", remote_bin], 30)
    tool = [remote_bin, f"--graph={remote_model}", f"--num_threads={threads}", f"--warmup_runs={warmup}",
            f"--num_runs={runs or 50}", *(extra_args or [])]
    prefix = ["taskset", core_mask(cores)] if cores else []
    text = _call([*adb, "shell", " ".join(shlex.quote(a) for a in prefix + tool)], timeout)
    row = parse_benchmark_model(text)
    row.update(device=serial or "adb", machine=device_info(adb), runtime="adb",
               cores=cores, tool=local_bin.name)
    return row
