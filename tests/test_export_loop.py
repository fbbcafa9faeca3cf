"""The one export loop: staging folders never outlive their run, the manifest lands before the
artifact, bad options are one line before any work, and the format table drives streaming,
runtime labels, colours and channel multiples."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from edgekit import formats
from edgekit.errors import EdgekitError
from edgekit.exporters import pipeline
from edgekit.exporters.manifest import find_manifest, manifest_path
from edgekit.exporters.pipeline import STAGING, clean_stale_staging, export


def _artifacts(folder: Path) -> list[Path]:
    exts = tuple(formats.artifact_extensions())
    return [p for p in folder.iterdir() if p.name.endswith(exts) and not p.name.startswith(".")]


# ---------------------------------------------------------------- staging folders

def test_rerun_removes_stale_staging_of_its_own_folder(digits_ckpt: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    dead = out / f"{STAGING}999999999-abcd"  # a killed run: its process is gone
    old = out / f"{STAGING}k3j2h1"  # named without a process id (older edgekit)
    for d in (dead, old):
        d.mkdir(parents=True)
        (d / f"{digits_ckpt.stem}.int8.tflite").write_bytes(b"unverified")
    other = tmp_path / "elsewhere" / f"{STAGING}999999999-abcd"  # another folder's: not this run's business
    other.mkdir(parents=True)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = out / f"{STAGING}{sleeper.pid}-efgh"  # a running export's staging stays
        live.mkdir()
        recs = export(digits_ckpt, "onnx", output_dir=out, parity_size=16)
        assert not dead.exists() and not old.exists()
        assert live.is_dir() and other.is_dir()
    finally:
        sleeper.kill()
        sleeper.wait()
    assert Path(recs[0]["path"]).is_file() and find_manifest(recs[0]["path"])[0]["sha256"] == recs[0]["sha256"]
    assert clean_stale_staging(out) == [live]  # its process has ended: stale now


def test_failed_gate_removes_its_staging(digits_ckpt: Path, tmp_path: Path) -> None:
    with pytest.raises(EdgekitError, match="parity gate failed"):
        export(digits_ckpt, "onnx", output_dir=tmp_path, parity_size=16, thresholds={"min_cosine": 1.1})
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- manifest before artifact

def test_manifest_is_written_before_the_artifact_moves(digits_ckpt: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[str] = []
    real_replace, real_record, real_index = os.replace, pipeline.write_record, pipeline.update_index

    def replace(src: str | Path, dst: str | Path) -> None:
        if Path(dst).suffix == ".onnx" and not Path(dst).name.startswith("."):
            events.append("artifact")
            if fail:
                raise OSError("killed here")
        real_replace(src, dst)

    monkeypatch.setattr(pipeline.os, "replace", replace)
    monkeypatch.setattr(pipeline, "write_record", lambda r, a: (events.append("record"), real_record(r, a)))
    monkeypatch.setattr(pipeline, "update_index", lambda r, a: (events.append("index"), real_index(r, a)))
    fail = False
    (rec,) = export(digits_ckpt, "onnx", output_dir=tmp_path, parity_size=16)
    assert events == ["record", "artifact", "index"]
    final = Path(rec["path"])

    # a kill between the record and the move (here: the move fails) while overwriting
    fail = True
    with pytest.raises(OSError, match="killed here"):
        export(digits_ckpt, "onnx", output_dir=tmp_path, parity_size=16, force=True)
    for art in _artifacts(tmp_path):  # never an artifact without its own manifest describing it
        assert manifest_path(art).is_file() and find_manifest(art)[0]["sha256"] == rec["sha256"]
    assert not final.exists() and manifest_path(final).is_file()  # at worst a record without an artifact
    assert not list(tmp_path.glob(f"{STAGING}*"))  # the staging folder went, the replaced artifact with it

    fail = False  # a rerun puts a verified artifact back, its record beside it
    (again,) = export(digits_ckpt, "onnx", output_dir=tmp_path, parity_size=16)
    assert final.is_file() and find_manifest(final)[0]["sha256"] == again["sha256"]


# ---------------------------------------------------------------- bad options: one line, before any work

def test_unsupported_opset_is_one_line(digits_ckpt: Path, tmp_path: Path) -> None:
    from edgekit.exporters.onnx import supported_opsets

    ok = supported_opsets()
    assert ok.start == 18 and ok.stop - 1 >= 18
    for bad in (999, ok.stop, ok.start - 1):
        with pytest.raises(EdgekitError, match=rf"--opset {bad}: torch.onnx \S+ exports opsets "
                                               rf"{ok.start}..{ok.stop - 1}$"):
            export(digits_ckpt, "onnx", opset=bad, output_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()
    res = subprocess.run([sys.executable, "-m", "edgekit", "export", str(digits_ckpt), "--opset", "999",
                          "-o", str(tmp_path / "out")], capture_output=True, text=True, timeout=300)
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert res.returncode != 0 and len(lines) == 1 and "--opset 999" in lines[0], res.stderr


def test_supported_opset_is_written_as_asked(digits_ckpt: Path, tmp_path: Path) -> None:
    import onnx

    (rec,) = export(digits_ckpt, "onnx", opset=20, output_dir=tmp_path, parity_size=16)
    model = onnx.load(rec["path"])
    assert next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) == 20
    assert rec["converter"]["opset"] == 20


def test_options_no_target_takes_are_one_line(digits_ckpt: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(EdgekitError, match=r"^--nhwc applies to tflite exports only; the targets here are onnx$"):
        export(digits_ckpt, "onnx", nhwc=True, output_dir=out)
    with pytest.raises(EdgekitError, match="--static-batch applies to onnx exports only"):
        export(digits_ckpt, "tflite", dynamic_batch=False, output_dir=out)
    with pytest.raises(EdgekitError, match="--max-batch applies to tensorrt exports only"):
        export(digits_ckpt, "onnx", max_batch=8, output_dir=out)
    with pytest.raises(EdgekitError, match="--opset applies to onnx exports only"):
        export(digits_ckpt, "tflite", opset=18, output_dir=out)
    assert not out.exists()
    res = subprocess.run([sys.executable, "-m", "edgekit", "export", str(digits_ckpt), "--target", "onnx", "--nhwc",
                          "-o", str(out)], capture_output=True, text=True, timeout=300)
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert res.returncode != 0 and len(lines) == 1 and "--nhwc applies to tflite" in lines[0], res.stderr


def test_output_folder_that_is_a_file_is_one_line(digits_ckpt: Path, tmp_path: Path) -> None:
    before = digits_ckpt.read_bytes()
    with pytest.raises(EdgekitError, match="is also an input of this command"):
        export(digits_ckpt, "onnx", output_dir=digits_ckpt)
    assert digits_ckpt.read_bytes() == before
    afile = tmp_path / "notes.txt"
    afile.write_text("x")
    for out, text in ((afile, "exists and is not a folder"), (afile / "sub", "is a file, not a folder")):
        with pytest.raises(EdgekitError, match=text):
            export(digits_ckpt, "onnx", output_dir=out)
    assert afile.read_text() == "x"


# ---------------------------------------------------------------- the one table

def test_streaming_and_runtime_looks_come_from_the_format_table() -> None:
    from edgekit.benchmark.plots import _COLORS
    from edgekit.compress.rounding import ROUND_TO
    from edgekit.optimization.baseline import TARGETS as BASELINE
    from edgekit.recipes.quickstart import RUNTIME_NAMES

    assert formats.stream_targets() == ("onnx", "tflite", "coreml")
    for target in formats.stream_targets():
        assert callable(formats.stream_exporter(target))
    with pytest.raises(EdgekitError, match="--streaming exports to onnx, tflite, coreml, not tensorrt"):
        formats.stream_exporter("tensorrt")
    for rt in formats.RUNTIMES.values():
        if rt.stream_runner:
            assert formats.stream_runner_class(rt.name).runtime == rt.name
        assert _COLORS[rt.name] == rt.color and RUNTIME_NAMES[rt.name] == rt.display
    with pytest.raises(EdgekitError, match="streaming runs on onnxruntime, litert, coreml, not tensorrt"):
        formats.stream_runner_class("tensorrt")
    assert RUNTIME_NAMES["torch"] == "PyTorch eager" and RUNTIME_NAMES["litert"] == "LiteRT"
    assert ROUND_TO == {"onnxruntime": 16, "litert": 16} and BASELINE == ("onnx", "tflite")


def test_one_onnxruntime_session_builder(tmp_path: Path) -> None:
    from edgekit.exporters.runtimes import PROVIDERS, ort_session

    with pytest.raises(EdgekitError, match="unknown execution provider 'npu'; use one of cpu, cuda, tensorrt"):
        ort_session(tmp_path / "m.onnx", delegate="npu")
    with pytest.raises(EdgekitError, match="onnxruntime cannot load"):
        ort_session(tmp_path / "missing.onnx", threads=1)
    assert PROVIDERS["cpu"] == ["CPUExecutionProvider"]
