"""The limited-data recipe's expanded set keeps labels: per-dataset policies, overrides, errors."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from edgekit.compress.expansion import PRESETS, Expansion, parse_expansion, policy_for
from edgekit.compress.recovery import ExpandedSet, expansion_for, limited_data
from edgekit.data import load_data, make_input_spec
from edgekit.errors import EdgekitError


def _bar_angle(img: Image.Image) -> float:
    """Orientation in degrees (-90..90] of the bright mass's principal axis (second moments)."""
    a = np.asarray(img.convert("L"), np.float64)
    a = np.where(a > 128, a, 0)
    ys, xs = np.nonzero(a)
    w = a[ys, xs]
    x, y = xs - np.average(xs, weights=w), ys - np.average(ys, weights=w)
    cxx, cyy, cxy = np.average(x * x, weights=w), np.average(y * y, weights=w), np.average(x * y, weights=w)
    return math.degrees(0.5 * math.atan2(2 * cxy, cxx - cyy))


def _bar() -> Image.Image:
    img = np.zeros((32, 32), np.uint8)
    img[15:17, 6:26] = 255
    return Image.fromarray(img)


def test_digits_policy_never_rotates_beyond_its_range_or_shuffles() -> None:
    policy = policy_for("digits")
    assert policy.name == "digits" and policy.rotate == 15
    assert not any(op.startswith("shuffle") for op in policy.ops()) and "flip" not in policy.ops()
    v = policy.versions.index("rotate")
    angles = [_bar_angle(policy.apply(_bar(), v, np.random.default_rng(s))) for s in range(60)]
    assert max(abs(a) for a in angles) <= 15 + 1.5  # the measurement itself is good to ~1 degree
    assert max(abs(a) for a in angles) > 8  # it does rotate
    paper = PRESETS["paper"]  # the check can fail: the paper's full turn leaves the range
    turned = [_bar_angle(paper.apply(_bar(), paper.versions.index("rotate"), np.random.default_rng(s)))
              for s in range(20)]
    assert max(abs(a) for a in turned) > 30


def _features(images: list[Image.Image]) -> np.ndarray:
    x = np.stack([np.asarray(i.convert("L").resize((16, 16), Image.BILINEAR), np.float32).ravel() for i in images])
    x -= x.mean(1, keepdims=True)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_expanded_digits_keep_their_label() -> None:
    """An independent nearest-centroid classifier (fit on original training digits) still reads
    the digits' expanded versions as their label, and reads the paper's versions far worse."""
    bundle = load_data("digits")
    train = [bundle.train[i] for i in range(len(bundle.train))]
    x = _features([img.resize((32, 32), Image.BILINEAR) for img, _ in train])
    y = np.array([t for _, t in train])
    centroids = np.stack([x[y == k].mean(0) for k in range(10)])
    val = [bundle.val[i] for i in range(100)]

    def accuracy(policy: Expansion) -> tuple[float, float]:
        ex = ExpandedSet(val, (32, 32), lambda img: img, seed=0, policy=policy)
        assert all(int(ex.targets[i]) == int(val[i // len(policy)][1]) for i in range(len(ex)))
        pred = (_features([ex.image(i) for i in range(len(ex))]) @ centroids.T).argmax(1)
        right = pred == ex.targets.numpy()
        return float(right[::len(policy)].mean()), float(right.mean())  # originals, all versions

    original, ours = accuracy(expansion_for(bundle))
    _, paper = accuracy(PRESETS["paper"])
    assert original > 0.8
    assert ours >= 0.85 * original, (ours, original)
    assert paper <= 0.6 * original, (paper, original)


def test_policy_by_data_kind_and_declared() -> None:
    assert policy_for("synthetic:classes=8").name == "shapes"
    assert policy_for("imagefolder:/x").name == "paper"
    assert policy_for("ordinal:n=10").ops().isdisjoint({"crop", "cutout", "shuffle2"})
    assert policy_for("imagefolder:/x", {"expansion": "digits:rotate=5"}).rotate == 5
    assert "flip" not in policy_for("synthetic", flip_ok=False).ops()


def test_override() -> None:
    bundle = load_data("digits")
    assert expansion_for(bundle, "paper").versions == PRESETS["paper"].versions
    p = expansion_for(bundle, "rotate=5,versions=original/rotate/rotate+crop")
    assert (p.rotate, p.versions, p.crop) == (5, ("original", "rotate", "rotate+crop"), 0.8)
    assert parse_expansion("shapes:cutout=0.1-0.2,fill=black").cutout == (0.1, 0.2)
    assert expansion_for(bundle, "shapes").ops().isdisjoint({"flip"})  # a mirror changes a digit
    custom = Expansion(("original", "shuffle3"), name="mine")
    assert expansion_for(bundle, custom) is custom


@pytest.mark.parametrize("text, match", [
    ("rotate=400", "rotate"), ("rotate=nan", "rotate"), ("crop=0", "crop"), ("cutout=0.5-0.2", "cutout"),
    ("versions=original/shuffle9", "unknown expansion operation"), ("spin=3", "unknown expansion option"),
    ("birds", "unknown expansion preset"), ("rotate=abc", "number"), ("rotate", "unknown expansion preset"),
    ("digits:rotate", "malformed"), ("", "empty"), ("fill=grey", "fill"),
])
def test_bad_expansion_is_a_one_line_error(text: str, match: str) -> None:
    with pytest.raises(EdgekitError, match=match) as err:
        parse_expansion(text, "digits")
    assert "\n" not in str(err.value)


def _tiny() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(4, 4))


def test_limited_data_uses_the_expansion_and_label_lr() -> None:
    bundle = load_data("synthetic:classes=4,n=40")
    spec = make_input_spec(16)
    torch.manual_seed(0)
    teacher, student = _tiny().eval(), _tiny()
    out = limited_data(student, teacher, bundle, spec, epochs=1, refine_epochs=1, batch_size=8, progress=False,
                       expansion="versions=original/flip", label_lr=0)
    assert out["expanded_images"] == 2 * len(bundle.train) and out["label_lr"] == 0
    assert out["expansion"].startswith("shapes+versions: original, flip")
    out = limited_data(student, teacher, bundle, spec, epochs=1, refine_epochs=1, batch_size=8, progress=False,
                       lr=0.02)  # the measured defaults: no mixup, fixed logits, stage 3 at lr / 10
    assert (out["mixup"], out["label_lr"], out["refine_lr"]) == (False, 0.0, pytest.approx(0.002))
    assert out["expansion"].startswith("shapes:")
    with pytest.raises(EdgekitError, match="label_lr"):
        limited_data(student, teacher, bundle, spec, epochs=1, progress=False, label_lr=-1)


def test_label_lr_zero_keeps_the_teacher_table() -> None:
    from edgekit.compress.recovery import refine_loss

    torch.manual_seed(0)
    model, table = nn.Linear(4, 3), torch.zeros(5, 3)
    targets = torch.tensor([0, 1, 2, 0, 1])
    x, idx = torch.randn(2, 4), torch.tensor([1, 3])
    out = refine_loss(table, targets, label_lr=0)(model, x, idx, 0)
    assert table.abs().sum() == 0 and out.loss.requires_grad
    refine_loss(table, targets, label_lr=1)(model, x, idx, 0)
    assert table[[1, 3]].abs().sum() > 0  # the check can fail: refinement does move it


def test_prune_passes_the_limited_data_options_and_checks_them_first(synthetic_ckpt, tmp_path) -> None:
    from edgekit.compress.prune import prune

    data = "synthetic:classes=4,n=160"
    ck = prune(synthetic_ckpt, data, tmp_path / "p.pt", target="macs=0.7", proxy_size=8, finetune_epochs=1,
               refine_epochs=1, recipe="limited-data", train_fraction=0.5, expansion="shapes:rotate=5",
               label_lr=0.5, refine_lr=0.002, progress=False)
    used = ck.metrics["limited_data"]
    assert used["label_lr"] == 0.5 and used["refine_lr"] == 0.002 and used["mixup"] is False
    assert "5" in str(used["expansion"]) and used["expanded_images"] > 0
    with pytest.raises(EdgekitError, match="unknown expansion preset"):
        prune(synthetic_ckpt, data, tmp_path / "q.pt", recipe="limited-data", expansion="cubist", proxy_size=8,
              progress=False)
    assert not (tmp_path / "q.pt").exists()
