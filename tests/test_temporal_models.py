"""Video nets (edgekit.models.temporal, edgekit.models.shift): TSN, offline TSM, online TSM.

The online model run frame by frame with its states fed back reproduces the causal
offline model's per-frame logits for every backbone; the checks use random weights and
BatchNorm statistics far from the identity, so a misplaced shift or state would show.
"""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from edgekit import create_model
from edgekit.errors import EdgekitError
from edgekit.models.shift import shift_step, temporal_shift
from edgekit.models.temporal import ClipNet, OnlineTSM, online_arch, to_online
from edgekit.registry import get_entry

BACKBONES = ("mobilenet_v2", "resnet18", "compact_cnn")
N, T, SIZE, CLASSES = 2, 4, 32, 5


def randomise(model: nn.Module, seed: int = 0) -> nn.Module:
    """BN statistics estimated on random clips, then perturbed, random BN affine terms and a
    classifier with O(1) outputs; in eval mode. Keeps the input's signal alive through deep
    randomly initialised nets (it otherwise fades and every frame gets the same logits)."""
    g = torch.Generator().manual_seed(seed)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        for m in bns:
            m.reset_running_stats()
            m.momentum = None  # cumulative average
        model.train()
        x = torch.randn(2, T, 3, SIZE, SIZE, generator=g)
        model(x) if isinstance(model, ClipNet) else model(x.flatten(0, 1))
        for m in bns:
            m.momentum = 0.1
            m.running_mean.add_(torch.randn(m.running_mean.shape, generator=g) * 0.2 * m.running_var.sqrt())
            m.running_var.mul_(torch.empty(m.running_var.shape).uniform_(0.7, 1.4, generator=g))
            m.weight.uniform_(0.5, 1.5, generator=g)
            m.bias.normal_(0.0, 0.2, generator=g)
        for m in model.modules():
            if isinstance(m, nn.Linear):
                m.weight.normal_(0.0, 1.0 / math.sqrt(m.in_features), generator=g)
                m.bias.normal_(0.0, 0.1, generator=g)
    return model.eval()


def build(arch: str, seed: int = 0, **kw) -> nn.Module:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return create_model(arch, num_classes=CLASSES, frames=T, small_input=True, **kw)


def clip(seed: int = 1, frames: int = T) -> torch.Tensor:
    return torch.randn(N, frames, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def stream(online: OnlineTSM, x: torch.Tensor, states: list[torch.Tensor] | None = None,
           feed_back: bool = True) -> torch.Tensor:
    """Per-frame logits ``(N, T, classes)`` of ``online`` run frame by frame over clip ``x``."""
    states = list(states or [])
    logits = []
    for t in range(x.shape[1]):
        out = online(x[:, t], *states)
        logits.append(out[0])
        if feed_back:
            states = list(out[1:])
    return torch.stack(logits, 1)


@pytest.mark.parametrize("backbone", (*BACKBONES, "resnet50"))  # resnet50: Bottleneck blocks
def test_online_reproduces_causal_tsm_frame_by_frame(backbone: str) -> None:
    offline = randomise(build(f"tsm_{backbone}", shift="causal"))
    online = build(f"tsm_online_{backbone}").eval()
    online.load_state_dict(offline.state_dict(), strict=True)  # same keys, same weights
    x = clip()
    with torch.no_grad():
        ref = offline.frame_logits(x)
        assert torch.allclose(offline(x), ref.mean(1))
    assert ref.shape == (N, T, CLASSES) and ref.abs().mean() > 0.1  # non-trivial logits
    got = stream(online, x, online.initial_states(N, SIZE, SIZE))
    assert (got - ref).abs().max().item() <= 1e-4
    assert torch.equal(stream(online, x), got)  # no states on the first call: zeros
    # the states carry the past: zero states every frame match frame 0 only
    memoryless = stream(online, x, feed_back=False)
    assert torch.allclose(memoryless[:, 0], ref[:, 0], atol=1e-5)
    assert (memoryless[:, 1:] - ref[:, 1:]).abs().max() > 1e-2


@pytest.mark.parametrize("backbone", ("mobilenet_v2", "compact_cnn"))
def test_a_bidirectional_tsm_does_not_stream(backbone: str) -> None:
    offline = randomise(build(f"tsm_{backbone}"))
    assert offline.shift == "bidirectional"  # the offline default
    online = build(f"tsm_online_{backbone}").eval()
    online.load_state_dict(offline.state_dict(), strict=True)
    x = clip()
    with torch.no_grad():
        ref = offline.frame_logits(x)
    assert (stream(online, x) - ref).abs().max() > 1e-2
    with pytest.raises(EdgekitError, match="cannot stream"):
        to_online(offline)
    with pytest.raises(EdgekitError, match="cannot stream"):
        build(f"tsm_online_{backbone}", shift="bidirectional")


def test_shift_moves_one_eighth_each_way_with_zero_padding() -> None:
    t, c = 5, 16  # fold = 2
    x = (torch.arange(t)[:, None] * 100 + torch.arange(c)[None, :] + 1).float().reshape(1, t, c, 1, 1)
    x = x.expand(2, t, c, 2, 3).clone()
    bi = temporal_shift(x, mode="bidirectional")
    ca = temporal_shift(x, mode="causal")
    assert torch.equal(bi[:, 0, :2], torch.zeros_like(bi[:, 0, :2]))      # no past at the clip start
    assert torch.equal(bi[:, 1:, :2], x[:, :-1, :2])                      # first 1/8 from the past
    assert torch.equal(bi[:, :-1, 2:4], x[:, 1:, 2:4])                    # next 1/8 from the future
    assert torch.equal(bi[:, -1, 2:4], torch.zeros_like(bi[:, -1, 2:4]))  # no future at the clip end
    assert torch.equal(bi[:, :, 4:], x[:, :, 4:])
    assert torch.equal(ca[:, :, :2], bi[:, :, :2]) and torch.equal(ca[:, :, 2:], x[:, :, 2:])
    # (N*T, C, H, W) with frames=T is the same operation
    assert torch.equal(temporal_shift(x.flatten(0, 1), frames=t, mode="causal"), ca.flatten(0, 1))
    # the online step reproduces the causal shift frame by frame
    state = None
    for i in range(t):
        shifted, state = shift_step(x[:, i], state)
        assert torch.equal(shifted, ca[:, i]) and state.dim() == 4 and state.shape[1] == 2
    with pytest.raises(EdgekitError, match="frames=T"):
        temporal_shift(x.flatten(0, 1), frames=3)
    with pytest.raises(EdgekitError, match="bidirectional' or 'causal"):
        temporal_shift(x, mode="forward")


@pytest.mark.parametrize("backbone", ("mobilenet_v2", "resnet18"))
def test_causal_never_reads_the_future(backbone: str) -> None:
    x = clip()
    later = x.clone()
    later[:, 2] += torch.randn_like(later[:, 2])  # perturb frame 2
    for shift in ("causal", "bidirectional"):
        model = randomise(build(f"tsm_{backbone}", shift=shift))
        with torch.no_grad():
            a, b = model.frame_logits(x), model.frame_logits(later)
        if shift == "causal":  # frames 0 and 1 cannot see frame 2
            assert torch.equal(a[:, :2], b[:, :2])
        else:  # frame 1 reads frame 2 directly (and frame 0 through two stacked shifts)
            assert (a[:, 1] - b[:, 1]).abs().max() > 1e-3
        assert (a[:, 2:] - b[:, 2:]).abs().max() > 1e-3


def test_tsn_is_order_blind_and_tsm_is_not() -> None:
    x = clip()
    reverse = x.flip(1)
    tsn = randomise(build("tsn_compact_cnn"))
    tsm = randomise(build("tsm_compact_cnn"))
    with torch.no_grad():
        assert torch.allclose(tsn(x), tsn(reverse), atol=1e-5)
        assert (tsm(x) - tsm(reverse)).abs().max() > 1e-3
        assert tsn(x).shape == (N, CLASSES)
        # any clip length; a clip model wants (N, T, C, H, W)
        assert tsm.frame_logits(clip(frames=6)).shape == (N, 6, CLASSES)
        with pytest.raises(EdgekitError, match=r"\(N, T, C, H, W\)"):
            tsm(x[:, 0])


def test_state_shapes_mobilenet_v2_at_224() -> None:
    online = create_model("tsm_online_mobilenet_v2", num_classes=27)
    shapes = online.state_shapes(224, 224)
    assert shapes == [(1, 3, 56, 56), (1, 4, 28, 28), (1, 4, 28, 28), (1, 8, 14, 14), (1, 8, 14, 14),
                      (1, 8, 14, 14), (1, 12, 14, 14), (1, 12, 14, 14), (1, 20, 7, 7), (1, 20, 7, 7)]
    assert online.num_states == 10 and all(len(s) == 4 for s in shapes)
    assert sum(math.prod(s) for s in shapes) == 27048  # 106 KB in fp32
    states = online.initial_states(2, 224, 224)
    assert [tuple(s.shape) for s in states] == [(2, *s[1:]) for s in shapes]
    assert all(s.dim() == 4 and not s.any() for s in states)
    assert build("tsm_online_resnet18").num_states == 8  # every BasicBlock
    assert build("tsm_online_compact_cnn").num_states == 3  # the blocks with an identity shortcut
    with pytest.raises(EdgekitError, match="takes 3 state tensors, got 1"):
        build("tsm_online_compact_cnn")(torch.zeros(1, 3, SIZE, SIZE), torch.zeros(1, 8, 16, 16))


def test_a_stale_state_is_forgotten_after_one_frame_per_state() -> None:
    """The reset rule the docs give: the output at frame t depends on frames t - len(states) .. t only."""
    online = randomise(build("tsm_online_compact_cnn"))
    x = clip(frames=online.receptive_frames)
    stale = [torch.randn_like(s) for s in online.initial_states(N, SIZE, SIZE)]
    fresh, dirty = stream(online, x), stream(online, x, stale)
    assert (fresh[:, -2] - dirty[:, -2]).abs().max() > 1e-4
    assert torch.allclose(fresh[:, -1], dirty[:, -1], atol=1e-6)


def test_to_online_copies_a_causal_tsm() -> None:
    offline = randomise(build("tsm_resnet18", shift="causal"))
    online = to_online(offline).eval()
    assert online.edgekit_layout == offline.edgekit_layout and online.frames == T
    x = clip()
    with torch.no_grad():
        assert (stream(online, x) - offline.frame_logits(x)).abs().max() <= 1e-4
    assert online_arch("tsm_mobilenet_v2") == "tsm_online_mobilenet_v2"
    with pytest.raises(EdgekitError, match="does not stream"):
        online_arch("tsn_mobilenet_v2")


def test_registry_names_layouts_and_errors() -> None:
    for backbone in BACKBONES:
        for prefix in ("tsn_", "tsm_", "tsm_online_"):
            entry = get_entry(prefix + backbone)
            assert entry.default_input == get_entry(backbone).default_input
            assert entry.layout.classifier == "backbone." + get_entry(backbone).layout.classifier
    model = create_model("tsm_resnet18", num_classes=3, frames=8, shift="causal", small_input=True)
    assert isinstance(model, ClipNet) and model.frames == 8 and model.shift == "causal"
    assert model.backbone.conv1.stride == (1, 1) and isinstance(model.backbone.maxpool, nn.Identity)
    assert model.get_submodule(model.edgekit_layout.classifier).out_features == 3
    wide = create_model("tsm_compact_cnn", num_classes=3, width_mult=0.5)  # backbone kwargs pass through
    assert wide.backbone.classifier.in_features == 128
    with pytest.raises(EdgekitError, match="supports"):
        create_model("tsm_vgg11", num_classes=3)
    assert create_model("tsn_vgg11", num_classes=3).frames == 8  # TSN takes any 2D backbone
    with pytest.raises(EdgekitError, match="TSN has no temporal shift"):
        create_model("tsn_compact_cnn", shift="causal")
    with pytest.raises(EdgekitError, match="did you mean mobilenet_v2"):
        get_entry("tsm_mobilenet_v9")
    with pytest.raises(EdgekitError, match="feature vectors"):
        get_entry("tsn_nfl_tabular")
    with pytest.raises(EdgekitError, match="<backbone>"):
        get_entry("tsm_tsn_resnet18")
    with pytest.raises(EdgekitError, match="bidirectional' or 'causal"):
        create_model("tsm_compact_cnn", shift="both")
    with pytest.raises(EdgekitError, match="frames must be a positive integer"):
        create_model("tsn_compact_cnn", frames=0)


def test_trains_in_train_mode() -> None:
    model = build("tsm_compact_cnn").train()
    loss = nn.functional.cross_entropy(model(clip()), torch.tensor([0, 1]))
    loss.backward()
    assert model.backbone.features[0].weight.grad.abs().sum() > 0


def test_2d_weights_load_into_the_backbone(tmp_path: Path) -> None:
    """A 2D image checkpoint or torchvision state dict seeds the backbone: TSN's per-frame
    logits are then the 2D model's; a clip model's own state dict loads as it is."""
    from edgekit.checkpoint import save_checkpoint

    x = clip()
    frames = x.flatten(0, 1)
    # torchvision state dict (ImageNet-shaped head: skipped for a 5-class clip model)
    image = randomise(create_model("resnet18", num_classes=1000, small_input=True))
    torch.save(image.state_dict(), tmp_path / "resnet18.pth")
    tsm = build("tsm_resnet18", weights=tmp_path / "resnet18.pth")
    assert torch.equal(tsm.backbone.layer1[0].conv1.weight, image.layer1[0].conv1.weight)
    assert torch.equal(tsm.backbone.layer2[0].bn1.running_var, image.layer2[0].bn1.running_var)
    assert tsm.backbone.fc.out_features == CLASSES
    # an edgekit image checkpoint with the same head: TSN == the image model per frame
    image = randomise(create_model("compact_cnn", num_classes=CLASSES))
    save_checkpoint(tmp_path / "image.ckpt", image, arch="compact_cnn", arch_kwargs={"num_classes": CLASSES})
    tsn = build("tsn_compact_cnn").eval()
    with torch.no_grad():
        before = tsn.frame_logits(x)
        tsn = build("tsn_compact_cnn", weights=tmp_path / "image.ckpt").eval()
        want = image(frames).reshape(N, T, CLASSES)
        assert torch.allclose(tsn.frame_logits(x), want, atol=1e-5)
        assert not torch.allclose(before, want, atol=1e-3)
    # a causal TSM checkpoint seeds an online model through weights=PATH as well
    offline = randomise(build("tsm_compact_cnn", shift="causal"))
    torch.save(offline.state_dict(), tmp_path / "tsm.pth")
    online = build("tsm_online_compact_cnn", weights=tmp_path / "tsm.pth").eval()
    with torch.no_grad():
        assert (stream(online, x) - offline.frame_logits(x)).abs().max() <= 1e-4


def test_the_shift_costs_no_parameters_or_multiply_adds() -> None:
    from edgekit.registry import build_for_shape, count_macs, count_params

    image = build_for_shape("mobilenet_v2", num_classes=27)
    online = build_for_shape("tsm_online_mobilenet_v2", num_classes=27)  # meta device: shapes only
    clip_model = build_for_shape("tsm_mobilenet_v2", num_classes=27)
    per_frame = count_macs(image, (1, 3, 160, 160))
    assert count_macs(online, (1, 3, 160, 160)) == per_frame
    assert count_macs(clip_model, (1, T, 3, 160, 160)) == T * per_frame
    assert count_params(online) == count_params(clip_model) == count_params(image)


def test_a_causal_checkpoint_rebuilds_its_online_model(tmp_path: Path) -> None:
    """The checkpoint contract: arch + kwargs rebuild the clip model; the same kwargs build the
    online model, which takes the checkpoint's state dict strictly."""
    from edgekit.checkpoint import load_checkpoint, save_checkpoint
    from edgekit.registry import load_state

    kwargs = {"num_classes": CLASSES, "frames": T, "shift": "causal", "small_input": True}
    model = randomise(build("tsm_mobilenet_v2", shift="causal"))
    save_checkpoint(tmp_path / "tsm.ckpt", model, arch="tsm_mobilenet_v2", arch_kwargs=kwargs, task="clip_classify")
    ckpt = load_checkpoint(tmp_path / "tsm.ckpt")
    online = create_model(online_arch(ckpt.arch), **ckpt.arch_kwargs).eval()
    load_state(online, ckpt.state_dict, strict=True)
    x = clip()
    with torch.no_grad():
        assert torch.equal(ckpt.model.eval().frame_logits(x), model.frame_logits(x))
        assert (stream(online, x) - model.frame_logits(x)).abs().max() <= 1e-4
