"""End-to-end benchmarks on the real runtimes (torch, onnxruntime, ai-edge-litert) and the report.

Artifacts come from the session's trained digits checkpoint: an ONNX file from
torch.onnx.export and a TFLite file from litert_torch.convert, each with a manifest
beside it (``X.json``: model, precision, input spec, labels, source) as the export
stage writes them.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import edgekit
from edgekit.benchmark.schema import FIELDS, load_results
from edgekit.checkpoint import load_checkpoint
from edgekit.cli import main
from edgekit.evaluation import evaluate
from edgekit.errors import EdgekitError

RUNS = 20


@pytest.fixture(scope="module")
def artifacts(digits_ckpt: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import litert_torch

    out = tmp_path_factory.mktemp("artifacts")
    ckpt = load_checkpoint(digits_ckpt)
    model = ckpt.model.eval()
    x = torch.randn(1, *ckpt.input_spec["shape"])
    onnx_path, tflite_path = out / "compact.onnx", out / "compact.tflite"
    torch.onnx.export(model, (x,), str(onnx_path), dynamo=True)
    litert_torch.convert(model, (x,)).export(str(tflite_path))
    for path in (onnx_path, tflite_path):
        manifest = {"format": "edgekit.export", "model": "compact", "file": path.name, "precision": "fp32",
                    "input_spec": ckpt.input_spec, "labels": ckpt.labels, "task": ckpt.task,
                    "source": {"path": str(digits_ckpt), "lineage": ckpt.lineage}}
        path.with_name(path.name + ".json").write_text(json.dumps(manifest))
    return {"pt": digits_ckpt, "onnx": onnx_path, "tflite": tflite_path}


@pytest.fixture(scope="module")
def results(artifacts: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    out = tmp_path_factory.mktemp("results") / "results.json"
    rows = edgekit.bench([artifacts["pt"], artifacts["onnx"], artifacts["tflite"]], threads=1, runs=RUNS,
                         warmup=3, data="digits", output=out)
    return out, rows


def test_one_row_per_artifact_runtime_threads(results: tuple[Path, list[dict]]) -> None:
    _, rows = results
    assert [(r["runtime"], r["threads"]) for r in rows] == [("torch", 1), ("onnxruntime", 1), ("litert", 1)]
    for r in rows:
        assert r["error"] is None, r["error"]
        assert set(FIELDS) <= set(r), set(FIELDS) - set(r)
        assert r["model"] == "compact" and r["precision"] == "fp32" and r["batch"] == 1
        assert r["timed_runs"] == RUNS == len(r["latencies_ms"]) and r["warmup_runs"] == 3
        assert 0 < r["min_ms"] <= r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"] <= r["max_ms"]
        assert r["p50_ms"] == pytest.approx(float(np.median(r["latencies_ms"])))
        assert r["init_ms"] > 0 and r["first_run_ms"] > 0 and r["throughput_ips"] > 0
        assert r["input_shape"] == [1, 3, 32, 32]
        assert r["peak_rss_mb"] > r["baseline_rss_mb"] > 0 and r["model_size_mb"] > 0
        assert r["machine"]["logical_cores"] >= 1 and r["machine"]["cpu"]
        assert isinstance(r["noisy"], bool)
    # every row names the checkpoint it measures: the torch row from the checkpoint itself,
    # the artifacts from their manifest's source
    lineage = load_checkpoint(rows[0]["artifact"]).lineage
    assert lineage["sha256"] and all(r["lineage"] == lineage for r in rows)
    by = {(r["runtime"], r["threads"]): r for r in rows}
    assert by[("onnxruntime", 1)]["delegate"] == "CPUExecutionProvider"
    assert by[("litert", 1)]["delegate"] == "xnnpack"
    assert "torch" in by[("torch", 1)]["versions"] and "onnxruntime" in by[("onnxruntime", 1)]["versions"]
    # onnxruntime and LiteRT workers never load torch: their memory is the runtime's, not torch's.
    assert by[("onnxruntime", 1)]["peak_rss_mb"] < by[("torch", 1)]["baseline_rss_mb"]


def test_thread_counts_in_effect(artifacts: dict[str, Path]) -> None:
    rows = edgekit.bench([artifacts["pt"], artifacts["onnx"], artifacts["tflite"]], threads="1,2", runs=3, warmup=1)
    assert [(r["runtime"], r["threads"], r["threads_effective"]) for r in rows] == [
        ("torch", 1, 1), ("torch", 2, 2), ("onnxruntime", 1, 1), ("onnxruntime", 2, 2), ("litert", 1, 1),
        ("litert", 2, 2)]


def test_accuracy_in_the_same_row_matches_evaluate(results: tuple[Path, list[dict]], digits_ckpt: Path) -> None:
    _, rows = results
    ref = evaluate(digits_ckpt, "digits")
    for r in rows:
        acc = r["accuracy"]
        assert acc["n"] == ref["n"] and acc["data"] == "digits"
        # Same preprocessing and the same network: exported runtimes agree with PyTorch.
        assert acc["top1"] == pytest.approx(ref["top1"], abs=0.6), r["runtime"]


def test_results_file_round_trip_and_no_silent_overwrite(results: tuple[Path, list[dict]],
                                                         artifacts: dict[str, Path]) -> None:
    path, rows = results
    doc = load_results(path)
    assert doc["format"] == "edgekit.bench" and len(doc["rows"]) == len(rows)
    assert doc["rows"][0]["p99_ms"] == rows[0]["p99_ms"]
    with pytest.raises(EdgekitError, match="already exists"):
        edgekit.bench([artifacts["onnx"]], runs=2, output=path)


def test_failures_are_rows_not_crashes(artifacts: dict[str, Path], tmp_path: Path) -> None:
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(b"not a flatbuffer" * 8)
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"\0")
    rows = edgekit.bench([broken, artifacts["onnx"], engine], runs=5, warmup=1)
    assert rows[0]["error"] and "LiteRT cannot load" in rows[0]["error"] and rows[0]["p50_ms"] is None
    assert rows[1]["error"] is None and rows[1]["p50_ms"] > 0
    assert rows[2]["error"].startswith("tensorrt runtime unavailable")
    # a fixed-batch artifact asked for another batch says so in one line
    rows = edgekit.bench([artifacts["tflite"]], batch=4, runs=2)
    assert "fixed batch of 1" in rows[0]["error"]


def test_timeout_kills_the_measurement(artifacts: dict[str, Path]) -> None:
    t0 = time.perf_counter()
    rows = edgekit.bench([artifacts["onnx"]], runs=1_000_000, timeout=4)
    assert rows[0]["error"].startswith("timed out after 4 s")
    assert time.perf_counter() - t0 < 30


def test_litert_without_xnnpack_and_min_seconds(artifacts: dict[str, Path]) -> None:
    rows = edgekit.bench([artifacts["tflite"]], delegate="none", min_seconds=0.3, warmup=1)
    assert rows[0]["error"] is None and rows[0]["delegate"] == "none"
    assert rows[0]["timed_runs"] >= 10 and sum(rows[0]["latencies_ms"]) > 0


def test_bad_requests_are_one_clear_error(artifacts: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(EdgekitError, match="did you mean litert"):
        edgekit.bench([artifacts["tflite"]], runtime="litrt")
    with pytest.raises(EdgekitError, match="no requested runtime runs a torch artifact"):
        edgekit.bench([artifacts["pt"]], runtime="onnxruntime")
    with pytest.raises(EdgekitError, match="artifact not found"):
        edgekit.bench([tmp_path / "nope.onnx"])
    with pytest.raises(EdgekitError, match="unknown artifact type"):
        edgekit.bench([artifacts["onnx"].with_name(artifacts["onnx"].name + ".json")])


def test_report_sections_and_comparison(results: tuple[Path, list[dict]], artifacts: dict[str, Path],
                                        tmp_path: Path) -> None:
    path, rows = results
    second = tmp_path / "after.json"
    edgekit.bench([artifacts["onnx"], artifacts["tflite"]], runs=5, warmup=1, output=second)
    html_path = edgekit.report([path, second], tmp_path / "report")
    md = (tmp_path / "report" / "report.md").read_text()
    for section in ("## Sources", "## Results", "## Comparison across result files", "## Figures",
                    "## How these numbers were measured"):
        assert section in md
    for png in ("latency.png", "distribution.png", "pareto.png", "size_speedup.png"):
        assert (tmp_path / "report" / png).stat().st_size > 1000
        assert f"]({png})" in md
    page = html_path.read_text()
    assert page.count("data:image/png;base64,") == 4 and "<table>" in page and 'src="latency.png"' not in page
    # speed-up column: torch rows are the 1.00x baseline of their own model
    torch_line = next(line for line in md.splitlines() if "| compact | torch | eager | fp32 | 1 |" in line)
    assert "| 1.00x |" in torch_line
    with pytest.raises(EdgekitError, match="already exists"):
        edgekit.report([path], tmp_path / "report")


def test_cli_bench_and_report(artifacts: dict[str, Path], tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "cli.json"
    res = runner.invoke(main, ["bench", str(artifacts["onnx"]), "--threads", "1", "--runs", "5",
                               "--warmup", "1", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert json.loads(out.read_text())["rows"][0]["timed_runs"] == 5
    res = runner.invoke(main, ["report", str(out), "-o", str(tmp_path / "rep")])
    assert res.exit_code == 0 and (tmp_path / "rep" / "report.html").exists()
    res = runner.invoke(main, ["bench", str(tmp_path / "missing.onnx")])
    assert res.exit_code == 2 and "edgekit: error: artifact not found" in res.output


def test_cli_all_rows_failed_writes_the_file_and_says_so(tmp_path: Path) -> None:
    broken, out = tmp_path / "broken.onnx", tmp_path / "failed.json"
    broken.write_bytes(b"not an onnx graph")
    res = subprocess.run([sys.executable, "-m", "edgekit", "bench", str(broken), "--runs", "2", "-o", str(out)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 2
    lines = [line for line in res.stderr.splitlines() if not line.startswith("[")]  # progress lines
    assert lines == [f"edgekit: error: every bench row failed (1 of 1); the errors are written to {out}; "
                     f"first: {load_results(out)['rows'][0]['error']}"], res.stderr
    assert "onnxruntime cannot load" in load_results(out)["rows"][0]["error"]


@pytest.mark.slow
def test_torch_compile_runtime(artifacts: dict[str, Path]) -> None:
    rows = edgekit.bench([artifacts["pt"]], runtime="torch,torch-compile", runs=20, timeout=900)
    eager, compiled = rows
    assert compiled["error"] is None, compiled["error"]
    assert compiled["delegate"] == "inductor" and eager["delegate"] == "eager"
    assert compiled["first_run_ms"] > compiled["p50_ms"]  # compilation lands in the first run


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_torch_on_cuda(digits_ckpt: Path) -> None:
    rows = edgekit.bench([digits_ckpt], device="cuda", runs=20, data="digits")
    assert rows[0]["error"] is None and rows[0]["device"] == "cuda"
    assert rows[0]["accuracy"]["top1"] > 50
