"""What a latency number was measured on: CPU model, cores, OS, memory, load.

Recorded in every result row, so results from two machines can sit in one report
and a number read months later still says where it came from. The load average at
the start of a run is kept too: a busy machine explains a noisy row.
"""
from __future__ import annotations

import os
import platform
import re
from functools import lru_cache
from pathlib import Path
from typing import Any


def _cpuinfo() -> dict[str, Any]:
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = re.search(r"^model name\s*:\s*(.+)$", text, re.M) or re.search(r"^Hardware\s*:\s*(.+)$", text, re.M)
    cores = {(m.group(1), m.group(2)) for m in re.finditer(
        r"physical id\s*:\s*(\d+).*?core id\s*:\s*(\d+)", text, re.S)}
    flags = re.search(r"^flags\s*:\s*(.+)$", text, re.M)
    simd = sorted(f for f in (flags.group(1).split() if flags else [])
                  if f in {"avx", "avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "fma", "neon", "asimd"})
    return {"cpu": model.group(1).strip() if model else (platform.processor() or platform.machine()),
            "physical_cores": len(cores) or None, "simd": simd}


def _mac_cpu() -> str | None:
    import subprocess

    try:
        return subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True,
                              timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _mem_total_gb() -> float | None:
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        m = re.search(r"MemTotal:\s*(\d+) kB", meminfo.read_text())
        return round(int(m.group(1)) / 2**20, 1) if m else None
    return None


@lru_cache(maxsize=1)
def machine_info() -> dict[str, Any]:
    """CPU model, logical/physical/usable cores, SIMD flags, OS, memory, hostname."""
    info = _cpuinfo()
    if platform.system() == "Darwin":
        info["cpu"] = _mac_cpu() or info["cpu"]
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {**info, "logical_cores": os.cpu_count(), "usable_cores": usable, "arch": platform.machine(),
            "os": platform.platform(), "memory_gb": _mem_total_gb(), "hostname": platform.node(),
            "python": platform.python_version()}


def load_average() -> float | None:
    """1-minute load average now (None where the OS has none)."""
    try:
        return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):
        return None


def proc_status(field: str) -> int | None:
    """An integer field of /proc/self/status (VmRSS, VmHWM in kB; Threads), or None off Linux."""
    path = Path("/proc/self/status")
    if not path.exists():
        return None
    m = re.search(rf"^{field}:\s*(\d+)", path.read_text(), re.M)
    return int(m.group(1)) if m else None


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (MB)."""
    hwm = proc_status("VmHWM")
    if hwm is not None:
        return hwm / 1024
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if platform.system() == "Darwin" else peak / 1024
