"""Registry: every name builds, local weights load, user factories, MAC counting."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from edgekit import create_model, list_models
from edgekit.errors import EdgekitError
from edgekit.registry import build_for_shape, count_macs, count_params, get_entry, load_weights


def test_lists_own_and_torchvision_models() -> None:
    names = list_models()
    for n in ("compact_cnn", "resnet18", "mobilenet_v2", "mobilenet_v3_small", "efficientnet_b0",
              "regnet_x_400mf", "convnext_tiny", "vit_b_16"):
        assert n in names
    assert len(names) > 80


@pytest.mark.parametrize("name", [n for n in list_models()])
def test_every_registered_name_builds(name: str) -> None:
    model = build_for_shape(name, num_classes=7).eval()
    size = get_entry(name).default_input
    if next(model.parameters()).device.type != "meta":  # built on CPU (RegNet): check the head only
        assert [m for m in model.modules() if isinstance(m, nn.Linear)][-1].out_features == 7
        return
    with torch.no_grad():
        out = model(torch.zeros(1, 3, size, size, device="meta"))
    assert out.shape == (1, 7)


def test_small_input_stem_and_macs() -> None:
    big = create_model("resnet18", num_classes=10)
    small = create_model("resnet18", num_classes=10, small_input=True)
    assert isinstance(small.maxpool, nn.Identity) and small.conv1.stride == (1, 1)
    assert count_macs(small, (1, 3, 32, 32)) > 10 * count_macs(big, (1, 3, 32, 32))
    # resnet18 at 224: torchvision reports 1.81 GFLOPs (multiply-adds)
    assert count_macs(create_model("resnet18"), (1, 3, 224, 224)) == pytest.approx(1.814e9, rel=0.01)
    assert count_params(create_model("resnet18")) == 11689512


def test_local_weights_seed_a_model_with_another_head(tmp_path: Path) -> None:
    src = create_model("resnet18", num_classes=1000)
    torch.save(src.state_dict(), tmp_path / "imagenet.pth")
    dst = create_model("resnet18", num_classes=10, weights=tmp_path / "imagenet.pth")
    assert torch.equal(dst.conv1.weight, src.conv1.weight)
    assert dst.fc.out_features == 10
    report = load_weights(create_model("resnet18", num_classes=10), tmp_path / "imagenet.pth")
    assert report["mismatched"] == ["fc.bias", "fc.weight"]


def test_bad_weights_files(tmp_path: Path) -> None:
    with pytest.raises(EdgekitError, match="not found"):
        create_model("compact_cnn", weights=tmp_path / "nope.pth")
    torch.save(create_model("compact_cnn").state_dict(), tmp_path / "other.pth")
    with pytest.raises(EdgekitError, match="no tensor"):
        create_model("resnet18", weights=tmp_path / "other.pth")


def test_user_factory_and_unknown_names(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "my_models.py").write_text(
        "import torch.nn as nn\n"
        "def tiny(num_classes=2):\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(12, num_classes))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    model = create_model("my_models:tiny", num_classes=3)
    assert model(torch.zeros(1, 3, 2, 2)).shape == (1, 3)
    with pytest.raises(EdgekitError, match="did you mean resnet18"):
        create_model("resnet1")
    with pytest.raises(EdgekitError, match="cannot import"):
        create_model("my_models:missing")
