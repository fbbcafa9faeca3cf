"""``edgekit bench --runtime browser``: a ``.tflite`` timed by LiteRT.js in a browser, as result rows.

The demo server runs in bench mode (:func:`~.model.load_bench_model`): the page loads the
artifact, times the first call, ``warmup`` untimed and ``runs`` timed calls (a streaming
model one frame per call with its states fed back) and posts every timing back. With
``browser="chromium"`` headless Chromium on this machine plays the phone; without it the
URL and QR code are printed for a phone to open, and the row waits for its post.
Rows are the schema of :mod:`edgekit.benchmark.schema`: runtime ``litertjs``, delegate
``webgpu`` or ``wasm`` (what the page used), device and browser from the user agent.
"""
from __future__ import annotations

import os
import queue
import re
import signal
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Callable

from ..errors import EdgekitError
from .config import HTTPS_PORT

__all__ = ["BROWSERS", "bench_in_browser", "describe_user_agent"]

#: browsers edgekit can start headless itself: name -> executable candidates
BROWSERS = {"chromium": ("chromium", "chromium-browser", "google-chrome")}
HEADLESS_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--mute-audio")
DEFAULT_RUNS = 100


def describe_user_agent(ua: str) -> dict[str, str]:
    """``{"device", "browser"}`` from a user-agent string (Android model, iOS, or the desktop OS;
    Chrome / Edge / Firefox / Safari and their versions)."""
    device = "unknown"
    if (m := re.search(r"Android [\d.]+; ([^;)]+)", ua)):
        device = f"Android {m.group(1).strip()}" if m.group(1).strip() != "K" else "Android"
    elif (m := re.search(r"\((iPhone|iPad)[^)]*OS ([\d_]+)", ua)):
        device = f"{m.group(1)} iOS {m.group(2).replace('_', '.')}"
    elif (m := re.search(r"\(([^)]*)\)", ua)):
        device = m.group(1)
    browser = "unknown"
    for pat, name in ((r"Edg/([\d.]+)", "Edge"), (r"HeadlessChrome/([\d.]+)", "HeadlessChrome"),
                      (r"Chrome/([\d.]+)", "Chrome"), (r"Firefox/([\d.]+)", "Firefox"),
                      (r"Version/([\d.]+).*Safari", "Safari")):
        if (m := re.search(pat, ua)):
            browser = f"{name} {m.group(1)}"
            break
    return {"device": device, "browser": browser}


def _executable(browser: str) -> str:
    if browser not in BROWSERS:
        raise EdgekitError(f"--browser {browser}: edgekit starts {', '.join(BROWSERS)}; for another browser or a "
                           "phone leave --browser out and open the printed URL")
    found = next((p for p in (shutil.which(c) for c in BROWSERS[browser]) if p), None)
    if not found:
        raise EdgekitError(f"{browser} is not installed (apt-get install -y chromium)")
    return found


def _stop(proc: subprocess.Popen) -> None:
    """End the browser edgekit started, with the helper processes of its group."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, None)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(wait)
            break
        except subprocess.TimeoutExpired:
            continue
    proc.wait()


def bench_in_browser(artifact: str | Path, *, warmup: int = 10, runs: int | None = None, timeout: float = 600.0,
                     browser: str | None = None, accelerator: str = "auto", host: str | None = None,
                     port: int | None = None, echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Time ``artifact`` in a browser; returns the row fields the browser measured, the raw
    ``latencies_ms`` among them (one line when nothing was posted within ``timeout`` seconds).
    Their statistics are the caller's (:func:`edgekit.benchmark.run.bench` summarises them as
    every runtime's): the demo sits below the benchmark and does not import it."""
    from .model import load_bench_model
    from .server import DemoServer

    exe = _executable(browser) if browser else None
    runs = runs or DEFAULT_RUNS
    model = load_bench_model(artifact, warmup, runs)
    host = host or ("127.0.0.1" if browser else "0.0.0.0")
    server = DemoServer(model, host, port if port is not None else (0 if browser else HTTPS_PORT))
    server.start()
    url = f"{server.url}?bench=1&camera=0&accelerator={accelerator}"
    proc = None
    try:
        with tempfile.TemporaryDirectory(prefix="edgekit-browser-", ignore_cleanup_errors=True) as profile:
            if exe:  # its own process group: the browser and the helper processes it starts end together
                proc = subprocess.Popen([exe, *HEADLESS_FLAGS, f"--user-data-dir={profile}", url],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
            else:
                from .qr import terminal_qr

                echo(f"open {url} on the phone to benchmark (accept the certificate once if asked)")
                qr = terminal_qr(url) if server.secure else ""
                if qr:
                    echo(qr.rstrip("\n"))
            try:
                got = server.posted.get(timeout=timeout)
            except queue.Empty:
                raise EdgekitError(f"no timings from the browser within {timeout:.0f} s ({url})") from None
            finally:
                if proc is not None:
                    _stop(proc)
    finally:
        server.stop()
    lat = [float(x) for x in got.get("latencies_ms") or []]
    if not lat:
        raise EdgekitError(f"the browser posted no timings: {str(got)[:200]}")
    ua = str(got.get("user_agent") or "")
    return {"runtime": "litertjs", "delegate": got.get("accelerator"), **describe_user_agent(ua), "user_agent": ua,
            "threads_effective": 1, "warmup_runs": got.get("warmup_runs"), "init_ms": got.get("init_ms"),
            "runtime_load_ms": got.get("runtime_load_ms"), "first_run_ms": got.get("first_run_ms"),
            "latencies_ms": lat,
            "accelerator_note": got.get("note") or None,
            "timer": "performance.now() " + ("(cross-origin isolated: 5 us)" if got.get("cross_origin_isolated")
                                             else "(100 us resolution)")}
