"""Run one measurement in a fresh process with a timeout.

Each (artifact, runtime, threads) runs in its own ``python -m edgekit.benchmark.worker``
process: runtimes never share a process (no thread pools or allocators left over
from a previous measurement), the thread environment is set before the runtime is
imported, and a crash (segfault, abort, out of memory) or a hang becomes one failed
row carrying its error instead of ending the whole benchmark.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from ..fileio import write_json
from ..trust import child_env

THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
              "NUMEXPR_NUM_THREADS")


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:300] if lines else ""


def run_isolated(job: dict[str, Any], timeout: float) -> dict[str, Any]:
    """``{"ok": True, "row": {...}}`` or ``{"ok": False, "error": "one line"}``."""
    env = dict(os.environ)
    for var in THREAD_ENV:
        env[var] = str(job["threads"])
    env["PYTHONUNBUFFERED"] = "1"
    env.update(child_env())  # --trust-code reaches the worker that loads the checkpoint
    with tempfile.TemporaryDirectory(prefix="edgekit-bench-") as tmp:
        job_path, out_path = Path(tmp) / "job.json", Path(tmp) / "out.json"
        write_json(job_path, job)
        proc = subprocess.Popen([sys.executable, "-m", "edgekit.benchmark.worker", str(job_path), str(out_path)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                start_new_session=True)
        try:
            _, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            return {"ok": False, "error": f"timed out after {timeout:g} s (raise --timeout for slow models)"}
        if out_path.exists():
            try:
                result = json.loads(out_path.read_text())
            except json.JSONDecodeError:
                result = None
            if isinstance(result, dict):
                result["stderr_tail"] = stderr[-2000:]
                return result
        code = proc.returncode
        try:
            why = f"killed by signal {signal.Signals(-code).name}" if code < 0 else f"exited with status {code}"
        except ValueError:
            why = f"exited with status {code}"
        detail = _last_line(stderr)
        return {"ok": False, "error": f"worker {why}" + (f": {detail}" if detail else ""),
                "stderr_tail": stderr[-2000:]}
