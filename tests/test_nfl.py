"""The NFL / NRS layer (Cao et al., "Neural Forest Learning", 2019) and the ``head="nfl"`` CNN head:
its random-subspace index, shapes, seeding, checkpoints, pruning, distillation and export."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from edgekit.checkpoint import load_checkpoint, save_checkpoint
from edgekit.compress.features import feature_dim, find_classifier
from edgekit.data.transforms import make_input_spec
from edgekit.errors import EdgekitError
from edgekit.models.layout import layout_of
from edgekit.models.nfl import NFLHead, NFLLayer, default_n_per, permutation_mask
from edgekit.registry import count_macs, create_model


def _eval_bn_identity(layer: NFLLayer) -> None:
    for bn in (m for m in layer.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        bn.reset_parameters()
        bn.reset_running_stats()
    layer.eval()


# ------------------------------------------------------------------------------------- the layer

@pytest.mark.parametrize("d,dh,n_mul", [(7, 3, 2), (16, 5, 3), (1, 3, 1)])
def test_mask_is_a_concatenation_of_permutations(d: int, dh: int, n_mul: int) -> None:
    mask = NFLLayer(d, n_mul, 1, dh, seed=3).mask
    assert mask.dtype == torch.int64 and mask.shape == (d * n_mul * dh * dh,)
    for block in mask.reshape(dh * dh * n_mul, d):  # each block of d is one permutation of range(d)
        assert block.sort().values.tolist() == list(range(d))
    assert torch.bincount(mask, minlength=d).tolist() == [dh * dh * n_mul] * d


def test_gather_then_grouped_conv_is_the_papers_layer() -> None:
    """With each conv filter picking its own channel's centre, the output is relu(x[mask] viewed as
    (d*nMul) x dH x dW at the centre): the gather order and the reshape are the paper's."""
    layer = NFLLayer(6, n_mul=2, n_per=3, dh=3, seed=1)
    _eval_bn_identity(layer)
    with torch.no_grad():
        layer.conv1.weight.zero_()
        layer.conv1.bias.zero_()
        for c in range(12):
            layer.conv1.weight[c, c % 3, 1, 1] = 1.0
    x = torch.randn(4, 6)
    want = x[:, layer.mask].reshape(4, 12, 3, 3)[:, :, 1, 1].relu()
    torch.testing.assert_close(layer(x), want, rtol=2e-5, atol=1e-6)  # BN eval eps only


@pytest.mark.parametrize("dh,side", [(3, 1), (5, 1), (6, 2)])
def test_output_shapes(dh: int, side: int) -> None:
    layer = NFLLayer(10, n_mul=3, n_per=5, dh=dh)
    assert layer.out_features == 30 * side * side
    assert layer(torch.randn(2, 10)).shape == (2, 30 * side * side)
    assert (layer.conv1.groups, hasattr(layer, "conv2")) == (6, dh > 3)
    head = NFLHead(10, 4, n_mul=3, n_per=5, dh=dh, n_fc=32)
    assert [n for n, _ in head.named_children()] == ["nfl", "mlp", "classifier"] and head.feature_name == "mlp"
    assert head(torch.randn(2, 10)).shape == (2, 4) and head.classifier.in_features == 32
    assert NFLHead(10, 4, n_mul=3, n_per=5, dh=dh).classifier.in_features == 30 * side * side


def test_seed_determines_the_subspaces_and_state_dict_restores_them() -> None:
    torch.testing.assert_close(permutation_mask(20, 3, 2, seed=5), permutation_mask(20, 3, 2, seed=5))
    assert not torch.equal(permutation_mask(20, 3, 2, seed=5), permutation_mask(20, 3, 2, seed=6))
    torch.manual_seed(0)
    a = NFLHead(20, 3, n_mul=2, n_per=4, seed=5).eval()
    b = NFLHead(20, 3, n_mul=2, n_per=4, seed=6).eval()
    assert "nfl.mask" in a.state_dict()
    x = torch.randn(5, 20)
    b.load_state_dict(a.state_dict())
    assert torch.equal(b.nfl.mask, a.nfl.mask)
    torch.testing.assert_close(b(x), a(x))


def test_bad_parameters_are_one_line() -> None:
    with pytest.raises(EdgekitError, match=r"nfl_per=3 must divide d\*nfl_mul=20"):
        NFLLayer(10, n_mul=2, n_per=3)
    with pytest.raises(EdgekitError, match="nfl_dh must be 3 or >= 5"):
        NFLLayer(10, dh=4)
    with pytest.raises(EdgekitError, match="nfl_mul must be a positive integer"):
        NFLLayer(10, n_mul=0)
    with pytest.raises(EdgekitError, match="head must be 'fc', 'nfl', "):
        create_model("compact_cnn", num_classes=3, head="forest")
    with pytest.raises(EdgekitError, match="need head='nfl'"):
        create_model("compact_cnn", num_classes=3, nfl_mul=2)


# ------------------------------------------------------------------------------------- CNN head

def test_default_n_per_keeps_64_groups_where_possible() -> None:
    assert default_n_per(512) == 16 and default_n_per(1280) == 40 and default_n_per(2048) == 64
    assert default_n_per(24) == 1 and default_n_per(100, groups=64) == 2  # 200 channels: 100 groups of 2


@pytest.mark.parametrize("arch,path,d", [("resnet18", "fc", 512), ("mobilenet_v2", "classifier.1", 1280),
                                         ("compact_cnn", "classifier", 256)])
def test_head_replaces_the_classifier_and_updates_the_layout(arch: str, path: str, d: int) -> None:
    plain = create_model(arch, num_classes=7, small_input=arch != "compact_cnn")
    model = create_model(arch, num_classes=7, small_input=arch != "compact_cnn", head="nfl")
    head = model.get_submodule(path)
    assert isinstance(head, NFLHead) and head.nfl.d == d and head.nfl.n_mul == 2 and head.nfl.dh == 3
    lay = layout_of(model)
    assert (lay.classifier, lay.feature) == (f"{path}.classifier", f"{path}.nfl")
    assert find_classifier(model, (1, 3, 32, 32)) == lay.classifier  # hooks agree with the declared layout
    assert feature_dim(model, (1, 3, 32, 32)) == 2 * d
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 7)
    # GAP and the backbone are kept: only the classifier changed
    assert set(plain.state_dict()) - {f"{path}.weight", f"{path}.bias"} <= set(model.state_dict())
    extra = count_macs(model, (1, 3, 32, 32)) - count_macs(plain, (1, 3, 32, 32))
    assert extra == 2 * d * default_n_per(d) * 9 + 2 * d * 7 - d * 7  # grouped conv + new Linear - old Linear


def test_checkpoint_rebuilds_the_head_from_its_definition(tmp_path: Path) -> None:
    kw = {"num_classes": 5, "head": "nfl", "nfl_mul": 3, "nfl_per": 6, "nfl_dh": 5, "nfl_seed": 9}
    model = create_model("compact_cnn_s", **kw).eval()
    path = tmp_path / "nfl.pt"
    save_checkpoint(path, model, arch="compact_cnn_s", arch_kwargs=kw, labels=list("abcde"),
                    input_spec=make_input_spec(32))
    again = load_checkpoint(path).model.eval()
    nfl = again.classifier.nfl
    assert (nfl.n_mul, nfl.n_per, nfl.dh, nfl.seed) == (3, 6, 5, 9) and hasattr(nfl, "conv2")
    assert torch.equal(nfl.mask, model.classifier.nfl.mask)
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(again(x), model(x))


def test_cli_train_with_head_nfl(tmp_path: Path) -> None:
    from edgekit.cli import main

    out = tmp_path / "m.pt"
    res = CliRunner().invoke(main, ["train", "--arch", "compact_cnn_s", "--head", "nfl", "--arch-arg", "nfl_per=8",
                                    "--data", "synthetic:classes=3,n=48", "--epochs", "1", "--batch-size", "16",
                                    "-o", str(out)])
    assert res.exit_code == 0, res.output
    ck = load_checkpoint(out)
    assert ck.arch_kwargs["head"] == "nfl" and ck.arch_kwargs["nfl_per"] == 8
    assert isinstance(ck.model.classifier, NFLHead) and ck.model.classifier.nfl.conv1.groups == 32
    res = CliRunner().invoke(main, ["train", "--arch", "compact_cnn_s", "--head", "tree", "--data", "synthetic",
                                    "-o", str(tmp_path / "x.pt")])
    assert res.exit_code == 2 and "tree" in res.output


# ------------------------------------------------------------------------------------- stages

def test_prune_leaves_the_nfl_layer_intact(tmp_path: Path) -> None:
    """The NFL layer is not prunable: L1 pruning to 60% MACs shrinks the backbone only, keeps the
    layer's weights and index, and holds the residual stream its index gathers from."""
    from edgekit.compress.prune import prune
    from edgekit.compress.units import UnitGraph

    torch.manual_seed(0)
    kw = {"num_classes": 4, "small_input": True, "head": "nfl"}
    model = create_model("resnet18", **kw)
    src, out = tmp_path / "src.pt", tmp_path / "p.pt"
    save_checkpoint(src, model, arch="resnet18", arch_kwargs=kw, labels=list("abcd"), input_spec=make_input_spec(16),
                    provenance={"data": "synthetic:classes=4,n=48"})
    groups = UnitGraph(copy.deepcopy(model), torch.zeros(1, 3, 16, 16)).describe()
    (held,) = [g for g in groups if "NFL" in (g["protected"] or "")]
    assert held["group"] == "layer4.0.downsample.0" and "fc.nfl" in held["protected"]
    assert not any(s.startswith("fc.") for g in groups for s in g["sites"] if g is not held)
    ck = prune(src, "synthetic:classes=4,n=48", out, target="macs=0.6", method="l1", proxy_size=2,
               finetune_epochs=0, precise_bn=0, progress=False)
    assert abs(ck.metrics["macs_ratio"] - 0.6) <= 0.012
    pruned = load_checkpoint(out).model
    assert pruned.layer3[0].conv1.out_channels < 256  # the backbone did shrink
    before, after = model.fc.state_dict(), pruned.fc.state_dict()
    assert before.keys() == after.keys()
    for key in before:
        assert torch.equal(before[key], after[key]), key
    assert pruned(torch.zeros(1, 3, 16, 16)).shape == (1, 4)


def test_curl_prunes_around_the_nfl_head(tmp_path: Path) -> None:
    from edgekit.compress.prune import prune

    torch.manual_seed(0)
    kw = {"num_classes": 4, "head": "nfl"}
    model = create_model("compact_cnn", **kw)
    src = tmp_path / "src.pt"
    save_checkpoint(src, model, arch="compact_cnn", arch_kwargs=kw, labels=list("abcd"),
                    input_spec=make_input_spec(16), provenance={"data": "synthetic:classes=4,n=48"})
    ck = prune(src, "synthetic:classes=4,n=48", tmp_path / "p.pt", target="macs=0.7", method="curl",
               proxy_size=2, finetune_epochs=0, precise_bn=1, progress=False)
    assert abs(ck.metrics["macs_ratio"] - 0.7) <= 0.014
    pruned = load_checkpoint(tmp_path / "p.pt").model
    assert torch.equal(pruned.classifier.nfl.conv1.weight, model.classifier.nfl.conv1.weight)
    assert torch.equal(pruned.classifier.nfl.mask, model.classifier.nfl.mask)


@pytest.fixture(scope="module")
def nfl_digits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """compact_cnn_s with the NFL head, trained 2 epochs on digits (about 75% val top-1)."""
    from edgekit.training.trainer import train

    path = tmp_path_factory.mktemp("nfl") / "nfl.pt"
    train("compact_cnn_s", "digits", path, epochs=2, batch_size=64, progress=False, arch_kwargs={"head": "nfl"})
    return path


def test_distill_with_nfl_teacher_and_nfl_student(nfl_digits: Path, digits_ckpt: Path, tmp_path: Path) -> None:
    from edgekit.compress.distill import distill
    from edgekit.data import load_data

    small = load_data("digits").subset_train(0.1, seed=0)
    # as teacher: its feature is the NFL layer's output (2 * 128 = 256), which the student mimics
    out = tmp_path / "s.pt"
    ck = distill(nfl_digits, "compact_cnn_s", small, out, method="lshl2+kd", epochs=1, progress=False)
    assert ck.arch_kwargs["feature_dim"] == 256 and ck.provenance["hash_num"] == 4 * 256
    assert load_checkpoint(out).model.classifier.connector.out_features == 256
    # as student (a checkpoint with the head): its NFL feature (256) matches compact_cnn's, no connector
    out2 = tmp_path / "s2.pt"
    ck2 = distill(digits_ckpt, nfl_digits, small, out2, method="lshl2+kd", epochs=1, progress=False)
    assert ck2.arch_kwargs["head"] == "nfl" and "feature_dim" not in ck2.arch_kwargs
    student = load_checkpoint(out2).model
    assert isinstance(student.classifier, NFLHead)
    assert torch.equal(student.classifier.nfl.mask, load_checkpoint(nfl_digits).model.classifier.nfl.mask)
    assert not torch.equal(student.classifier.nfl.conv1.weight,
                           load_checkpoint(nfl_digits).model.classifier.nfl.conv1.weight)  # it was trained


def test_export_onnx_and_tflite_pass_the_parity_gate(nfl_digits: Path, tmp_path: Path) -> None:
    """Gather and grouped convolution lower to ONNX (Gather, Conv group=64) and TFLite (GATHER_ND,
    CONV_2D), fp32 and int8 within the gate."""
    import onnx

    from edgekit.exporters.pipeline import export

    recs = export(nfl_digits, ["onnx", "tflite"], precision=["fp32", "int8"], output_dir=tmp_path,
                  calib_size=64, parity_size=128)
    assert len(recs) == 4 and all(r["parity"]["passed"] and r["parity"]["mode"] == "numeric" for r in recs)
    for r in recs:
        if r["precision"] == "fp32":
            assert r["parity"]["max_rel_err"] < 1e-4 and r["parity"]["top1_agreement"] == 1.0
        else:
            assert r["parity"]["top1_agreement"] >= 0.9
    graph = onnx.load(next(r["path"] for r in recs if r["path"].endswith("fp32.onnx"))).graph
    assert "Gather" in {n.op_type for n in graph.node}
    groups = [a.i for n in graph.node if n.op_type == "Conv" for a in n.attribute if a.name == "group"]
    assert 64 in groups


def test_coreml_package_holds_the_head(nfl_digits: Path, tmp_path: Path) -> None:
    """Core ML converts the gather and grouped conv (numbers need macOS; elsewhere the structure is checked)."""
    import platform

    from edgekit.exporters.pipeline import export

    (r,) = export(nfl_digits, "coreml", output_dir=tmp_path, parity_size=16)
    p = r["parity"]
    assert p["passed"] and Path(r["path"]).is_dir()
    if platform.system() != "Darwin":
        model = load_checkpoint(nfl_digits).model
        assert p["output_shape"] == [1, 10]
        assert p["conv_ops"] == sum(isinstance(m, torch.nn.Conv2d) for m in model.modules())
