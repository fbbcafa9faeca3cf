"""``edgekit distill`` end to end on real (small) models and data: features, connector,
checkpoint contract, pruned students, teacher cache, non-softmax teachers, CLI."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from edgekit.checkpoint import load_checkpoint
from edgekit.compress.distill import distill
from edgekit.compress.features import FeatureTap, feature_dim, find_classifier
from edgekit.data import load_data
from edgekit.errors import EdgekitError
from edgekit.evaluation import evaluate
from edgekit.registry import create_model


@pytest.fixture(scope="module")
def small_digits():
    return load_data("digits").subset_train(0.15, seed=0)


@pytest.mark.parametrize("arch,path,dim", [("resnet18", "fc", 512), ("mobilenet_v3_small", "classifier.3", 1024),
                                           ("compact_cnn", "classifier", 256)])
def test_penultimate_feature_found_by_hooks(arch: str, path: str, dim: int) -> None:
    model = create_model(arch, num_classes=7, small_input=arch != "compact_cnn")
    assert find_classifier(model, (1, 3, 32, 32)) == path
    assert feature_dim(model, (1, 3, 32, 32)) == dim


def test_feature_layer_override_matches_classifier_input() -> None:
    model = create_model("compact_cnn", num_classes=5).eval()
    x = torch.randn(3, 3, 32, 32)
    with FeatureTap(model, x.shape) as auto, FeatureTap(model, x.shape, "features") as named:
        model(x)
        assert auto.layer == "dropout" and named.feature.shape == (3, 256)  # the registry's declared feature
        torch.testing.assert_close(auto.feature, named.feature)  # pooled 4-D output == classifier input (eval)
    with pytest.raises(EdgekitError, match="feature layer"):
        FeatureTap(model, x.shape, "featurez")


def test_connector_is_an_architecture_kwarg() -> None:
    model = create_model("compact_cnn_s", num_classes=10, feature_dim=256)
    assert model.classifier.connector.in_features == 128 and model.classifier.connector.out_features == 256
    assert find_classifier(model, (1, 3, 32, 32)) == "classifier.classifier"
    assert feature_dim(model, (1, 3, 32, 32)) == 256
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_distill_end_to_end(digits_ckpt: Path, small_digits, tmp_path: Path) -> None:
    out = tmp_path / "student.pt"
    ckpt = distill(digits_ckpt, "compact_cnn_s", small_digits, out, method="lshl2+kd", epochs=1, progress=False)
    assert ckpt.arch == "compact_cnn_s" and ckpt.arch_kwargs["feature_dim"] == 256  # teacher compact_cnn: 256-d
    prov = ckpt.provenance
    assert prov["stage"] == "distill" and prov["method"] == "kd+lshl2" and prov["hash_num"] == 4 * 256
    teacher = load_checkpoint(digits_ckpt)  # the lineage's original, for speed-ups in reports
    assert ckpt.lineage["parent_sha256"] == teacher.sha256 and ckpt.lineage["root_sha256"] == teacher.sha256
    assert ckpt.lineage["root_name"] == digits_ckpt.stem and ckpt.data == teacher.data
    assert prov["teacher"] == load_checkpoint(digits_ckpt).sha256 and prov["beta"] == 1.0 and prov["alpha"] == 1.0
    # the training log names every term
    rec = json.loads((tmp_path / "student.pt.metrics.jsonl").read_text().splitlines()[-1])
    for term in ("ce", "kd", "l2", "lsh", "teacher_correct"):
        assert term in rec, term
    assert rec["loss"] == pytest.approx(rec["ce"] + 1.0 * rec["kd"] + 1.0 * (rec["l2"] + rec["lsh"]), rel=0.02)
    # rebuilt from its definition (weights_only load), it scores what training measured
    again = load_checkpoint(out)
    assert again.model.classifier.connector.out_features == 256
    assert evaluate(again, small_digits, device="cpu")["top1"] == pytest.approx(ckpt.metrics["val_top1"])
    with pytest.raises(EdgekitError, match="exists"):
        distill(digits_ckpt, "compact_cnn_s", small_digits, out, epochs=1, progress=False)


def test_lsh_bias_is_balanced_median(digits_ckpt: Path, small_digits, tmp_path: Path) -> None:
    """The stored run uses -median bias: the teacher's bits over the training set are ~50 % ones."""
    from edgekit.compress.distill import _Teacher, teacher_outputs
    from edgekit.compress.lsh import LSHProjector
    from edgekit.data import eval_transform

    t = load_checkpoint(digits_ckpt)
    teach = _Teacher(t.model, 32, 32, None)
    loader = small_digits.loader("train", eval_transform(t.input_spec), 128)
    feats, outs = teacher_outputs(teach, loader, torch.device("cpu"))
    proj = LSHProjector(feats.shape[1], std=float(t.model.classifier.weight.std()))
    ones_before = (proj(feats) > 0).float().mean(0)
    proj.fit_bias(feats, "median")
    ones = (proj(feats) > 0).float().mean(0)
    assert (ones - 0.5).abs().max() <= 0.01  # lower median: at most one sample off balance
    assert (ones_before - 0.5).abs().max() > 0.05  # without the bias, bits are unbalanced (ReLU features)


def test_feature_only_distillation_changes_the_student(digits_ckpt: Path, small_digits, tmp_path: Path) -> None:
    a = distill(digits_ckpt, "compact_cnn_s", small_digits, tmp_path / "a.pt", method="l2", epochs=1, seed=3,
                beta=50.0, progress=False)
    b = distill(digits_ckpt, "compact_cnn_s", small_digits, tmp_path / "b.pt", method="l2", epochs=1, seed=3,
                beta=0.0, progress=False)
    diff = sum(float((a.state_dict[k].float() - b.state_dict[k].float()).abs().sum()) for k in a.state_dict)
    assert diff > 1e-3  # the feature term really back-propagates into the student


def test_pruned_student_starts_from_its_weights(digits_ckpt: Path, small_digits, tmp_path: Path) -> None:
    import torch_pruning as tp

    parent = load_checkpoint(digits_ckpt)
    model = parent.model.train()
    pruner = tp.pruner.MagnitudePruner(model, torch.randn(1, 3, 32, 32),
                                       importance=tp.importance.MagnitudeImportance(p=1),
                                       pruning_ratio=0.25, ignored_layers=[model.classifier])
    pruner.step()
    pruned_path = parent.derive(model, stage="prune").save(tmp_path / "pruned.pt")
    pruned = load_checkpoint(pruned_path)
    assert pruned.channel_plan and feature_dim(pruned.model, (1, 3, 32, 32)) == 192
    out = distill(digits_ckpt, pruned_path, small_digits, tmp_path / "s.pt", method="lsh", epochs=1, lr=1e-12,
                  progress=False)
    assert out.arch_kwargs["feature_dim"] == 256 and out.channel_plan  # connector 192 -> 256, widths kept
    assert out.model.classifier.connector.in_features == 192
    assert out.provenance["parent"] == pruned.sha256
    w0, w1 = pruned.state_dict["features.0.weight"], out.state_dict["features.0.weight"]
    torch.testing.assert_close(w0, w1, atol=1e-6, rtol=0)  # lr ~ 0: the student is the pruned model


def test_teacher_cache(digits_ckpt: Path, small_digits, tmp_path: Path) -> None:
    cache = tmp_path / "teacher.cache"
    distill(digits_ckpt, "compact_cnn_s", small_digits, tmp_path / "a.pt", method="lsh", epochs=1,
            cache_teacher=cache, progress=False)
    obj = torch.load(cache, weights_only=True)
    assert obj["features"].shape == (len(small_digits.train), 256) and obj["outputs"].shape[1] == 10
    stamp = cache.stat().st_mtime_ns
    ckpt = distill(digits_ckpt, "compact_cnn_s", small_digits, tmp_path / "b.pt", method="lsh", epochs=1,
                   cache_teacher=cache, progress=False)
    assert cache.stat().st_mtime_ns == stamp and ckpt.provenance["cache_teacher"] is True  # reused, not recomputed


def _regression_csv(root: Path, n: int = 40) -> Path:
    rng = np.random.default_rng(0)
    rows = ["path,target"]
    for i in range(n):
        level = int(rng.integers(20, 235))
        img = np.clip(rng.normal(level, 10, (16, 16, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(root / f"{i}.png")
        rows.append(f"{i}.png,{level / 255:.4f}")
    (root / "data.csv").write_text("\n".join(rows) + "\n")
    return root / "data.csv"


def test_regression_teacher_distils_through_features(tmp_path: Path) -> None:
    from edgekit.training.trainer import train

    csv = _regression_csv(tmp_path)
    spec = f"csv:{csv}"
    teacher = train("compact_cnn", spec, tmp_path / "t.pt", epochs=1, batch_size=16, input_size=32, progress=False)
    assert teacher.task == "regression"
    with pytest.raises(EdgekitError, match="no softmax"):
        distill(teacher, "compact_cnn_s", spec, tmp_path / "kd.pt", method="kd", epochs=1, progress=False)
    s = distill(teacher, "compact_cnn_s", spec, tmp_path / "s.pt", method="lshl2", epochs=1, batch_size=16,
                progress=False)
    assert s.task == "regression" and "val_mae" in s.metrics and s.arch_kwargs["feature_dim"] == 256
    rec = json.loads((tmp_path / "s.pt.metrics.jsonl").read_text().splitlines()[-1])
    assert {"l1", "l2", "lsh"} <= set(rec) and "teacher_correct" not in rec  # no softmax: all samples count


def test_cli_distill(digits_ckpt: Path, tmp_path: Path) -> None:
    from edgekit.cli import main

    runner = CliRunner()
    res = runner.invoke(main, ["distill", "--teacher", str(tmp_path / "missing.pt"), "--student", "compact_cnn_s",
                               "--data", "digits", "-o", str(tmp_path / "s.pt")])
    assert res.exit_code == 2 and "checkpoint not found" in res.output and "Traceback" not in res.output
    res = runner.invoke(main, ["distill", "--teacher", str(digits_ckpt), "--student", "compact_cnn_s", "--data",
                               "digits:val=0.8", "-o", str(tmp_path / "s.pt"), "--method", "kd", "--epochs", "1"])
    assert res.exit_code == 0, res.output
    assert "kd student compact_cnn_s" in res.output and "teacher" in res.output


def test_cli_distill_without_teacher_prints_no_teacher_score(digits_ckpt: Path, tmp_path: Path) -> None:
    """``--method none`` has no teacher: no "teacher nan%"; the run leaves only the student and its log."""
    from edgekit.cli import main

    out = tmp_path / "s.pt"
    res = CliRunner().invoke(main, ["distill", "--teacher", str(digits_ckpt), "--student", "compact_cnn_s",
                                    "--data", "digits:val=0.8", "-o", str(out), "--method", "none", "--epochs", "1"])
    assert res.exit_code == 0, res.output
    line = res.output.strip().splitlines()[-1]
    assert "none student compact_cnn_s" in line and "teacher" not in line and "nan" not in line, line
    assert "precise BN:" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.pt", "s.pt.metrics.jsonl"]


def test_run_teacher_cache_is_removed_named_cache_kept(digits_ckpt: Path, small_digits, tmp_path: Path) -> None:
    ck = distill(digits_ckpt, "compact_cnn_s", small_digits, tmp_path / "a.pt", method="kd", epochs=1,
                 cache_teacher=True, precise_bn=0, progress=False)
    assert ck.provenance["cache_teacher"] is True and "precise_bn" not in ck.metrics
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pt", "a.pt.metrics.jsonl"]
