"""Parsing real LiteRT/TFLite benchmark_model outputs (tests/data/benchmark_model) and the
adb runner's failure modes on a machine without a phone."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import edgekit
from edgekit.benchmark.adb import parse_benchmark_model
from edgekit.errors import EdgekitError

DATA = Path(__file__).parent / "data" / "benchmark_model"


def parse(name: str) -> dict:
    return parse_benchmark_model((DATA / name).read_text())


def test_tflite_android_output() -> None:
    r = parse("tflite_android_espcn_4threads.txt")
    assert r["timed_runs"] == 50 and r["warmup_runs"] == 15
    assert r["mean_ms"] == pytest.approx(33.2094) and r["std_ms"] == pytest.approx(0.450)
    assert r["min_ms"] == pytest.approx(32.641) and r["max_ms"] == pytest.approx(34.005)
    assert r["init_ms"] == pytest.approx(0.855) and r["first_run_ms"] == pytest.approx(49.060)
    assert r["warmup_mean_ms"] == pytest.approx(34.8251)
    assert r["peak_rss_mb"] == pytest.approx(12.8672) and r["threads_effective"] == 4
    assert r["model_size_mb"] == pytest.approx(0.004448)
    assert r["p50_ms"] is None and r["p90_ms"] is None and r["p99_ms"] is None  # the tool prints none
    assert r["noisy"] is False and r["latencies_ms"] == []


def test_scientific_notation_and_op_profiling_tables() -> None:
    """The op profiler prints its own 'count=50 ... avg=2.9499e+06' after the summary: ignored."""
    r = parse("tflite_riscv_mobilenet_v1_op_profiling.txt")
    assert r["mean_ms"] == pytest.approx(2950.34)
    assert r["max_ms"] == pytest.approx(3189.954) and r["timed_runs"] == 50 and r["warmup_runs"] == 1
    assert r["first_run_ms"] == pytest.approx(3512.391)
    assert r["peak_rss_mb"] == pytest.approx(46.0859)


def test_nnapi_profiled_run() -> None:
    r = parse("tflite_android_yolov5s_nnapi_gpu_profiling.txt")
    assert r["mean_ms"] == pytest.approx(92.5712) and r["std_ms"] == pytest.approx(1.638)
    assert r["min_ms"] == pytest.approx(89.745) and r["timed_runs"] == 50
    assert r["init_ms"] == pytest.approx(365.972)


def test_logcat_prefixes_percentiles_and_delegate() -> None:
    r = parse("litert_logcat_yolo_int8_percentiles.txt")
    assert r["timed_runs"] == 25 and r["warmup_runs"] == 3
    assert r["p50_ms"] == pytest.approx(141.253)
    assert r["p5_ms"] == pytest.approx(140.545) and r["p95_ms"] == pytest.approx(187.533)
    assert r["mean_ms"] == pytest.approx(145.528) and r["warmup_mean_ms"] == pytest.approx(211.669)
    assert r["delegate"] == "xnnpack" and r["delegated_nodes"] == "539/548"
    assert r["peak_rss_mb"] == pytest.approx(73.4102)


def test_old_2018_format() -> None:
    r = parse("tflite_2018_mobilenet_v1_quant_old_format.txt")
    assert r["mean_ms"] == pytest.approx(66.7676) and r["init_ms"] == pytest.approx(9.933)
    assert r["timed_runs"] == 15 and r["warmup_runs"] == 7 and r["std_ms"] == pytest.approx(0.039)


def test_litert_compiled_model_format_in_ms() -> None:
    r = parse("litert_2_1_benchmark_litert_model_gpu.txt")
    assert r["init_ms"] == pytest.approx(23744.73) and r["first_run_ms"] == pytest.approx(7441.04)
    assert r["mean_ms"] == pytest.approx(7430.20) and r["timed_runs"] == 10 and r["warmup_runs"] == 1
    assert r["min_ms"] == pytest.approx(7416.40) and r["std_ms"] == pytest.approx(9.92)
    assert r["peak_rss_mb"] == pytest.approx(6391.74)


def test_failed_tool_run_is_one_clear_error() -> None:
    with pytest.raises(EdgekitError, match="Benchmarking failed"):
        parse("tflite_android_yolov5s_int8_nnapi_failed.txt")


def test_adb_rows_fail_cleanly_without_binary_or_device(tmp_path: Path) -> None:
    model = tmp_path / "m.tflite"
    model.write_bytes(b"\0" * 16)
    rows = edgekit.bench([model], runtime="adb", adb={"binary": str(tmp_path / "missing")})
    assert rows[0]["error"].startswith("benchmark binary not found")
    if shutil.which("adb") is None:
        binary = tmp_path / "benchmark_model"
        binary.write_text("#!/bin/sh\n")
        rows = edgekit.bench([model], runtime="adb", adb={"binary": str(binary)})
        assert rows[0]["error"] == "adb runtime unavailable: adb is not on PATH (install Android platform-tools)"
