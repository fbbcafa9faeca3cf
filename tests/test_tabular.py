"""Tabular data and nets: CSV and scikit-learn specs, raw-feature models, train/eval/reload."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from edgekit import load_checkpoint
from edgekit.data import load_data
from edgekit.errors import EdgekitError
from edgekit.evaluation import evaluate
from edgekit.models.layout import layout_of
from edgekit.models.tabular import Standardize, matched_width
from edgekit.registry import count_params, create_model
from edgekit.training.trainer import train


def _edgekit(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgekit", *args], capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("name,d,classes,n", [("breast_cancer", 30, 2, 569), ("wine", 13, 3, 178),
                                              ("iris", 4, 3, 150), ("digits", 64, 10, 1797)])
def test_sklearn_sets_split_and_standardise_on_train_only(name: str, d: int, classes: int, n: int) -> None:
    b = load_data(f"sklearn:{name}?val=0.25&seed=3")
    assert len(b.train) + len(b.val) == n and len(b.labels) == classes and b.task == "classify"
    x, y = b.train[0]
    assert x.shape == (d,) and x.dtype == torch.float32 and isinstance(y, int)
    spec = b.input_spec
    assert spec["kind"] == "tabular" and spec["shape"] == [d] and len(spec["features"]) == d
    rows = torch.stack([b.train[i][0] for i in range(len(b.train))])
    assert np.allclose(spec["mean"], rows.mean(0).numpy(), atol=1e-3)  # fitted on the training split
    assert b.record == {"spec": f"sklearn:{name}?val=0.25&seed=3", "val": 0.25, "seed": 3}
    again = load_data(f"sklearn:{name}", seed=3, val=0.25)
    assert again.val.indices == b.val.indices  # reopened the same way, the same split
    assert set(b.val.targets) == set(range(classes))  # stratified: every class in validation
    assert load_data(f"sklearn:{name}", seed=4, val=0.25).val.indices != b.val.indices


def _write_csv(path: Path, n: int = 120, split: bool = False) -> Path:
    rng = np.random.default_rng(0)
    lines = ["size,colour,weight,label" + (",split" if split else "")]
    for i in range(n):
        colour = ["red", "green", "blue"][i % 3]
        size = "" if i % 10 == 0 else f"{rng.normal(i % 3, 0.3):.3f}"  # 12 missing sizes
        weight = "NA" if i % 15 == 0 else f"{rng.normal(0, 1):.3f}"    # 8 missing weights
        label = ["cat", "dog", "eel"][i % 3]
        lines.append(f"{size},{colour},{weight},{label}" + ((",val" if i % 4 == 0 else ",train") if split else ""))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_csv_with_categorical_column_and_missing_values(tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "pets.csv")
    b = load_data(f"tabular:{path}?target=label")
    assert b.labels == ["cat", "dog", "eel"]
    assert b.input_spec["features"] == ["size", "colour=blue", "colour=green", "colour=red", "weight"]
    assert b.info["missing"] == {"size": 12, "weight": 8} and b.info["missing_total"] == 20
    assert b.info["categorical"] == ["colour"]
    rows = torch.stack([b.train[i][0] for i in range(len(b.train))])
    assert torch.isfinite(rows).all() and (rows[:, 1:4].sum(1) == 1).all()  # one-hot, one category each
    ordinal = load_data(f"tabular:{path}?target=label&encode=ordinal")
    assert ordinal.input_spec["features"] == ["size", "colour", "weight"]
    assert {float(ordinal.train[i][0][1]) for i in range(len(ordinal.train))} == {0.0, 1.0, 2.0}
    # the last column is the default target; a split column fixes the split and is no feature
    fixed = load_data(f"tabular:{_write_csv(tmp_path / 'split.csv', split=True)}")
    assert fixed.labels == ["cat", "dog", "eel"] and len(fixed.val) == 30 and fixed.record["folders"] is True
    assert "split" not in " ".join(fixed.input_spec["features"])
    with pytest.raises(EdgekitError, match="no column 'nope'"):
        load_data(f"tabular:{path}?target=nope")
    with pytest.raises(EdgekitError, match="encode must be"):
        load_data(f"tabular:{path}?encode=hash")


def test_models_take_raw_features_and_mlp_matches_nfl_params() -> None:
    mean, std = [1.0, -2.0, 3.0, 0.5], [2.0, 1.0, 0.5, 4.0]
    nfl = create_model("nfl_tabular", num_classes=3, in_features=4, mean=mean, std=std).eval()
    mlp = create_model("mlp_tabular", num_classes=3, in_features=4, mean=mean, std=std).eval()
    x = torch.randn(6, 4) * 3 + 1
    assert torch.allclose(nfl.standardize(x), (x - torch.tensor(mean)) / torch.tensor(std))
    assert nfl(x).shape == (6, 3) and mlp(x).shape == (6, 3)
    p_nfl, p_mlp = count_params(nfl), count_params(mlp)
    assert p_nfl <= p_mlp < p_nfl * 1.01, (p_nfl, p_mlp)
    assert mlp.classifier.in_features == matched_width(4, 3)
    assert layout_of(nfl).classifier == "head.classifier" and nfl.get_submodule(layout_of(nfl).feature)
    with pytest.raises(EdgekitError, match="std"):
        Standardize(2, [0.0, 0.0], [1.0, 0.0])


def test_train_eval_and_reload_on_breast_cancer(tmp_path: Path) -> None:
    out = tmp_path / "bc.ckpt"
    res = _edgekit("train", "--arch", "nfl_tabular", "--data", "sklearn:breast_cancer", "--epochs", "3",
                   "--device", "cpu", "-o", str(out))
    assert res.returncode == 0, res.stderr[-2000:]
    ck = load_checkpoint(out)
    assert ck.task == "classify" and ck.input_spec["kind"] == "tabular" and ck.input_spec["shape"] == [30]
    assert ck.data == {"spec": "sklearn:breast_cancer", "val": 0.2, "seed": 0}
    assert ck.metrics["val_top1"] > 90.0, ck.metrics
    ev = _edgekit("eval", str(out), "--json")
    assert ev.returncode == 0, ev.stderr[-2000:]
    scored = json.loads(ev.stdout)
    assert scored["n"] == 113 and scored["top1"] == pytest.approx(ck.metrics["val_top1"], abs=1e-6)
    # a fresh process rebuilds the model (standardisation included) from the checkpoint alone
    from sklearn.datasets import load_breast_cancer

    raw = torch.tensor(load_breast_cancer().data[:8], dtype=torch.float32)
    with torch.no_grad():
        want = ck.model(raw)
    torch.save({"x": raw, "y": want}, tmp_path / "io.pt")
    code = ("import sys, torch; from edgekit import load_checkpoint; ck = load_checkpoint(sys.argv[1]); "
            "io = torch.load(sys.argv[2]); out = ck.model(io['x']).detach(); "
            "assert torch.allclose(out, io['y'], atol=1e-5), (out - io['y']).abs().max()")
    again = subprocess.run([sys.executable, "-c", code, str(out), str(tmp_path / "io.pt")], capture_output=True,
                           text=True, timeout=120)
    assert again.returncode == 0, again.stderr[-2000:]


def test_train_mlp_on_csv_with_missing_values(tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "pets.csv", n=150)
    ck = train("mlp_tabular", f"tabular:{path}?target=label", tmp_path / "m.ckpt", epochs=3, optimizer="adam",
               progress=False, device="cpu")
    assert ck.arch_kwargs["in_features"] == 5 and ck.metrics["val_top1"] > 60.0, ck.metrics  # chance: 33 %
    assert evaluate(ck)["top1"] == pytest.approx(ck.metrics["val_top1"], abs=1e-6)
    assert ck.load_data().val.indices == load_data(f"tabular:{path}?target=label").val.indices


def test_images_and_features_do_not_mix(tmp_path: Path) -> None:
    with pytest.raises(EdgekitError, match="tabular architecture"):
        train("compact_cnn", "sklearn:iris", tmp_path / "a.ckpt", epochs=1, progress=False)
    with pytest.raises(EdgekitError, match="takes feature vectors"):
        train("nfl_tabular", "digits", tmp_path / "b.ckpt", epochs=1, progress=False)


@pytest.mark.slow
def test_export_onnx_tflite_int8_and_bench_take_raw_features(tmp_path: Path) -> None:
    import edgekit
    from edgekit.exporters.pipeline import export
    from edgekit.exporters.runtimes import load_runner
    from sklearn.datasets import load_wine

    ck = train("nfl_tabular", "sklearn:wine", tmp_path / "wine.ckpt", epochs=3, optimizer="adam", progress=False,
               device="cpu", arch_kwargs={"n_mul": 10, "n_fc": 32})
    manifests = export(ck, ["onnx", "tflite"], precision=["fp32", "int8"], output_dir=tmp_path / "out",
                       calib_size=64, parity_size=36)
    assert {(m["target"], m["precision"]) for m in manifests} >= {("onnx", "fp32"), ("tflite", "fp32"),
                                                                  ("tflite", "int8")}
    assert all(m["parity"]["passed"] for m in manifests), [m["parity"] for m in manifests]
    prep = manifests[0]["preprocessing"]
    assert prep["scale"].startswith("none") and len(prep["features"]) == 13
    raw = load_wine().data[:5].astype(np.float32)  # unstandardised, as a device reads them
    with torch.no_grad():
        want = ck.model(torch.from_numpy(raw)).numpy()
    for m in manifests:
        if m["precision"] == "fp32":
            assert np.allclose(load_runner(m["path"])(raw), want, atol=1e-4), m["file"]
    rows = edgekit.bench([m["path"] for m in manifests], runs=5, warmup=1, data="sklearn:wine")
    assert all(r.get("error") is None for r in rows), [r.get("error") for r in rows]
    assert all(r["accuracy"]["top1"] is not None for r in rows), rows[0]


def test_train_repeats_reports_mean_and_std(tmp_path: Path) -> None:
    """``--repeats N``: N runs on seeds SEED..SEED+N-1, each its own split, summarised as mean +- std."""
    import statistics

    from click.testing import CliRunner

    from edgekit.cli import main

    out = tmp_path / "m.ckpt"
    args = ["train", "--arch", "mlp_tabular", "--data", "sklearn:iris", "--epochs", "1", "-o", str(out),
            "--seed", "4", "--repeats", "2"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "m.ckpt.repeats.json").read_text())
    assert summary["seeds"] == [4, 5] and [r["seed"] for r in summary["runs"]] == [4, 5]
    tops = [r["val_top1"] for r in summary["runs"]]
    assert summary["val_top1"]["mean"] == pytest.approx(statistics.fmean(tops))
    assert summary["val_top1"]["std"] == pytest.approx(statistics.stdev(tops))
    assert "top1" in res.output and "+-" in res.output
    for seed in (4, 5):  # each run is an ordinary checkpoint, split by its own seed
        assert load_checkpoint(tmp_path / f"m.seed{seed}.ckpt").data["seed"] == seed
    assert not out.exists()
    again = CliRunner().invoke(main, args)  # outputs exist: refused before training, nothing lost
    assert again.exit_code == 2 and "already exists" in again.output
    for bad in (["--repeats", "0"], ["--repeats", "2", "--resume"]):
        r = CliRunner().invoke(main, args[:-2] + bad + ["--force"])
        assert r.exit_code == 2 and r.output.count("\n") == 1, r.output


def test_image_only_options_refused_for_feature_vectors(tmp_path: Path) -> None:
    """CutMix and an NHWC export are image notions: one line each, nothing written."""
    from click.testing import CliRunner

    from edgekit.cli import main

    res = CliRunner().invoke(main, ["train", "--arch", "mlp_tabular", "--data", "sklearn:iris", "--epochs", "1",
                                    "--mix", "cutmix", "-o", str(tmp_path / "c.ckpt")])
    assert res.exit_code == 2 and "feature vectors" in res.output and not (tmp_path / "c.ckpt").exists()
    assert CliRunner().invoke(main, ["train", "--arch", "mlp_tabular", "--data", "sklearn:iris", "--epochs", "1",
                                     "-o", str(tmp_path / "m.ckpt")]).exit_code == 0
    res = CliRunner().invoke(main, ["export", str(tmp_path / "m.ckpt"), "-t", "tflite", "--nhwc",
                                    "-o", str(tmp_path / "out")])
    assert res.exit_code == 2 and "feature vectors" in res.output and res.output.count("\n") == 1
    assert not list(tmp_path.glob("out/*.tflite"))
