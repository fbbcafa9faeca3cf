"""``edgekit bench``: latency (and accuracy) of artifacts on runtimes, one row per
(artifact, runtime, threads), every measurement in its own process.

>>> rows = edgekit.bench(["model.pt", "model.onnx", "model.tflite"], threads=(1, 2), output="results.json")
>>> rows[0]["p50_ms"], rows[0]["p99_ms"], rows[0]["noisy"]
"""
from __future__ import annotations

import platform
import sys
from pathlib import Path
from typing import Any, Iterable, Sequence

from .. import __version__, formats
from ..errors import EdgekitError
from ..fileio import check_writable, data_input, write_json
from ..numbers import non_negative_int, positive_int
from ..stage_config import default
from .artifact import Artifact, check_loadable, resolve_artifact
from .config import DEFAULT_TIMEOUT, BenchConfig, as_names, parse_threads  # noqa: F401 (re-exported)
from .isolate import run_isolated
from .machine import load_average, machine_info
from .runners import runtime_version
from .schema import RESULTS_KIND, error_row, results_document
from .stats import summarize
from .streaming import stream_job, stream_row


def plan_runs(artifacts: Sequence[Artifact], runtime: str | Sequence[str]) -> list[tuple[Artifact, str]]:
    """(artifact, runtime) pairs: ``auto`` picks each format's own runtime; named runtimes
    pair with the artifacts they can run. An artifact no named runtime runs is an error."""
    names = as_names(runtime, "runtimes")
    for name in names:
        if name != "auto":
            formats.runtime(name)  # unknown names: one line with the closest
    pairs: list[tuple[Artifact, str]] = []
    for art in artifacts:
        chosen = [formats.FORMATS[art.format].runtime if n == "auto" else n for n in names]
        fits = [r for r in dict.fromkeys(chosen) if art.format in formats.RUNTIMES[r].formats]
        if not fits:
            runs = ", ".join(f"{r} runs {' '.join(_files(f) for f in formats.RUNTIMES[r].formats)}"
                             for r in dict.fromkeys(chosen))
            raise EdgekitError(f"{art.path}: no requested runtime runs a {art.format} artifact ({runs})")
        pairs.extend((art, r) for r in fits)
    return pairs


def _files(fmt: str) -> str:
    return "edgekit checkpoints" if fmt == "torch" else "/".join(formats.FORMATS[fmt].extensions)


def _source_checkpoint(art: Artifact) -> str | None:
    src = art.manifest.get("source") or art.manifest.get("checkpoint")
    path = src.get("path") if isinstance(src, dict) else src
    if not isinstance(path, str):
        return None
    p = Path(path)
    if not p.is_absolute() and art.manifest_path is not None and not p.exists():
        p = art.manifest_path.parent / p
    return str(p) if p.exists() else None


def _progress(enabled: bool) -> Any:
    if not enabled:
        return None
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


def _describe(row: dict[str, Any]) -> str:
    from rich.markup import escape

    if row.get("error"):
        return f"[red]failed[/red]: {escape(row['error'])}"
    acc = row.get("accuracy") or {}
    extra = f"  top-1 {acc['top1']:.2f}%" if "top1" in acc else f"  MAE {acc['mae']:.3f}" if "mae" in acc else ""
    noisy = f"  [yellow]noisy (CV {row['cv']:.0%})[/yellow]" if row.get("noisy") else ""
    p90 = f"{row['p90_ms']:.3f}" if row.get("p90_ms") is not None else "-"
    p99 = f"{row['p99_ms']:.3f}" if row.get("p99_ms") is not None else "-"
    p50 = row.get("p50_ms") if row.get("p50_ms") is not None else row.get("mean_ms")
    per = " per frame (state fed back)" if row.get("per") == "frame" else ""
    return f"p50 {p50:.3f} ms  p90 {p90}  p99 {p99}{per}{extra}{noisy}"


def bench(artifacts: Sequence[str | Path] | str | Path, *,
          runtime: str | Sequence[str] = default(BenchConfig, "runtime"),
          threads: int | str | Iterable[int] = default(BenchConfig, "threads"),
          batch: int = default(BenchConfig, "batch"), warmup: int = default(BenchConfig, "warmup"),
          runs: int | None = None, min_seconds: float | None = None, data: str | None = None,
          output: str | Path | None = None, timeout: float = default(BenchConfig, "timeout"),
          delegate: str | None = None, device: str | None = None,
          input_shape: Sequence[int] | None = None, cpus: Sequence[int] | None = None,
          cv_threshold: float = default(BenchConfig, "cv_threshold"), max_samples: int | None = None,
          adb: dict[str, Any] | None = None, browser: str | None = None, seed: int = default(BenchConfig, "seed"),
          force: bool = False, progress: bool = False) -> list[dict[str, Any]]:
    """Benchmark every artifact on every fitting runtime at every thread count.

    Returns one result row per (artifact, runtime, threads) in the schema of
    :mod:`edgekit.benchmark.schema`; with ``output`` also writes them (atomically; an
    existing file needs ``force``). A measurement that fails, crashes or exceeds
    ``timeout`` seconds is a row with ``error`` set; the other rows still run.
    ``runs`` fixes the number of timed runs, ``min_seconds`` times for at least that
    long; by default at least 50 runs and 1 s. ``data`` adds accuracy on that data
    spec's validation split. ``delegate`` picks the execution provider / delegate
    (onnxruntime: cpu|cuda|tensorrt; litert: xnnpack|none; coreml: all|cpu|...),
    ``cpus`` pins the measuring process to those cores, ``adb`` holds the phone
    options (``binary``, ``serial``, ``cores``; see :mod:`edgekit.benchmark.adb`). The ``browser``
    runtime times ``.tflite`` files with LiteRT.js in headless ``browser`` (``chromium``) or, without
    it, on a phone that opens the printed URL (:mod:`edgekit.demo.bench`).
    """
    if isinstance(artifacts, (str, Path)):
        artifacts = [artifacts]
    if not artifacts:
        raise EdgekitError("no artifacts to benchmark")
    cfg = BenchConfig(threads=threads, batch=batch, warmup=warmup, runs=runs, min_seconds=min_seconds,
                      timeout=timeout, cv_threshold=cv_threshold, max_samples=max_samples, seed=seed)
    batch, warmup, runs, min_seconds = cfg.batch, cfg.warmup, cfg.runs, cfg.min_seconds
    timeout, cv_threshold, max_samples, seed = cfg.timeout, cfg.cv_threshold, cfg.max_samples, cfg.seed
    input_shape = [positive_int("input_shape", d) for d in input_shape] if input_shape else None
    cpus = [non_negative_int("cpus", c) for c in cpus] if cpus else None
    if data is not None:  # a bad spec fails here, once, not as an accuracy error in every row
        from ..data import parse_spec

        parse_spec(data)
    out_path = check_writable(output, force, kind=RESULTS_KIND, inputs=[*artifacts, data_input(data)]) \
        if output is not None else None
    thread_list = list(cfg.threads)
    arts = [resolve_artifact(a) for a in artifacts]
    for art in arts:
        check_loadable(art)
    pairs = plan_runs(arts, runtime)
    machine = machine_info()
    console = _progress(progress)
    rows: list[dict[str, Any]] = []
    total = len(pairs) * len(thread_list)
    for art, rt in pairs:
        for n in thread_list:
            base = {"model": art.model, "lineage": art.lineage, "artifact": str(art.path), "format": art.format,
                    "runtime": rt, "delegate": delegate or formats.RUNTIMES[rt].delegate, "device": device or "cpu",
                    "threads": n, **stream_row(art.manifest),
                    "batch": batch, "precision": art.precision, "model_size_mb": art.size_bytes / 2**20,
                    "manifest": str(art.manifest_path) if art.manifest_path else None, "machine": machine,
                    "load_avg_1m": load_average(),
                    "versions": {"edgekit": __version__, "python": platform.python_version(),
                                 "numpy": runtime_version("numpy")}}
            if console:
                console.print(f"\\[{len(rows) + 1}/{total}] {art.path.name} on {rt} ({base['delegate']}), "
                              f"{n} thread{'s' if n > 1 else ''} ...", end=" ")
            row = _measure(art, rt, n, base, dict(batch=batch, warmup=warmup, runs=runs, min_seconds=min_seconds,
                                                    data=data, timeout=timeout, delegate=delegate, device=device,
                                                    input_shape=input_shape, cpus=cpus, cv_threshold=cv_threshold,
                                                    max_samples=max_samples, adb=adb, seed=seed,
                                                    browser=browser))
            rows.append(row)
            if console:
                console.print(_describe(row))
    if out_path is not None:
        write_json(out_path, results_document(rows, machine, " ".join(sys.argv)))
    return rows


def _measure(art: Artifact, rt: str, threads: int, base: dict[str, Any], opts: dict[str, Any]) -> dict[str, Any]:
    why = formats.runtime_unavailable(rt)
    if why:
        return error_row(base, why)
    if rt == "browser":
        from ..demo.bench import bench_in_browser

        try:
            got = bench_in_browser(art.path, warmup=opts["warmup"], runs=opts["runs"], timeout=opts["timeout"],
                                   browser=opts["browser"])
            return {**base, **got, **summarize(got["latencies_ms"], cv_threshold=opts["cv_threshold"]), "error": None}
        except EdgekitError as exc:
            return error_row(base, str(exc))
    if rt == "adb":
        from .adb import bench_on_device

        try:
            return {**base, **bench_on_device(art, threads=threads, warmup=opts["warmup"], runs=opts["runs"],
                                              timeout=opts["timeout"], **(opts["adb"] or {})), "error": None}
        except EdgekitError as exc:
            return error_row(base, str(exc))
    job = {"artifact": str(art.path), "format": art.format, "runtime": rt, "delegate": opts["delegate"],
           "device": opts["device"], "threads": threads, "batch": opts["batch"], "warmup": opts["warmup"],
           "runs": opts["runs"], "min_seconds": opts["min_seconds"], "input_spec": art.input_spec,
           "input_shape": list(opts["input_shape"]) if opts["input_shape"] else None,
           "precision": art.precision, "labels": art.labels, "data": opts["data"],
           "data_record": art.manifest.get("data"), "stream": stream_job(art.manifest),
           "source_checkpoint": _source_checkpoint(art), "cpus": list(opts["cpus"]) if opts["cpus"] else None,
           "cv_threshold": opts["cv_threshold"], "max_samples": opts["max_samples"], "seed": opts["seed"]}
    result = run_isolated(job, opts["timeout"])
    if not result.get("ok"):
        return error_row(base, result.get("error") or "unknown failure")
    measured = result["row"]
    versions = {**base["versions"], **(measured.pop("versions", None) or {})}
    return {**base, **{k: v for k, v in measured.items() if v is not None or k not in base},
            "versions": versions, "error": None}
