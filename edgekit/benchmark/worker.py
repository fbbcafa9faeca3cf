"""One measurement, in its own process: ``python -m edgekit.benchmark.worker JOB.json OUT.json``.

The parent (:mod:`edgekit.benchmark.isolate`) writes the job, sets the thread
environment before any runtime is imported, and waits with a timeout; a runtime
that crashes or hangs takes only this process down and becomes one failed row.
Peak memory is this process's high-water mark after the timed runs (the runtime and
model, plus the interpreter; accuracy runs afterwards so its data loading does not
count). Modules imported here must not import torch unless the runner needs it.
"""
from __future__ import annotations

import json
import os
import sys
import time
import traceback
from typing import Any


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    from .machine import peak_rss_mb, proc_status
    from .measure import time_runs
    from .runners import open_session, preload
    from .stats import summarize

    if job.get("cpus") and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, set(int(c) for c in job["cpus"]))
    preload(job)
    base_rss = (proc_status("VmRSS") or 0) / 1024
    t0 = time.perf_counter_ns()
    session = open_session(job)
    init_ms = (time.perf_counter_ns() - t0) / 1e6
    with session.context():
        timing = time_runs(session.run, warmup=int(job["warmup"]), runs=job.get("runs"),
                           min_seconds=job.get("min_seconds"))
    info = dict(session.info)
    device_lat = info.pop("device_latencies_ms", None)
    row: dict[str, Any] = {
        "init_ms": init_ms, **timing,
        **summarize(timing["latencies_ms"], batch=int(info["input_shape"][0]),
                    cv_threshold=float(job.get("cv_threshold", 0.10))),
        "peak_rss_mb": peak_rss_mb(), "baseline_rss_mb": base_rss, "process_threads": proc_status("Threads"),
        "affinity": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
    }
    if device_lat:
        dev = summarize(device_lat[-len(timing["latencies_ms"]):])
        row.update({f"device_{k}": dev[k] for k in ("p50_ms", "p90_ms", "p99_ms", "mean_ms")})
    row.update({k: v for k, v in info.items() if k not in ("input_spec", "labels")})
    if job.get("data"):
        from ..errors import EdgekitError
        from .accuracy import measure_accuracy

        try:
            row["accuracy"] = measure_accuracy(session, job, job.get("max_samples"))
        except EdgekitError as exc:
            row["accuracy"] = {"data": job["data"], "error": str(exc)}
    return row


def main(argv: list[str]) -> int:
    job_path, out_path = argv[1], argv[2]
    with open(job_path) as fh:
        job = json.load(fh)
    try:
        result: dict[str, Any] = {"ok": True, "row": run_job(job)}
    except Exception as exc:  # reported as the row's error; the parent prints one line
        from ..errors import EdgekitError

        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        result = {"ok": False, "error": msg if isinstance(exc, EdgekitError) else f"{type(exc).__name__}: {msg}",
                  "traceback": traceback.format_exc()}
    from ..fileio import write_json

    write_json(out_path, result)  # atomic: a worker killed at its timeout never leaves half a result
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
