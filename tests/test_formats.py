"""The one table of formats and runtimes (edgekit.formats) and what reads it: detection by
extension and by content, availability reasons, the manifest reader, verify and bench
agreeing on what they accept, and torch-free benchmark workers for exported artifacts."""
from __future__ import annotations

import importlib.util
import json
import platform
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import torch

import edgekit
from edgekit import formats
from edgekit.checkpoint import load_checkpoint
from edgekit.errors import EdgekitError
from edgekit.exporters.manifest import find_manifest

ROOT = Path(__file__).resolve().parents[1]


def _needs() -> list[formats.Need]:
    return [n for entry in (*formats.FORMATS.values(), *formats.RUNTIMES.values()) for n in entry.needs]


def test_table_is_consistent_and_names_real_modules_and_extras() -> None:
    extras = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    for need in _needs():
        assert need.extra is None or need.extra in extras, need
    exts = [e for f in formats.FORMATS.values() for e in f.extensions]
    assert len(exts) == len(set(exts)), "an extension maps to two formats"
    for fmt in formats.FORMATS.values():
        assert fmt.name in formats.RUNTIMES[fmt.runtime].formats, fmt.name
        if fmt.target:
            assert importlib.util.find_spec(fmt.exporter) is not None
            assert fmt.precision in formats.PRECISIONS
    for rt in formats.RUNTIMES.values():
        assert importlib.util.find_spec(rt.session) is not None, rt.session
        assert all(f in formats.FORMATS for f in rt.formats)
        if rt.runner:
            assert formats.runner_class(rt.name).runtime == rt.name
    assert formats.TARGETS[:4] == ("onnx", "tflite", "coreml", "tensorrt")  # the built-ins first, in order
    assert formats.CHECKPOINT_FORMAT == __import__("edgekit.checkpoint").checkpoint.FORMAT


def test_availability_reasons_are_one_line_with_the_extra() -> None:
    for name in formats.RUNTIMES:
        why = formats.runtime_unavailable(name)
        assert why is None or (why.startswith(f"{name} runtime unavailable: ") and "\n" not in why)
    if platform.system() != "Darwin":
        assert "runs only on macOS" in formats.runtime_unavailable("coreml")
    if importlib.util.find_spec("tensorrt") is None:
        assert formats.export_unavailable("tensorrt").endswith('pip install "edgekit[tensorrt]"')
        assert "tensorrt" not in formats.available_targets()
    assert formats.runtime_unavailable("onnxruntime") is None and "onnx" in formats.available_targets()
    with pytest.raises(EdgekitError, match="did you mean litert"):
        formats.runtime_unavailable("litrt")
    with pytest.raises(EdgekitError, match="did you mean tflite"):
        formats.export_unavailable("tflit")


def test_checkpoint_known_by_content_whatever_its_name(digits_ckpt: Path, tmp_path: Path) -> None:
    for name in ("model.ckpt", "model.bin", "model"):
        copy = tmp_path / name
        shutil.copy(digits_ckpt, copy)
        assert formats.detect(copy).name == "torch", name
    torch.save({"state_dict": {}}, tmp_path / "other.pt")  # a torch file, not an edgekit checkpoint
    with pytest.raises(EdgekitError, match="not an edgekit checkpoint"):
        formats.detect(tmp_path / "other.pt")
    torch.save({"state_dict": {}}, tmp_path / "other.ckpt")
    with pytest.raises(EdgekitError, match="unknown artifact type '.ckpt'"):
        formats.detect(tmp_path / "other.ckpt")
    (tmp_path / "x.PLAN").touch()
    assert formats.detect(tmp_path / "x.PLAN").name == "tensorrt"  # extensions are case-insensitive
    with pytest.raises(EdgekitError, match="artifact not found"):
        formats.detect(tmp_path / "missing.onnx")


def test_bench_runs_a_checkpoint_named_ckpt_and_rows_carry_lineage(digits_ckpt: Path, tmp_path: Path) -> None:
    ckpt = tmp_path / "model.ckpt"
    shutil.copy(digits_ckpt, ckpt)
    (row,) = edgekit.bench([ckpt], runs=2, warmup=0)
    assert row["error"] is None and row["format"] == "torch" and row["runtime"] == "torch", row["error"]
    lineage = load_checkpoint(ckpt).lineage
    assert row["lineage"] == lineage and row["lineage"]["sha256"] == lineage["root_sha256"]


def test_verify_and_bench_accept_the_same_files(digits_ckpt: Path, tmp_path: Path) -> None:
    """Every artifact extension bench accepts, verify accepts too: neither says 'unknown artifact type'."""
    files = []
    for ext in formats.artifact_extensions():
        path = tmp_path / f"broken{ext}"
        path.write_bytes(b"\0not a model\0" * 4)
        files.append(path)
        with pytest.raises(EdgekitError) as info:
            edgekit.verify(path, digits_ckpt, n=8)
        assert "unknown artifact type" not in str(info.value), ext
    rows = edgekit.bench(files, runs=1, warmup=0, timeout=60)
    assert [r["format"] for r in rows] == [formats.detect(f).name for f in files]
    assert all(r["error"] and "unknown artifact type" not in r["error"] for r in rows)
    with pytest.raises(EdgekitError, match="is an edgekit checkpoint, not an exported artifact"):
        edgekit.verify(digits_ckpt, digits_ckpt)
    for bad in (tmp_path / "x.json", tmp_path / "x.h5"):
        bad.write_text("{}")
        for call in (lambda: edgekit.verify(bad, digits_ckpt), lambda: edgekit.bench([bad])):
            with pytest.raises(EdgekitError, match="unknown artifact type"):
                call()


def test_one_manifest_reader_own_file_then_folder_index(tmp_path: Path) -> None:
    art = tmp_path / "m.fp32.onnx"
    art.write_bytes(b"x")
    assert find_manifest(art) == ({}, None)
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "edgekit.export", "artifacts": [
        {"file": "other.onnx", "precision": "int8"}, {"file": art.name, "precision": "fp16"}]}))
    record, where = find_manifest(art)
    assert record["precision"] == "fp16" and record["format"] == "edgekit.export" and where.name == "manifest.json"
    (tmp_path / (art.name + ".json")).write_text(json.dumps({"file": art.name, "precision": "fp32"}))
    record, where = find_manifest(art)
    assert record["precision"] == "fp32" and where.name == art.name + ".json"


def _onnx_model(path: Path) -> Path:
    """A tiny conv net written with onnx.helper (no torch involved)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["input", "w"], ["c"], pads=[1, 1, 1, 1]),
         helper.make_node("GlobalAveragePool", ["c"], ["g"]), helper.make_node("Flatten", ["g"], ["output"])],
        "tiny", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 4])], [w])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_worker_for_exported_artifacts_never_imports_torch(tmp_path: Path) -> None:
    path = _onnx_model(tmp_path / "tiny.onnx")
    job = {"artifact": str(path), "format": "onnx", "runtime": "onnxruntime", "delegate": None, "threads": 1,
           "batch": 1, "warmup": 1, "runs": 3, "min_seconds": None, "input_spec": {}, "seed": 0}
    code = ("import json, sys\nfrom edgekit.benchmark.worker import run_job\n"
            f"row = run_job(json.loads({json.dumps(json.dumps(job))}))\n"
            "print(json.dumps({'p50': row['p50_ms'], 'torch': sorted(m for m in sys.modules "
            "if m == 'torch' or m.startswith('torch.'))}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["p50"] > 0 and result["torch"] == []


def test_numeric_options_rejected_in_one_line(digits_ckpt: Path, tmp_path: Path) -> None:
    onnx_file = _onnx_model(tmp_path / "tiny.onnx")
    for kwargs, words in [({"batch": 0}, "batch must be a positive integer"), ({"runs": -1}, "runs must be"),
                          ({"warmup": -2}, "warmup must be >= 0"), ({"min_seconds": float("nan")}, "finite"),
                          ({"timeout": 0}, "timeout must be > 0"), ({"threads": "1,0"}, "thread count"),
                          ({"input_shape": (1, 3, 0, 8)}, "input_shape")]:
        with pytest.raises(EdgekitError, match=words):
            edgekit.bench([onnx_file], **kwargs)
    for kwargs, words in [({"calib_size": 0}, "calib_size"), ({"parity_size": -5}, "parity_size"),
                          ({"opset": 0}, "opset"), ({"max_batch": 0}, "max_batch")]:
        with pytest.raises(EdgekitError, match=words):
            edgekit.export(digits_ckpt, "onnx", output_dir=tmp_path / "out", **kwargs)
    with pytest.raises(EdgekitError, match="n must be a positive integer"):
        edgekit.verify(onnx_file, digits_ckpt, n=0)
    assert not (tmp_path / "out").exists()
    for args in (["bench", str(onnx_file), "--runs", "0"], ["bench", str(onnx_file), "--timeout", "nan"],
                 ["bench", str(onnx_file), "--batch", "-1"], ["bench", str(onnx_file), "--warmup", "-1"],
                 ["export", str(digits_ckpt), "-o", str(tmp_path / "o"), "--parity-size", "0"],
                 ["export", str(digits_ckpt), "-o", str(tmp_path / "o"), "--opset", "-3"],
                 ["verify", str(onnx_file), "--checkpoint", str(digits_ckpt), "-n", "0"]):
        res = subprocess.run([sys.executable, "-m", "edgekit", *args], capture_output=True, text=True, timeout=120)
        assert res.returncode == 2 and res.stderr.startswith("edgekit: error: "), (args, res.stderr)
        assert len(res.stderr.strip().splitlines()) == 1, res.stderr
