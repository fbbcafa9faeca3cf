"""Streaming export (issue 9 section 4): the online model of a causal TSM as TFLite / ONNX / Core ML,
its state wiring read back from the artifact, the whole-clip parity gate, per-frame bench."""
from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from edgekit import formats
from edgekit.checkpoint import Checkpoint, load_checkpoint
from edgekit.errors import EdgekitError
from edgekit.exporters.manifest import find_manifest
from edgekit.exporters.pipeline import export, verify
from edgekit.exporters.stream_runners import open_stream
from edgekit.exporters.streaming import (clip_stride, online_model, stream_batched, stream_parity, whole_clips,
                                         wiring_of)

CLIPS = 8  # validation / calibration clips in these tests


def _export(ckpt: Path, out: Path, target: str, precision: str = "fp32") -> dict:
    return export(ckpt, target, precision=precision, output_dir=out, streaming=True, parity_size=CLIPS,
                  calib_size=CLIPS)[0]


@pytest.fixture(scope="module")
def tflite_fp32(clip_ckpt: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    return _export(clip_ckpt, tmp_path_factory.mktemp("stream"), "tflite")


@pytest.fixture(scope="module")
def onnx_fp32(clip_ckpt: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    return _export(clip_ckpt, tmp_path_factory.mktemp("stream_onnx"), "onnx")


@pytest.fixture(scope="module")
def val_clips(clip_ckpt: Path) -> tuple:
    ckpt = load_checkpoint(clip_ckpt)
    bundle = ckpt.load_data()
    clips, targets = whole_clips(ckpt, bundle, "val", CLIPS, clip_stride(ckpt, bundle))
    online = online_model(ckpt)
    return ckpt, online, clips, targets, stream_batched(online, clips)


def _names_in_artifact(path: Path) -> tuple[set[str], set[str]]:
    runner = open_stream(path)
    return set(runner.inputs), set(runner.outputs)


def _check_manifest(record: dict, num_states: int) -> None:
    path = Path(record["path"])
    on_disk, _ = find_manifest(path)
    assert on_disk["states"] == record["states"] and on_disk["streaming"] is True
    ins, outs = _names_in_artifact(path)
    assert record["frame_input"]["name"] in ins and record["logits_output"]["name"] in outs
    assert len(record["states"]) == num_states
    for s in record["states"]:
        assert s["input"] in ins and s["output"] in outs and s["init"] == "zeros"
        assert len(s["shape"]) == 4  # 4-D everywhere
    assert len(record["frame_input"]["shape"]) == 4
    assert {s["input"] for s in record["states"]} | {record["frame_input"]["name"]} == ins
    assert {s["output"] for s in record["states"]} | {record["logits_output"]["name"]} == outs
    reset = record["reset"]
    assert reset["init"] == "zeros" and reset["self_flush_frames"] == num_states and reset["idle_frames"] >= 1
    assert record["state_graph"]["state_outputs_computed_and_emitted_only"], record["state_graph"]
    p = record["parity"]
    assert p["passed"] and p["streaming"] and p["clips"] == CLIPS and p["frames"] > CLIPS
    assert len(p["drift_max_abs_err"]) == max(1, p["frames"] // CLIPS)


def test_tflite_fp32_streaming_export(tflite_fp32: dict, val_clips: tuple) -> None:
    _, online, *_ = val_clips
    _check_manifest(tflite_fp32, online.num_states)
    assert tflite_fp32["file"].endswith(".stream.fp32.tflite")
    assert tflite_fp32["frame_input"]["name"].startswith("serving_default_")  # TFLite's own names
    p = tflite_fp32["parity"]
    assert p["max_abs_err"] < 1e-4 and max(p["drift_max_abs_err"]) < 1e-4 and p["top1_agreement"] == 1.0
    assert p["torch_clip_end_top1"] == p["artifact_clip_end_top1"]
    assert tflite_fp32["calibration"] is None


def test_onnx_fp32_streaming_export(onnx_fp32: dict, val_clips: tuple) -> None:
    _, online, *_ = val_clips
    _check_manifest(onnx_fp32, online.num_states)
    assert onnx_fp32["frame_input"]["name"] == "frame" and onnx_fp32["logits_output"]["name"] == "logits"
    assert [s["input"] for s in onnx_fp32["states"]] == [f"state_{i}" for i in range(online.num_states)]
    assert onnx_fp32["parity"]["max_abs_err"] < 1e-4


def test_tflite_int8_streaming_export_calibrates_states(clip_ckpt: Path, tmp_path: Path, val_clips: tuple) -> None:
    _, online, *_ = val_clips
    rec = _export(clip_ckpt, tmp_path, "tflite", "int8")
    _check_manifest(rec, online.num_states)
    assert rec["calibration"]["clips"] == CLIPS and "states fed back" in rec["calibration"]["how"]
    for s in rec["states"]:
        q = s["quantization"]
        assert s["dtype"] == "int8" and q["output"]["scale"] > 0 and s["init_native"] == q["input"]["zero_point"]
        assert q["input"]["scale"] > 1e-4  # a real range: the state input saw real features in calibration
    assert rec["parity"]["cosine"] > 0.95


def test_onnx_int8_streaming_export(clip_ckpt: Path, tmp_path: Path, val_clips: tuple) -> None:
    _, online, *_ = val_clips
    rec = _export(clip_ckpt, tmp_path, "onnx", "int8")
    _check_manifest(rec, online.num_states)
    assert rec["calibration"]["clips"] == CLIPS and rec["parity"]["cosine"] > 0.95
    import onnx

    ops = {n.op_type for n in onnx.load(rec["path"]).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops and rec["states"][0]["dtype"] == "float32"


def test_parity_catches_miswired_states(tflite_fp32: dict, val_clips: tuple) -> None:
    _, _, clips, targets, ref = val_clips
    path = Path(tflite_fp32["path"])
    runner = open_stream(path)
    wiring = wiring_of(tflite_fp32)
    ok = stream_parity(runner, wiring, clips, ref, targets, path.name, "fp32")
    assert ok["passed"]
    # states not fed back (zeros every call): the first frame agrees, later ones do not
    with pytest.raises(EdgekitError, match="parity gate failed") as err:
        stream_parity(runner, wiring, clips, ref, targets, path.name, "fp32", feedback=False)
    assert "\n" not in str(err.value)
    # two states swapped in a copy of the manifest: rejected, in one line
    bad = copy.deepcopy(tflite_fp32)
    bad["states"][0]["input"], bad["states"][1]["input"] = bad["states"][1]["input"], bad["states"][0]["input"]
    with pytest.raises(EdgekitError, match="parity gate failed|does not run as its manifest wires it") as err:
        stream_parity(runner, wiring_of(bad), clips, ref, targets, path.name, "fp32")
    assert "\n" not in str(err.value)


def test_verify_reads_the_wiring_from_the_manifest(tflite_fp32: dict, clip_ckpt: Path, tmp_path: Path) -> None:
    path = Path(tflite_fp32["path"])
    assert verify(path, clip_ckpt, n=4)["passed"]
    copy_path = tmp_path / path.name  # the same file, its manifest mis-wired
    shutil.copy(path, copy_path)
    bad = copy.deepcopy(tflite_fp32)
    bad["states"][0]["output"], bad["states"][1]["output"] = bad["states"][1]["output"], bad["states"][0]["output"]
    (tmp_path / (path.name + ".json")).write_text(json.dumps(bad))
    with pytest.raises(EdgekitError):
        verify(copy_path, clip_ckpt, n=4)


@pytest.mark.parametrize("fixture", ["tflite_fp32", "onnx_fp32"])
def test_stepper_feeds_the_state_back(fixture: str, request: pytest.FixtureRequest, val_clips: tuple) -> None:
    """Two calls with the bench's stepper reproduce the online model's second-frame logits."""
    record = request.getfixturevalue(fixture)
    _, online, clips, _, _ = val_clips
    frame = clips[0][:1]
    step = open_stream(Path(record["path"])).stepper(wiring_of(record), frame.numpy())
    first, second = np.array(step()).reshape(-1), np.array(step()).reshape(-1)
    with torch.no_grad():
        out1 = online(frame)
        out2 = online(frame, *out1[1:])
    np.testing.assert_allclose(first, out1[0].numpy().reshape(-1), atol=1e-4)
    np.testing.assert_allclose(second, out2[0].numpy().reshape(-1), atol=1e-4)
    assert (out2[0] - out1[0]).abs().max() > 1e-3  # the state matters: zeros every call would fail


def test_bench_streaming_row_is_per_frame(tflite_fp32: dict, clip_ckpt: Path, val_clips: tuple,
                                          tmp_path: Path) -> None:
    from edgekit.benchmark.report import report
    from edgekit.benchmark.run import bench

    ckpt, online, *_ = val_clips
    bundle = ckpt.load_data()
    n = 6
    rows = bench(tflite_fp32["path"], runs=5, warmup=1, data=ckpt.data_record["spec"], max_samples=n,
                 output=tmp_path / "r.json")
    row = rows[0]
    assert row["error"] is None, row["error"]
    assert row["per"] == "frame" and row["streaming"] and row["state_feedback"]
    assert row["input_shape"] == tflite_fp32["frame_input"]["shape"] and row["states"] == online.num_states
    assert row["timed_runs"] == 5
    # clip-end accuracy: the first n validation clips whole, as the PyTorch online model scores them
    from edgekit.evaluation.streaming import StreamFrames

    frames = StreamFrames(ckpt.input_spec, clip_stride(ckpt, bundle))
    clips = [frames(bundle.val[i][0]).float().contiguous() for i in range(n)]
    end = [int(r[-1].argmax() == bundle.val[i][1]) for i, r in enumerate(stream_batched(online, clips))]
    assert row["accuracy"]["n"] == n and row["accuracy"]["top1"] == pytest.approx(100.0 * sum(end) / n)
    md = Path(report(tmp_path / "r.json", tmp_path / "rep")).with_suffix(".md").read_text()
    assert "(per frame)" in md and "latencies are **per frame**" in md


def test_clip_model_without_streaming_exports_5d(clip_ckpt: Path, tmp_path: Path) -> None:
    rec = export(clip_ckpt, "onnx", output_dir=tmp_path, parity_size=6)[0]
    assert len(rec["inputs"][0]["shape"]) == 5 and rec["parity"]["passed"] and "states" not in rec
    assert rec["parity"]["top1_agreement"] == 1.0


def _untrained(tmp_path: Path, arch: str, **kw: object) -> Path:
    from edgekit.data.transforms import make_input_spec
    from edgekit.registry import create_model

    model = create_model(arch, num_classes=11, frames=4, **kw)
    path = tmp_path / f"{arch}.pt"
    Checkpoint(arch=arch, arch_kwargs={"num_classes": 11, "frames": 4, **kw}, state_dict=model.state_dict(),
               task="clip_classify", labels=[str(i) for i in range(11)], input_spec=make_input_spec(32, frames=4),
               data={"spec": "gestures:n=110,frames=8", "val": None, "seed": 0}).save(path)
    return path


@pytest.mark.parametrize("arch,kw,why", [("tsm_compact_cnn", {"shift": "bidirectional"}, "bidirectional"),
                                         ("tsn_compact_cnn", {}, "TSN")])
def test_streaming_refuses_what_cannot_stream(tmp_path: Path, arch: str, kw: dict, why: str) -> None:
    path = _untrained(tmp_path, arch, **kw)
    res = subprocess.run([sys.executable, "-m", "edgekit", "export", str(path), "--target", "tflite", "--streaming",
                          "-o", str(tmp_path / "out")], capture_output=True, text=True, timeout=300)
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert res.returncode in (1, 2) and len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    assert why in lines[0] and "stream" in lines[0]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.skipif(bool(formats.export_unavailable("coreml")), reason="coremltools not installed")
def test_coreml_streaming_export(clip_ckpt: Path, tmp_path: Path, val_clips: tuple) -> None:
    _, online, *_ = val_clips
    rec = _export(clip_ckpt, tmp_path, "coreml", "fp16")
    assert Path(rec["path"]).is_dir() and len(rec["states"]) == online.num_states
    assert [s["input"] for s in rec["states"]] == [f"state_{i}" for i in range(online.num_states)]
    if formats.runtime_unavailable("coreml"):
        assert rec["parity"]["mode"] == "structural" and rec["parity"]["passed"]
    else:  # macOS: the numeric whole-clip gate ran
        assert rec["parity"]["streaming"] and rec["parity"]["passed"]


@pytest.mark.slow
def test_colliding_state_shapes_are_told_apart_by_a_numeric_probe(tmp_path: Path) -> None:
    """mobilenet_v2 has several states of one shape; the probe finds each one's partner, and a
    swap of two same-shape states in the manifest is caught by the numbers alone."""
    sys.path.insert(0, str(Path(__file__).parent))
    from test_temporal_models import randomise

    from edgekit.data.transforms import make_input_spec
    from edgekit.registry import create_model

    kw = {"num_classes": 11, "frames": 4, "shift": "causal", "small_input": True}
    model = randomise(create_model("tsm_mobilenet_v2", **kw))
    ckpt = Checkpoint(arch="tsm_mobilenet_v2", arch_kwargs=kw, state_dict=model.state_dict(), task="clip_classify",
                      labels=[str(i) for i in range(11)], input_spec=make_input_spec(32, frames=4),
                      data={"spec": "gestures:n=110,frames=8", "val": None, "seed": 0})
    rec = export(ckpt, "tflite", output_dir=tmp_path, streaming=True, parity_size=4, name="mnv2")[0]
    shapes = [tuple(s["shape"]) for s in rec["states"]]
    assert len(set(shapes)) < len(shapes)  # collisions exist
    online = online_model(ckpt)
    assert shapes == [tuple(s) for s in online.state_shapes(32, 32)]
    i = next(k for k in range(len(shapes) - 1) if shapes[k] == shapes[k + 1])
    bundle = ckpt.load_data()
    clips, targets = whole_clips(ckpt, bundle, "val", 4, clip_stride(ckpt, bundle))
    ref = stream_batched(online, clips)
    bad = copy.deepcopy(rec)
    bad["states"][i]["input"], bad["states"][i + 1]["input"] = bad["states"][i + 1]["input"], bad["states"][i]["input"]
    runner = open_stream(rec["path"])
    with pytest.raises(EdgekitError, match="parity gate failed"):
        stream_parity(runner, wiring_of(bad), clips, ref, targets, "mnv2", "fp32")
