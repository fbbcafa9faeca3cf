"""Export stage: real converters and runtimes (onnxruntime, ai-edge-litert, coremltools), no mocks.

One module-scoped export of the session's digits checkpoint (ONNX fp32 + int8, TFLite
fp32 + int8) is shared by the checks on files, manifests, metadata and parity.
"""
from __future__ import annotations

import inspect
import json
import platform
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from edgekit.checkpoint import load_checkpoint
from edgekit.errors import EdgekitError
from edgekit.exporters.pipeline import available_targets, export, verify
from edgekit.exporters.parity import THRESHOLDS, failures, gate, parity_numbers
from edgekit.exporters.runtimes import load_runner
from edgekit.formats import export_unavailable


def tensorrt_available() -> bool:
    return export_unavailable("tensorrt") is None


@pytest.fixture(scope="module")
def exported(digits_ckpt: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    out = tmp_path_factory.mktemp("export")
    recs = export(digits_ckpt, ["onnx", "tflite"], precision=["fp32", "int8"], output_dir=out,
                  calib_size=64, parity_size=128)
    return out, recs


def _by(recs: list[dict], target: str, precision: str) -> dict:
    return next(r for r in recs if r["target"] == target and r["precision"] == precision)


# ---------------------------------------------------------------- parity numbers (golden values)

def test_parity_numbers_golden() -> None:
    ref = np.array([[1.0, 0.0], [0.0, 2.0]])
    out = np.array([[1.0, 0.5], [0.0, 2.0]])
    n = parity_numbers(ref, out, "classify", targets=[0, 0])
    assert n["max_abs_err"] == pytest.approx(0.5)
    assert n["mean_abs_err"] == pytest.approx(0.125)
    assert n["max_rel_err"] == pytest.approx(0.25)
    assert n["cosine"] == pytest.approx((1 / np.sqrt(1.25) + 1.0) / 2)
    assert n["top1_agreement"] == 1.0
    assert n["torch_top1"] == pytest.approx(50.0) and n["artifact_top1"] == pytest.approx(50.0)
    flipped = parity_numbers(ref, np.array([[0.0, 1.0], [0.0, 2.0]]), "classify")
    assert flipped["top1_agreement"] == 0.5


def test_gate_fails_with_numbers() -> None:
    nums = parity_numbers(np.eye(4), np.eye(4)[::-1], "classify")
    assert failures(nums, THRESHOLDS["int8"])
    with pytest.raises(EdgekitError, match=r"parity gate failed \(int8\).*top-1 agreement 0.0%.*cosine"):
        gate("m.int8.tflite", "int8", nums)
    assert gate("m.fp32.onnx", "fp32", parity_numbers(np.eye(4), np.eye(4)))["passed"]


# ---------------------------------------------------------------- exported artifacts

def test_artifacts_pass_gate_and_manifest(exported: tuple[Path, list[dict]], digits_ckpt: Path) -> None:
    out, recs = exported
    assert {(r["target"], r["precision"]) for r in recs} == {("onnx", "fp32"), ("onnx", "int8"),
                                                            ("tflite", "fp32"), ("tflite", "int8")}
    ckpt = load_checkpoint(digits_ckpt)
    for r in recs:
        path = Path(r["path"])
        assert path.is_file() and path.stat().st_size == r["size_bytes"]
        side = json.loads((out / (path.name + ".json")).read_text())
        assert side["sha256"] == r["sha256"] and side["labels"] == ckpt.labels
        assert side["input_spec"]["mean"] == ckpt.input_spec["mean"]
        assert side["parity"]["passed"] and side["parity"]["n"] == 128
        assert side["parity_data"] == {"data": "digits", "split": "val", "n": 128}
        assert "torch" in side["versions"] and side["source"]["sha256"] == ckpt.sha256
        assert side["source"]["lineage"] == ckpt.lineage and ckpt.lineage["root_sha256"] == ckpt.sha256
    index = json.loads((out / "manifest.json").read_text())
    assert sorted(e["file"] for e in index["artifacts"]) == sorted(r["file"] for r in recs)
    # fp32 is near-exact; int8 is smaller and still agrees on most images
    for t in ("onnx", "tflite"):
        fp32, int8 = _by(recs, t, "fp32"), _by(recs, t, "int8")
        assert fp32["parity"]["max_rel_err"] < 1e-4 and fp32["parity"]["top1_agreement"] == 1.0
        assert int8["size_bytes"] < 0.5 * fp32["size_bytes"]
        assert int8["parity"]["top1_agreement"] >= 0.9
        assert int8["calibration"]["n"] == 64
    assert not list(out.glob(".edgekit-export-*")), "staging folders must be cleaned up"


def test_runner_matches_torch_on_any_batch(exported: tuple[Path, list[dict]], digits_ckpt: Path) -> None:
    out, recs = exported
    model = load_checkpoint(digits_ckpt).model
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        ref = model(x).numpy()
    for r in recs:
        if r["precision"] == "fp32":
            runner = load_runner(r["path"])
            np.testing.assert_allclose(runner(x.numpy()), ref, atol=1e-4, rtol=1e-4)
    int8 = load_runner(_by(recs, "tflite", "int8")["path"])
    assert int8.input_dtype == "int8" and int8.fixed_batch == 1
    assert int8(x.numpy()).shape == (3, 10)


def test_labels_and_preprocessing_embedded(exported: tuple[Path, list[dict]], digits_ckpt: Path) -> None:
    import onnx

    from edgekit.exporters.tflite import read_metadata

    out, recs = exported
    labels = load_checkpoint(digits_ckpt).labels
    props = {p.key: p.value for p in onnx.load(_by(recs, "onnx", "int8")["path"]).metadata_props}
    assert props["labels"].split("\n") == labels
    assert json.loads(props["preprocessing"])["mean"] == pytest.approx([0.485, 0.456, 0.406])
    tfl = Path(_by(recs, "tflite", "int8")["path"])
    meta = read_metadata(tfl)
    assert meta["labels"] == labels and meta["precision"] == "int8"
    assert zipfile.ZipFile(tfl).read("labels.txt").decode().split() == labels


def test_verify_cli_reruns_gate(exported: tuple[Path, list[dict]], digits_ckpt: Path) -> None:
    from edgekit.cli import main

    out, recs = exported
    res = CliRunner().invoke(main, ["verify", _by(recs, "onnx", "int8")["path"], "--checkpoint", str(digits_ckpt),
                                    "--data", "digits", "-n", "64", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["precision"] == "int8" and data["passed"] and data["n"] == 64
    # a stricter gate than int8 can meet fails with the numbers, as a one-line error
    with pytest.raises(EdgekitError, match=r"parity gate failed.*cosine"):
        verify(_by(recs, "onnx", "int8")["path"], digits_ckpt, "digits", n=64,
               thresholds={"min_cosine": 0.999999999})


def test_no_overwrite_without_force(exported: tuple[Path, list[dict]], digits_ckpt: Path) -> None:
    out, recs = exported
    before = Path(_by(recs, "onnx", "fp32")["path"]).stat().st_mtime_ns
    with pytest.raises(EdgekitError, match="already exists; pass --force"):
        export(digits_ckpt, "onnx", output_dir=out, parity_size=16)
    assert Path(_by(recs, "onnx", "fp32")["path"]).stat().st_mtime_ns == before


def _int8_weight_peak(path: Path) -> int:
    """The largest |value| among an ONNX model's quantized weights: the int8 initializers that
    DequantizeLinear nodes read as data (not the zero points, which may be -128)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    data = {n.input[0] for n in model.graph.node if n.op_type == "DequantizeLinear"}
    return max(int(np.abs(numpy_helper.to_array(t).astype(np.int32)).max())
               for t in model.graph.initializer if t.data_type == onnx.TensorProto.INT8 and t.name in data)


def test_onnx_int8_weights_are_7_bit(exported: tuple[Path, list[dict]], tmp_path: Path) -> None:
    """onnxruntime's x86 int8 kernels on CPUs without VNNI saturate with full-range weights (the
    artifact then fails its own gate), so the ONNX int8 artifact carries 7-bit weights; the
    TensorRT source (reduce_range=False) keeps the full 8 bits."""
    from edgekit.exporters.onnx import export_fp32, to_int8

    _, recs = exported
    assert 32 < _int8_weight_peak(Path(_by(recs, "onnx", "int8")["path"])) <= 64
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU()).eval()
    fp32 = tmp_path / "m.onnx"
    export_fp32(model, torch.randn(1, 3, 8, 8), fp32)
    calib = torch.rand(8, 3, 8, 8)
    to_int8(fp32, tmp_path / "small.onnx", calib)
    to_int8(fp32, tmp_path / "full.onnx", calib, reduce_range=False)
    assert _int8_weight_peak(tmp_path / "small.onnx") <= 64
    assert _int8_weight_peak(tmp_path / "full.onnx") == 127


# ---------------------------------------------------------------- failures leave nothing behind

def test_failed_gate_leaves_no_file(digits_ckpt: Path, tmp_path: Path) -> None:
    with pytest.raises(EdgekitError, match=r"c?\.fp16\.onnx: parity gate failed \(fp16\): max rel err"):
        export(digits_ckpt, "onnx", precision="fp16", output_dir=tmp_path, parity_size=32,
               thresholds={"max_rel_err": 1e-9})
    assert [p.name for p in tmp_path.iterdir()] == []


def test_unsupported_operator_names_op_and_module(tmp_path: Path) -> None:
    from torch import nn

    from edgekit.exporters.tflite import convert

    class Spectrum(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.fft.rfft2(x).abs().mean((2, 3))

    model = nn.Sequential(nn.Conv2d(3, 4, 3), Spectrum()).eval()
    with pytest.raises(EdgekitError) as err:
        convert(model, torch.randn(1, 3, 16, 16), tmp_path / "m.tflite", precision="fp32", calib=None, meta={})
    msg = str(err.value)
    assert "operator _fft_r2c" in msg and "module '1' (Spectrum)" in msg and "FFT" in msg
    assert "\n" not in msg
    assert not (tmp_path / "m.tflite").exists()


def test_bad_inputs_are_one_line(digits_ckpt: Path, tmp_path: Path) -> None:
    with pytest.raises(EdgekitError, match="did you mean onnx"):
        export(digits_ckpt, "onx", output_dir=tmp_path)
    with pytest.raises(EdgekitError, match="unknown precision 'int4'"):
        export(digits_ckpt, "onnx", precision="int4", output_dir=tmp_path)
    with pytest.raises(EdgekitError, match="unknown export profile"):
        export(digits_ckpt, profile="android-cpu-int9", output_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_tensorrt_unavailable_is_one_line(digits_ckpt: Path, tmp_path: Path) -> None:
    if tensorrt_available():
        pytest.skip("tensorrt and a GPU are present; the GPU test covers the engine")
    from edgekit.cli import main

    res = CliRunner().invoke(main, ["export", str(digits_ckpt), "-t", "tensorrt", "-o", str(tmp_path)])
    assert res.exit_code == 2
    assert res.output.strip().startswith("edgekit: error: tensorrt export unavailable: ")
    assert len(res.output.strip().splitlines()) == 1
    assert "tensorrt" not in available_targets()


# ---------------------------------------------------------------- eval mode, quiet output

def test_tflite_converts_every_module_in_eval_mode(digits_ckpt: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """litert-torch warns "converted in training mode" when the module it gets has training=True;
    torch.export's graph modules (the int8 path) come back flagged so. Spy on the real converter."""
    import litert_torch

    real, seen = litert_torch.convert, []

    def spy(module: torch.nn.Module, *args: object, **kwargs: object) -> object:
        seen.append([name or "(top)" for name, m in module.named_modules() if m.training])
        return real(module, *args, **kwargs)

    monkeypatch.setattr(litert_torch, "convert", spy)
    recs = export(digits_ckpt, "tflite", precision=["fp32", "int8"], nhwc=True, output_dir=tmp_path,
                  calib_size=32, parity_size=32)
    assert len(seen) == 2 and seen == [[], []], seen
    assert all(r["parity"]["passed"] for r in recs)


def test_export_cli_keeps_third_party_noise_out_unless_verbose(digits_ckpt: Path, tmp_path: Path) -> None:
    base = [sys.executable, "-m", "edgekit"]
    args = ["export", str(digits_ckpt), "--calib-size", "32", "--parity-size", "32"]
    res = subprocess.run([*base, *args, "-t", "tflite,onnx", "-p", "int8", "-o", str(tmp_path / "q")],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    assert res.stderr == "", res.stderr  # no absl, TensorFlow, pytree, training-mode or exporter chatter
    assert [line.split()[0] for line in res.stdout.splitlines()] == [
        str(tmp_path / "q" / f"{digits_ckpt.stem}.int8.{ext}") for ext in ("tflite", "onnx")]
    res = subprocess.run([*base, "-v", *args, "-t", "tflite", "-p", "fp32", "-o", str(tmp_path / "v")],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    assert "exporting" in res.stderr and "XNNPACK" in res.stderr, res.stderr  # -v shows it all


# ---------------------------------------------------------------- profiles, layouts, Core ML, pruned models

def test_profiles_load_and_flags_override(tmp_path: Path) -> None:
    from edgekit.exporters.profiles import available_profiles, load_profile

    names = available_profiles()
    for want in ("android-cpu-int8", "ios-coreml-fp16", "jetson-tensorrt-fp16", "server-onnx-fp32"):
        assert want in names
    prof = load_profile("android-cpu-int8")
    assert prof["targets"] == "tflite" and prof["precision"] == "int8" and prof["nhwc"] is True
    bad = tmp_path / "bad.yaml"
    bad.write_text("targets: onnx\nprecison: int8\n")
    with pytest.raises(EdgekitError, match="unknown key.*precison"):
        load_profile(bad)


def test_nhwc_tflite_from_profile(digits_ckpt: Path, tmp_path: Path) -> None:
    """android-cpu-int8 profile with the precision overridden to fp32: float NHWC input."""
    recs = export(digits_ckpt, profile="android-cpu-int8", precision="fp32", output_dir=tmp_path,
                  parity_size=32)
    (r,) = recs
    assert r["file"] == f"{digits_ckpt.stem}.nhwc.fp32.tflite" and r["profile"] == "android-cpu-int8"
    assert r["inputs"][0]["layout"] == "NHWC" and r["inputs"][0]["shape"] == [1, 32, 32, 3]
    assert r["input_spec"]["layout"] == "NHWC" and r["parity"]["top1_agreement"] == 1.0


def test_coreml_package(digits_ckpt: Path, tmp_path: Path) -> None:
    (r,) = export(digits_ckpt, "coreml", output_dir=tmp_path, parity_size=16)
    assert r["precision"] == "fp16" and Path(r["path"]).is_dir()
    p = r["parity"]
    if platform.system() == "Darwin":
        assert p["mode"] == "numeric" and p["passed"]
    else:
        model = load_checkpoint(digits_ckpt).model
        assert p["mode"] == "structural" and p["input_shape"] == [1, 3, 32, 32] and p["output_shape"] == [1, 10]
        assert p["conv_ops"] == sum(isinstance(m, torch.nn.Conv2d) for m in model.modules())
        assert {"edgekit", "labels", "preprocessing"} <= set(p["metadata_keys"])


@pytest.mark.skipif(platform.system() != "Darwin", reason="Core ML predictions need macOS (Linux gets the "
                    "structural check in test_coreml_package)")
def test_coreml_parity_on_macos(digits_ckpt: Path, tmp_path: Path) -> None:
    (r,) = export(digits_ckpt, "coreml", precision="fp32", output_dir=tmp_path, parity_size=32)
    assert r["parity"]["mode"] == "numeric" and r["parity"]["top1_agreement"] >= 0.99


def _shrink(ckpt_path: Path, out: Path) -> Path:
    """Hand-shrink three pointwise convs (Torch-Pruning removes the channels in place)."""
    import torch_pruning as tp

    ckpt = load_checkpoint(ckpt_path)
    model = ckpt.model
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=torch.randn(1, 3, 32, 32))
    for mod, k in [(model.features[3].pw, 8), (model.features[6].pw, 40), (model.features[8].pw, 100)]:
        graph.get_pruning_group(mod, tp.prune_conv_out_channels, idxs=list(range(k))).prune()
    ckpt.derive(model, stage="prune").save(out)
    return out


def test_pruned_checkpoint_exports(digits_ckpt: Path, tmp_path: Path) -> None:
    shrunk = _shrink(digits_ckpt, tmp_path / "shrunk.pt")
    recs = export(shrunk, "onnx", output_dir=tmp_path / "out", parity_size=64)
    assert all(r["source"]["pruned"] and r["parity"]["passed"] for r in recs)
    # data came from the parent's provenance
    assert recs[0]["parity_data"]["data"] == "digits"
    parent = load_checkpoint(digits_ckpt)
    lineage = recs[0]["source"]["lineage"]
    assert lineage["parent_sha256"] == lineage["root_sha256"] == parent.sha256 and lineage["root_name"] == "compact"
    assert lineage["sha256"] == load_checkpoint(shrunk).sha256 and lineage["name"] == "shrunk"
    runner = load_runner(recs[0]["path"])
    assert runner(np.zeros((2, 3, 32, 32), np.float32)).shape == (2, 10)


@pytest.mark.slow
def test_pruned_checkpoint_exports_every_target(digits_ckpt: Path, tmp_path: Path) -> None:
    shrunk = _shrink(digits_ckpt, tmp_path / "shrunk.pt")
    recs = export(shrunk, "all", precision=["fp32", "fp16", "int8"], output_dir=tmp_path / "out")
    assert {r["target"] for r in recs} == set(available_targets())
    assert all(r["parity"]["passed"] for r in recs)


@pytest.mark.gpu
def test_tensorrt_engine(digits_ckpt: Path, tmp_path: Path) -> None:
    if not torch.cuda.is_available() or not tensorrt_available():
        pytest.skip("needs a CUDA GPU and the tensorrt package")
    recs = export(digits_ckpt, "tensorrt", precision=["fp32", "fp16", "int8"], output_dir=tmp_path,
                  parity_size=128, calib_size=64)
    assert all(r["parity"]["mode"] == "numeric" and r["parity"]["passed"] for r in recs)
    runner = load_runner(recs[0]["path"])
    assert runner(np.zeros((4, 3, 32, 32), np.float32)).shape == (4, 10)


def test_no_dataset_means_asking_for_calib(digits_ckpt: Path) -> None:
    from dataclasses import replace

    from edgekit.exporters.samples import checkpoint_data

    ckpt = load_checkpoint(digits_ckpt)
    assert checkpoint_data(ckpt, None).spec == "digits"
    with pytest.raises(EdgekitError, match="records no dataset; pass a data spec"):
        checkpoint_data(replace(ckpt, provenance={}, data={}), None)


def test_public_api_names() -> None:
    import importlib

    import edgekit

    # every stage's modules imported first: the top-level names must still be the functions
    for mod in ("edgekit.training.trainer", "edgekit.exporters.pipeline", "edgekit.benchmark.run",
                "edgekit.benchmark.report", "edgekit.evaluation", "edgekit.recipes.quickstart", "edgekit.compress.prune",
                "edgekit.compress.distill"):
        importlib.import_module(mod)
    for name in ("train", "export", "verify", "bench", "report", "evaluate", "quickstart", "prune", "distill"):
        assert inspect.isfunction(getattr(edgekit, name)), name
    assert edgekit.export is export and edgekit.verify is verify
    from edgekit.exporters.runtimes import load_runner as lr

    assert lr is load_runner
