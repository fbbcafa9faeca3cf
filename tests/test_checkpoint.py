"""The checkpoint contract: safe loading, channel plans, rebuild in a fresh process."""
from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from edgekit import create_model, load_checkpoint, save_checkpoint
from edgekit.data import make_input_spec
from edgekit.errors import EdgekitError


def _shrink_conv_pair(conv_a: nn.Conv2d, bn: nn.BatchNorm2d, conv_b: nn.Conv2d, keep: int,
                      dw: nn.Conv2d | None = None, dw_bn: nn.BatchNorm2d | None = None) -> None:
    """Keep the first ``keep`` output channels of conv_a (and its BN, an optional depthwise
    conv + BN after it) and the matching input channels of conv_b: a hand-made prune."""
    idx = torch.arange(keep)
    conv_a.weight = nn.Parameter(conv_a.weight.data[idx].clone())
    conv_a.out_channels = keep
    for b in filter(None, (bn, dw_bn)):
        b.weight = nn.Parameter(b.weight.data[idx].clone())
        b.bias = nn.Parameter(b.bias.data[idx].clone())
        b.running_mean = b.running_mean[idx].clone()
        b.running_var = b.running_var[idx].clone()
        b.num_features = keep
    if dw is not None:
        dw.weight = nn.Parameter(dw.weight.data[idx].clone())
        dw.in_channels = dw.out_channels = dw.groups = keep
    conv_b.weight = nn.Parameter(conv_b.weight.data[:, idx].clone())
    conv_b.in_channels = keep


def shrunk_resnet18() -> nn.Module:
    model = create_model("resnet18", num_classes=10, small_input=True)
    for i, block in enumerate([model.layer1[0], model.layer2[1], model.layer4[0]]):
        _shrink_conv_pair(block.conv1, block.bn1, block.conv2, keep=block.conv1.out_channels // (2 + i))
    return model


def shrunk_mobilenet_v2() -> nn.Module:
    model = create_model("mobilenet_v2", num_classes=10, small_input=True)
    for k in (2, 5, 9):
        conv = model.features[k].conv  # [expand ConvBNReLU, depthwise ConvBNReLU, project conv, bn]
        _shrink_conv_pair(conv[0][0], conv[0][1], conv[2], keep=conv[0][0].out_channels // 3,
                          dw=conv[1][0], dw_bn=conv[1][1])
    return model


@pytest.mark.parametrize("arch,builder", [("resnet18", shrunk_resnet18), ("mobilenet_v2", shrunk_mobilenet_v2)])
def test_shrunk_model_rebuilds_in_fresh_process(tmp_path: Path, arch: str, builder) -> None:
    torch.manual_seed(0)
    model = builder().eval()
    x = torch.randn(2, 3, 32, 32)
    expected = model(x)
    ckpt = save_checkpoint(tmp_path / "m.pt", model, arch=arch, arch_kwargs={"num_classes": 10, "small_input": True},
                           labels=[str(i) for i in range(10)], input_spec=make_input_spec(32))
    assert ckpt.channel_plan["modules"], "hand-shrunk layers must appear in the channel plan"
    torch.save({"x": x, "y": expected.detach()}, tmp_path / "io.pt")
    code = (
        "import sys, torch, edgekit\n"
        "ck = edgekit.load_checkpoint(sys.argv[1])\n"
        "io = torch.load(sys.argv[2], weights_only=True)\n"
        "out = ck.model(io['x'])\n"
        "print(float((out - io['y']).abs().max()))\n"
    )
    res = subprocess.run([sys.executable, "-c", code, str(tmp_path / "m.pt"), str(tmp_path / "io.pt")],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert float(res.stdout.strip()) < 1e-5
    # The file is plain data: loadable with weights_only and no edgekit-specific classes.
    raw = torch.load(tmp_path / "m.pt", weights_only=True)
    assert raw["format"] == "edgekit.checkpoint" and raw["arch"]["channel_plan"]


def test_roundtrip_keeps_metadata(tmp_path: Path) -> None:
    model = create_model("compact_cnn", num_classes=3)
    save_checkpoint(tmp_path / "c.pt", model, arch="compact_cnn", arch_kwargs={"num_classes": 3},
                    labels=["a", "b", "c"], input_spec=make_input_spec(24), metrics={"val_top1": 50.0},
                    provenance={"stage": "test"})
    ck = load_checkpoint(tmp_path / "c.pt")
    assert ck.labels == ["a", "b", "c"] and ck.task == "classify"
    assert ck.input_spec["shape"] == [3, 24, 24] and ck.metrics["val_top1"] == 50.0
    assert ck.channel_plan == {}
    assert ck.provenance["stage"] == "test" and "torch" in ck.provenance["versions"]
    from PIL import Image

    assert ck.eval_transform(Image.new("RGB", (50, 40))).shape == (3, 24, 24)
    child = ck.derive(ck.model, stage="distill", metrics={"val_top1": 60.0})
    child.save(tmp_path / "child.pt")
    assert load_checkpoint(tmp_path / "child.pt").provenance["parent"] == ck.sha256



def test_code_carrying_file_is_rejected_not_executed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (Path.touch, (marker,))

    path = tmp_path / "evil.pt"
    torch.save({"format": "edgekit.checkpoint", "payload": Evil()}, path)
    with pytest.raises(EdgekitError, match="not a readable edgekit checkpoint"):
        load_checkpoint(path)
    assert not marker.exists(), "loading must never execute code from the file"
    with open(tmp_path / "raw.pkl", "wb") as fh:
        pickle.dump(Evil(), fh)
    with pytest.raises(EdgekitError):
        load_checkpoint(tmp_path / "raw.pkl")
    assert not marker.exists()


def test_corrupt_and_foreign_files(tmp_path: Path) -> None:
    (tmp_path / "junk.pt").write_bytes(b"\x00not a checkpoint at all")
    with pytest.raises(EdgekitError, match="not a readable"):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "plain.pt")
    with pytest.raises(EdgekitError, match="not an edgekit checkpoint"):
        load_checkpoint(tmp_path / "plain.pt")
    with pytest.raises(EdgekitError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")


def test_refuses_overwrite_without_force(tmp_path: Path) -> None:
    model = create_model("compact_cnn", num_classes=2)
    kw = dict(arch="compact_cnn", arch_kwargs={"num_classes": 2}, input_spec=make_input_spec(16))
    save_checkpoint(tmp_path / "c.pt", model, **kw)
    before = (tmp_path / "c.pt").read_bytes()
    with pytest.raises(EdgekitError, match="--force"):
        save_checkpoint(tmp_path / "c.pt", model, **kw)
    assert (tmp_path / "c.pt").read_bytes() == before
    save_checkpoint(tmp_path / "c.pt", model, force=True, **kw)


def test_structural_change_outside_plan_is_refused(tmp_path: Path) -> None:
    model = create_model("compact_cnn", num_classes=2)
    model.extra_head = nn.Linear(2, 2)
    with pytest.raises(EdgekitError, match="not in the architecture"):
        save_checkpoint(tmp_path / "c.pt", model, arch="compact_cnn", arch_kwargs={"num_classes": 2})
    assert not (tmp_path / "c.pt").exists()
