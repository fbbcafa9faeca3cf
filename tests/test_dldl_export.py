"""Export and bench of label-distribution models (DLDL-v2): the output layout in the manifest and
the artifacts' metadata, the two-part parity gate (distribution and expectation, MAE against the
labels), and ``bench --data`` reporting MAE instead of top-1.

Models are tiny compact_cnn nets trained for one epoch on a brightness -> label CSV (32 px).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgekit.checkpoint import load_checkpoint
from edgekit.errors import EdgekitError
from edgekit.exporters.manifest import output_layout
from edgekit.exporters.parity import LABEL_THRESHOLDS, format_numbers, gate, parity_numbers
from edgekit.exporters.pipeline import export, verify
from edgekit.models.dldl import head_of

K = 101  # label range 0:100:1


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, label_csv) -> dict[str, Path]:
    """Three-epoch checkpoints with the dldl head, the ranking head and one L1 output, and their CSV."""
    from edgekit.training.trainer import train

    root = tmp_path_factory.mktemp("dldl_export")
    csv = label_csv(root, n=80)
    out = {"csv": csv}
    for loss in ("dldl", "ranking", "l1"):
        out[loss] = root / f"{loss}.pt"
        train("compact_cnn", f"csv:{csv}", out[loss], epochs=3, input_size=32, label_range="0:100:1", loss=loss,
              batch_size=16, optimizer="adam", lr=3e-3, progress=False, arch_kwargs={"width_mult": 0.5})
    return out


def _manifest(artifact: Path) -> dict:
    return json.loads(artifact.with_name(artifact.name + ".json").read_text())


def test_dldl_onnx_fp32_gate_compares_both_parts_and_manifest_holds_layout(trained, tmp_path: Path) -> None:
    rec = export(trained["dldl"], "onnx", precision="fp32", output_dir=tmp_path)[0]
    par = rec["parity"]
    assert par["passed"] and par["thresholds"] == LABEL_THRESHOLDS["fp32"]
    assert par["dist_cosine"] > 0.9999 and par["dist_max_abs_err"] < 1e-4 and par["exp_max_abs_err"] < 1e-2
    assert par["torch_mae"] > 0 and abs(par["artifact_mae"] - par["torch_mae"]) == pytest.approx(par["mae_gap"])
    assert par["label_span"] == 100 and "top1_agreement" not in par
    art = Path(rec["path"])
    man = _manifest(art)
    assert man["output_layout"] == {"distribution": {"columns": [0, K]}, "expectation": {"column": K},
                                    "label_range": "0:100:1"}
    assert man["label_distribution"]["loss"] == "dldl" and man["label_distribution"]["label_range"] == "0:100:1"
    assert man["outputs"][0]["shape"][-1] == K + 1
    import onnx

    props = {p.key: p.value for p in onnx.load(str(art)).metadata_props}
    assert json.loads(props["edgekit"])["output_layout"] == man["output_layout"]
    assert props["task"] == "label_distribution"
    assert "distribution cosine" in format_numbers(par) and "MAE" in format_numbers(par)


def test_dldl_tflite_int8_passes_gate_and_carries_layout(trained, tmp_path: Path) -> None:
    from edgekit.exporters.tflite import read_metadata

    rec = export(trained["dldl"], "tflite", precision="int8", output_dir=tmp_path)[0]
    par = rec["parity"]
    assert par["passed"] and par["thresholds"] == LABEL_THRESHOLDS["int8"]
    assert par["mae_gap_rel"] <= 0.02 and par["exp_mean_err"] <= 0.03 and par["dist_cosine"] >= 0.95
    assert par["exp_max_abs_err"] > 0  # an int8 artifact is not bit-exact: the numbers are real
    assert rec["calibration"]["n"] > 0
    assert read_metadata(Path(rec["path"]))["output_layout"]["expectation"] == {"column": K}


def test_dldl_coreml_package_carries_both_parts(trained, tmp_path: Path) -> None:
    pytest.importorskip("coremltools")
    rec = export(trained["dldl"], "coreml", precision="fp16", output_dir=tmp_path)[0]
    if rec["parity"]["mode"] == "structural":  # Linux: no Core ML runtime, the structural check sees the shape
        assert rec["parity"]["output_shape"] == [1, K + 1] and rec["parity"]["linear_ops"] == 1
    else:  # macOS: the numeric gate compared both parts
        assert rec["parity"]["passed"] and "dist_cosine" in rec["parity"] and "mae_gap" in rec["parity"]
    assert rec["output_layout"]["distribution"] == {"columns": [0, K]}
    import coremltools as ct

    spec = ct.models.MLModel(rec["path"], skip_model_load=True).get_spec()
    desc = spec.description.output[0].shortDescription
    assert "distribution over 0:100:1 in columns 0..100" in desc and "column 101" in desc
    assert json.loads(spec.description.metadata.userDefined["edgekit"])["label_distribution"]["loss"] == "dldl"


def test_ranking_and_l1_models_export_with_their_layouts(trained, tmp_path: Path) -> None:
    rank = export(trained["ranking"], "onnx", precision="fp32", output_dir=tmp_path)[0]
    assert rank["parity"]["passed"] and "dist_cosine" in rank["parity"]
    assert rank["output_layout"]["distribution"] == {"columns": [0, K]}
    assert rank["label_distribution"]["loss"] == "ranking"
    l1 = export(trained["l1"], "onnx", precision="fp32", output_dir=tmp_path)[0]
    assert l1["task"] == "label_distribution" and l1["parity"]["passed"]
    assert l1["output_layout"] == {"expectation": {"column": 0}, "label_range": "0:100:1"}
    assert "dist_cosine" not in l1["parity"] and "artifact_mae" in l1["parity"]


def test_bench_data_reports_mae_not_top1_and_report_shows_it(trained, tmp_path: Path) -> None:
    from edgekit.benchmark.report import report
    from edgekit.benchmark.run import bench

    art = Path(export(trained["dldl"], "onnx", precision="fp32", output_dir=tmp_path / "art")[0]["path"])
    rows = bench(art, runtime="onnxruntime", runs=3, warmup=1, data=f"csv:{trained['csv']}",
                 output=tmp_path / "res.json")
    acc = rows[0]["accuracy"]
    assert rows[0]["error"] is None and "top1" not in acc and "error" not in acc, acc
    ck = load_checkpoint(trained["dldl"])
    assert acc["n"] == 16 and acc["flip_test"] is False and "eps_error" in acc and "pearson" in acc
    # no flip averaging: the artifact's MAE is the checkpoint's one-pass MAE on the same images
    import torch

    val = ck.load_data().val
    with torch.no_grad():
        pred = ck.model(torch.stack([ck.eval_transform(val[i][0]) for i in range(len(val))]))[:, -1].numpy()
    mae = float(np.abs(pred - np.array([val[i][1][0] for i in range(len(val))])).mean())
    assert acc["mae"] == pytest.approx(mae, abs=1e-3) and acc["rmse"] >= acc["mae"]
    report([tmp_path / "res.json"], tmp_path / "rep")
    md = (tmp_path / "rep" / "report.md").read_text()
    header = next(ln for ln in md.splitlines() if ln.startswith("| model |"))
    line = next(ln for ln in md.splitlines() if ln.startswith("| dldl |"))
    cells = dict(zip([c.strip() for c in header.strip("|").split("|")], [c.strip() for c in line.strip("|").split("|")]))
    assert cells["MAE"] == f"{acc['mae']:.3f}" and cells["top-1 %"] == "-"


def test_gate_fails_a_shifted_expectation_and_a_flattened_distribution(trained, tmp_path: Path) -> None:
    art = Path(export(trained["dldl"], "onnx", precision="fp32", output_dir=tmp_path)[0]["path"])
    assert verify(art, trained["dldl"])["passed"]
    ck = load_checkpoint(trained["dldl"])
    head_of(ck.model).expectation.values += 0.5  # the torch read-out moves half a label: the artifact no longer matches
    with pytest.raises(EdgekitError, match="expectation max abs err"):
        verify(art, ck)
    ck2 = load_checkpoint(trained["dldl"])
    head_of(ck2.model).classifier.weight.data.mul_(0.0)  # a flat distribution
    with pytest.raises(EdgekitError, match="distribution"):
        verify(art, ck2)


def test_parity_numbers_for_label_distributions_golden() -> None:
    p = np.array([[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])
    ref = np.hstack([p, (p @ [0.0, 5.0, 10.0])[:, None]])  # expectations 2.5 and 10
    out = ref.copy()
    out[:, -1] += [1.0, -1.0]
    nums = parity_numbers(ref, out, "label_distribution", targets=[(2.0, 1.0), (9.0, 1.0)], label_range="0:10:5")
    assert nums["dist_cosine"] == pytest.approx(1.0) and nums["dist_max_abs_err"] == 0
    assert nums["exp_max_abs_err"] == pytest.approx(1.0) and nums["exp_max_err"] == pytest.approx(0.1)
    assert nums["torch_mae"] == pytest.approx(0.75) and nums["artifact_mae"] == pytest.approx(0.75)
    assert nums["mae_gap"] == pytest.approx(0.0) and "top1_agreement" not in nums
    # errors that cancel in the MAE still fail on the expectation itself
    with pytest.raises(EdgekitError, match="expectation max abs err 1 .10.000% of the label range"):
        gate("m.fp32.onnx", "fp32", nums, task="label_distribution")
    with pytest.raises(EdgekitError, match="expectation mean abs err"):
        gate("m.int8.tflite", "int8", nums, task="label_distribution")


def test_int8_gate_bound_on_the_mae_gap() -> None:
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(K), 64)
    ref = np.hstack([p, (p @ np.arange(K))[:, None]])
    y = list(ref[:, -1] + rng.normal(0, 3, 64))

    def shifted(d: float) -> dict:
        out = ref.copy()
        out[:, -1] += d
        return parity_numbers(ref, out, "label_distribution", targets=y, label_range="0:100:1")

    assert gate("m.int8.tflite", "int8", shifted(1.0), task="label_distribution")["passed"]
    with pytest.raises(EdgekitError, match="MAE gap"):
        gate("m.int8.tflite", "int8", shifted(5.0), task="label_distribution")
    flat = ref.copy()
    flat[:, :-1] = 1.0 / K
    with pytest.raises(EdgekitError, match="distribution cosine"):
        gate("m.int8.tflite", "int8", parity_numbers(ref, flat, "label_distribution", targets=y,
                                                     label_range="0:100:1"), task="label_distribution")


def test_output_layout_refuses_a_width_that_is_not_the_label_range() -> None:
    assert output_layout("classify", 10, None) is None
    assert output_layout("label_distribution", 1, None) == {"expectation": {"column": 0}, "label_range": None}
    with pytest.raises(EdgekitError, match="102 columns.*51 values"):
        output_layout("label_distribution", 102, "0:50:1")
