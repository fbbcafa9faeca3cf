"""Registry: every name builds with a consistent layout, names are unique, local weights load,
user factories fall back to hooks, MAC counting, state-dict versions survive checkpoints."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from edgekit import create_model, list_models
from edgekit import registry
from edgekit.errors import EdgekitError
from edgekit.models.layout import Layout, attach, layout_of
from edgekit.models.tabular import takes_features
from edgekit.registry import build_for_shape, count_macs, count_params, get_entry, load_weights


def test_lists_own_and_torchvision_models() -> None:
    names = list_models()
    for n in ("compact_cnn", "resnet18", "mobilenet_v2", "mobilenet_v3_small", "efficientnet_b0",
              "regnet_x_400mf", "convnext_tiny", "vit_b_16"):
        assert n in names
    assert len(names) > 80


def _check_declared_layout(name: str, model: nn.Module) -> None:
    """The entry's module paths exist and are what they claim (classifier emits the classes, stem is
    the first conv on the image's 3 channels, stem pool a max-pool)."""
    layout = layout_of(model)
    assert layout == get_entry(name).layout and layout.classifier and layout.stem, f"{name}: no layout declared"
    clf = model.get_submodule(layout.classifier)
    assert isinstance(clf, (nn.Linear, nn.Conv2d))
    assert (clf.out_features if isinstance(clf, nn.Linear) else clf.out_channels) == 7
    first = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    assert model.get_submodule(layout.stem) is first and first.in_channels == 3
    if layout.feature:
        model.get_submodule(layout.feature)
    if layout.stem_pool:
        assert isinstance(model.get_submodule(layout.stem_pool), nn.MaxPool2d)


@pytest.mark.parametrize("name", [n for n in list_models() if not takes_features(get_entry(n).factory)])
def test_every_registered_name_builds(name: str) -> None:
    model = build_for_shape(name, num_classes=7).eval()
    _check_declared_layout(name, model)
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


def test_a_name_registers_once(monkeypatch) -> None:
    monkeypatch.setattr(registry, "_EDGEKIT", dict(registry._EDGEKIT))

    def tiny(num_classes: int = 2) -> nn.Module:
        return nn.Sequential(nn.Flatten(), nn.Linear(12, num_classes))

    registry.register_model("contract_tiny", default_input=2)(tiny)
    assert get_entry("contract_tiny").source == "user" and get_entry("contract_tiny").layout == Layout()
    for taken in ("contract_tiny", "compact_cnn", "resnet18"):
        with pytest.raises(EdgekitError, match="pick another name"):
            registry.register_model(taken)(tiny)


def test_user_registration_first_still_loads_builtins_and_never_imports_compress() -> None:
    code = (
        "import sys, torch.nn as nn\n"
        "from edgekit.registry import register_model, list_models, create_model\n"
        "register_model('mine')(lambda num_classes=2: nn.Linear(4, num_classes))\n"
        "assert 'compact_cnn' in list_models() and 'mine' in list_models()\n"
        "m = create_model('compact_cnn', num_classes=3, feature_dim=16)\n"
        "assert m.edgekit_layout.classifier == 'classifier.classifier'\n"
        "assert not [k for k in sys.modules if k.startswith('edgekit.compress')], 'registry imported compress'\n"
        "try:\n"
        "    register_model('compact_cnn')(lambda num_classes=2: nn.Linear(4, num_classes))\n"
        "except Exception as e:\n"
        "    print(type(e).__name__)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "EdgekitError"


def test_features_read_the_layout_and_fall_back_to_hooks() -> None:
    from edgekit.compress.features import FeatureTap, feature_dim, find_classifier

    shape = (1, 3, 32, 32)
    sq = create_model("squeezenet1_1", num_classes=4, small_input=True)
    assert find_classifier(sq, shape) == "classifier.1"  # a 1x1 conv head: hooks alone cannot find it
    assert feature_dim(sq, shape) == 512
    attach(sq, Layout())  # a model nobody declared: hooks only
    with pytest.raises(EdgekitError, match="final Linear"):
        find_classifier(sq, shape)
    user = nn.Sequential(nn.Conv2d(3, 6, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 5))
    assert find_classifier(user, shape) == "3" and feature_dim(user, shape) == 6
    # a connector moves the declared classifier and feature; the tap follows it
    model = create_model("resnet18", num_classes=3, small_input=True, feature_dim=64).eval()
    assert layout_of(model) == Layout("fc.classifier", "fc.connector", "conv1", "maxpool", "layer4")
    with FeatureTap(model, shape) as tap, torch.no_grad():
        model(torch.randn(2, 3, 32, 32))
    assert tap.layer == "fc.connector" and tap.feature.shape == (2, 64)


def test_small_input_uses_the_declared_stem() -> None:
    g = create_model("googlenet", num_classes=4, small_input=True)
    assert g.conv1.conv.stride == (1, 1) and isinstance(g.maxpool1, nn.MaxPool2d)
    s = create_model("shufflenet_v2_x1_0", num_classes=4, small_input=True)
    assert s.conv1[0].stride == (1, 1) and isinstance(s.maxpool, nn.Identity)
    # a user factory without a layout: the first conv and a ``maxpool`` attribute, as before
    user = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2))
    registry.adapt_small_input(user)
    assert user[0].stride == (1, 1)


def test_mnasnet_checkpoint_keeps_state_dict_versions(tmp_path: Path) -> None:
    """torchvision's MNASNet refuses a state dict without its version metadata; checkpoints keep it,
    and one written without it (a plain dict) loads with the versions of the model's code."""
    from edgekit.checkpoint import Checkpoint, load_checkpoint, save_checkpoint

    model = create_model("mnasnet0_5", num_classes=4).eval()
    ckpt = save_checkpoint(tmp_path / "m.pt", model, arch="mnasnet0_5", arch_kwargs={"num_classes": 4})
    loaded = load_checkpoint(ckpt.path)
    assert loaded.state_dict._metadata[""]["version"] == 2
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded.model(x), model(x))
    plain = Checkpoint(arch="mnasnet0_5", arch_kwargs={"num_classes": 4},
                       state_dict={k: v.clone() for k, v in model.state_dict().items()})
    with torch.no_grad():
        assert torch.equal(plain.model(x), model(x))
