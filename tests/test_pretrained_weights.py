"""``--weights imagenet`` / ``--weights <Enum>_Weights.<MEMBER>``: torchvision's weights through the torch hub cache.

Nothing here reaches the network. Each test points ``TORCH_HOME`` at a temporary folder and sets
``EDGEKIT_OFFLINE=1``; where weights must load, it places a state dict saved from a freshly built
torchvision model under the exact file name torchvision expects (``<hub>/checkpoints/<basename of
the URL>``), so the bytes that load are known. The one test of a failing download sends it to a
proxy on the loopback address that this test runs and that closes every connection.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch
import torchvision.models as tvm

from edgekit.checkpoint import load_checkpoint
from edgekit.errors import EdgekitError
from edgekit.fileio import sha256_file
from edgekit.pretrained import OFFLINE_ENV, cache_file
from edgekit.registry import create_model, load_weights, resolve_weights

DATA = "synthetic:classes=3,n=60,size=8"


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty torch home for this test, downloads forbidden; returns the hub's checkpoints folder."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv(OFFLINE_ENV, "1")
    assert Path(torch.hub.get_dir()) == tmp_path / "torch" / "hub"
    return tmp_path / "torch" / "hub" / "checkpoints"


def place(weights, state: dict[str, torch.Tensor]) -> Path:
    """Save ``state`` where torchvision looks for ``weights`` (a WeightsEnum member)."""
    path = cache_file(weights)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path


def test_imagenet_is_the_default_weights_and_training_starts_from_them(hub: Path, tmp_path: Path) -> None:
    default = tvm.get_model_weights("resnet18").DEFAULT
    torch.manual_seed(1)
    ref = tvm.resnet18().state_dict()
    file = place(default, ref)
    assert file == hub / "resnet18-f37072fd.pth"
    out = tmp_path / "model.ckpt"
    # lr 1e-9: one epoch leaves the weights where they started, within float noise
    res = subprocess.run([sys.executable, "-m", "edgekit", "train", "--arch", "resnet18", "--data", DATA, "--epochs",
                          "1", "--batch-size", "16", "--lr", "1e-9", "--precise-bn", "0", "--weights", "imagenet",
                          "-o", str(out)], capture_output=True, text=True, timeout=300)  # TORCH_HOME, offline: hub
    assert res.returncode == 0, res.stderr
    assert f"started from ResNet18_Weights.IMAGENET1K_V1 ({file}); {len(ref) - 2} tensors loaded; 2 of another " \
           "shape skipped (fc.bias, fc.weight)" in res.stdout, res.stdout
    ckpt = load_checkpoint(out)
    assert ckpt.arch_kwargs["small_input"] is True  # 8 px: the stride-1 stem keeps every tensor's shape
    for key in ("conv1.weight", "layer1.0.conv1.weight", "layer4.1.conv2.weight"):
        assert torch.allclose(ckpt.state_dict[key], ref[key], atol=1e-6), key
    assert not torch.allclose(create_model("resnet18", num_classes=3).conv1.weight, ref["conv1.weight"])
    assert ckpt.state_dict["fc.weight"].shape == (3, 512)  # the 1000-class classifier was skipped ...
    record = ckpt.provenance["weights"]
    assert record == {"name": "ResNet18_Weights.IMAGENET1K_V1", "url": default.url, "arch": "resnet18",
                      "file": str(file), "sha256": sha256_file(file), "loaded": len(ref) - 2,
                      "skipped": ["fc.bias", "fc.weight"]}  # ... and reported
    tf = default.transforms()
    assert (ckpt.input_spec["mean"], ckpt.input_spec["std"]) == (list(tf.mean), list(tf.std))
    assert sorted(p.name for p in hub.iterdir()) == [file.name]  # read from the cache: nothing else came
    from edgekit.evaluation.inspect import checkpoint_summary, format_summary

    assert "weights      ResNet18_Weights.IMAGENET1K_V1 (" in format_summary(checkpoint_summary(out))


def test_an_enum_name_and_a_video_net_through_its_backbone(hub: Path) -> None:
    v2 = tvm.MobileNet_V2_Weights.IMAGENET1K_V2
    assert tvm.get_model_weights("mobilenet_v2").DEFAULT is v2
    ref = tvm.mobilenet_v2().state_dict()
    place(v2, ref)
    model = create_model("mobilenet_v2", num_classes=5, small_input=True, weights="MobileNet_V2_Weights.IMAGENET1K_V2")
    assert torch.equal(model.features[0][0].weight, ref["features.0.0.weight"])
    assert model.classifier[1].out_features == 5
    # tsm_mobilenet_v2 takes mobilenet_v2's default weights under backbone.
    assert resolve_weights("imagenet", "tsm_mobilenet_v2").name == "MobileNet_V2_Weights.IMAGENET1K_V2"
    clip = create_model("tsm_mobilenet_v2", num_classes=5, frames=4)
    report = load_weights(clip, "imagenet", "tsm_mobilenet_v2")
    assert torch.equal(clip.backbone.features[18][0].weight, ref["features.18.0.weight"])
    assert report["mismatched"] == ["backbone.classifier.1.bias", "backbone.classifier.1.weight"]
    assert len(report["loaded"]) == len(ref) - 2
    # another member of the same enum is another file: not cached here, and downloads are off
    with pytest.raises(EdgekitError) as err:
        create_model("mobilenet_v2", weights="MobileNet_V2_Weights.IMAGENET1K_V1")
    assert str(hub / "mobilenet_v2-b0353104.pth") in str(err.value)


def test_densenet_files_keep_their_legacy_keys(hub: Path) -> None:
    """torchvision's densenet files name ``denselayerN.norm.1``, its modules ``norm1``: renamed as its builder does."""
    ref = tvm.densenet121().state_dict()
    # as the published file: the old module names, and no num_batches_tracked (older than the counter)
    legacy = {k.replace(".norm1.", ".norm.1.").replace(".conv1.", ".conv.1.").replace(".norm2.", ".norm.2.")
              .replace(".conv2.", ".conv.2.") if "denselayer" in k else k: v for k, v in ref.items()
              if not k.endswith("num_batches_tracked")}
    assert legacy.keys() != ref.keys()
    place(tvm.DenseNet121_Weights.IMAGENET1K_V1, legacy)
    model = create_model("densenet121", num_classes=4, weights="imagenet")
    key = "features.denseblock1.denselayer1.norm1.weight"
    assert torch.equal(model.state_dict()[key], ref[key])
    report = load_weights(create_model("densenet121", num_classes=4), "imagenet", "densenet121")
    assert report["unexpected"] == [] and report["mismatched"] == ["classifier.bias", "classifier.weight"]


def test_the_input_spec_takes_the_weights_normalisation(hub: Path) -> None:
    from edgekit.data import load_data
    from edgekit.training.config import TrainConfig
    from edgekit.training.trainer import model_inputs

    bundle, cfg = load_data("digits"), TrainConfig(input_size=32)
    _, plain = model_inputs("efficientnet_v2_l", bundle, cfg)
    assert plain["mean"] == [0.485, 0.456, 0.406]
    for name, mean, std in [("EfficientNet_V2_L_Weights.IMAGENET1K_V1", [0.5] * 3, [0.5] * 3),
                            ("VGG16_Weights.IMAGENET1K_FEATURES", [0.48235, 0.45882, 0.40784], [1 / 255] * 3)]:
        enum = tvm.get_weight(name)
        cache_file(enum).parent.mkdir(parents=True, exist_ok=True)
        cache_file(enum).write_bytes(b"")  # resolving reads no bytes; only its presence counts offline
        arch = "efficientnet_v2_l" if name.startswith("Eff") else "vgg16"
        _, spec = model_inputs(arch, bundle, cfg, weights=resolve_weights(name, arch))
        assert spec["mean"] == pytest.approx(mean) and spec["std"] == pytest.approx(std)


@pytest.mark.parametrize("weights,arch,text", [
    ("MobileNet_V2_Weights.IMAGENET1K_V2", "resnet18", "are not weights of resnet18; use imagenet or one of "
                                                       "ResNet18_Weights.IMAGENET1K_V1"),
    ("ResNet18_Weights.IMAGENET1K_V1", "tsm_mobilenet_v2", "not weights of tsm_mobilenet_v2's backbone mobilenet_v2"),
    ("ResNet18_Weights.IMAGENET1K_V9", "resnet18", "unknown torchvision weights 'ResNet18_Weights.IMAGENET1K_V9'; "
                                                   "resnet18 takes imagenet or one of ResNet18_Weights.IMAGENET1K_V1"),
    ("NoSuch_Weights.DEFAULT", "resnet18", "unknown torchvision weights"),
    ("imagenet", "compact_cnn", "compact_cnn has no torchvision weights"),
    ("imagenet", "tsm_compact_cnn", "tsm_compact_cnn has no torchvision weights"),
    ("imagenett", "resnet18", "weights file not found: imagenett (a torchvision weights name is imagenet"),
])
def test_bad_names_are_one_line(hub: Path, weights: str, arch: str, text: str) -> None:
    for call in (lambda: resolve_weights(weights, arch), lambda: create_model(arch, num_classes=3, weights=weights)):
        with pytest.raises(EdgekitError) as err:
            call()
        assert text in str(err.value) and "\n" not in str(err.value), str(err.value)
    assert not hub.exists()  # nothing was fetched or created


def test_a_name_needs_the_architecture() -> None:
    with pytest.raises(EdgekitError, match="say for which architecture"):
        load_weights(create_model("resnet18", num_classes=3), "imagenet")


def _train_cli(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgekit", "train", "--arch", "resnet18", "--data", DATA,
                           "--epochs", "1", "--precise-bn", "0", "--weights", "imagenet", "-o", str(tmp_path / "m.ckpt")],
                          capture_output=True, text=True, timeout=300, env=env)


def _one_line(res: subprocess.CompletedProcess) -> str:
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert res.returncode == 2 and len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    return lines[0]


def test_offline_and_uncached_names_the_cache_file_and_url(tmp_path: Path) -> None:
    home = tmp_path / "torch"
    env = {**os.environ, "TORCH_HOME": str(home), OFFLINE_ENV: "1"}
    line = _one_line(_train_cli(tmp_path, env))
    url = tvm.ResNet18_Weights.IMAGENET1K_V1.url
    assert f"no {home}/hub/checkpoints/resnet18-f37072fd.pth ({OFFLINE_ENV} is set, so no download was tried); " \
           f"fetch {url} into that file" in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no checkpoint, no metrics, no cache folder


def test_a_failed_download_names_the_cache_file_and_url(tmp_path: Path) -> None:
    """Downloads on: torch hub tries, through a proxy on 127.0.0.1 that closes every connection."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    server.settimeout(60)
    seen: list[int] = []

    def refuse() -> None:
        try:
            while len(seen) < 4:
                conn, _ = server.accept()
                seen.append(1)
                conn.close()
        except OSError:
            pass

    thread = threading.Thread(target=refuse, daemon=True)
    thread.start()
    proxy = f"http://127.0.0.1:{server.getsockname()[1]}"
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("no_proxy", "http_proxy", "https_proxy",
                                                                    "all_proxy", OFFLINE_ENV.lower())}
    env.update(TORCH_HOME=str(tmp_path / "torch"), https_proxy=proxy, HTTPS_PROXY=proxy)
    try:
        line = _one_line(_train_cli(tmp_path, env))
    finally:
        server.close()
        thread.join(5)
    assert seen, "the download did not go to the loopback proxy"
    cache = tmp_path / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    assert line.startswith("edgekit: error: cannot download torchvision weights ResNet18_Weights.IMAGENET1K_V1 (")
    assert f"the torch hub cache has no {cache}: fetch {tvm.ResNet18_Weights.IMAGENET1K_V1.url} into that file" \
        in line, line
    assert not cache.exists() and not (tmp_path / "m.ckpt").exists()
