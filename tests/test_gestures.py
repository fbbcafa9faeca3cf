"""The built-in gesture clips: determinism, classes, direction semantics, and the claim that
each direction pair needs temporal order (order-blind probes at chance, order-aware not)."""
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from edgekit.data import load_data
from edgekit.data.gestures import GESTURES, PAIRS, gestures, select_classes
from edgekit.errors import EdgekitError


def test_shapes_dtype_all_classes_and_determinism():
    a = gestures(n=330, size=32, frames=16, seed=3)
    assert a.clips.shape == (330, 16, 32, 32, 3) and a.clips.dtype == np.uint8
    assert a.labels == list(GESTURES) and len(GESTURES) == 11
    assert np.bincount(a.targets).tolist() == [30] * 11
    b = gestures(n=330, size=32, frames=16, seed=3)
    assert np.array_equal(a.clips, b.clips) and a.targets == b.targets
    assert not np.array_equal(a.clips, gestures(n=330, size=32, frames=16, seed=4).clips)
    # frames really change over time (moving background and hand), and clips are not blank
    assert np.abs(np.diff(a.clips.astype(np.int16), axis=1)).mean() > 1
    assert a.clips.std() > 20


def test_class_selection_and_streams_per_class():
    assert select_classes(2) == ["swipe_left", "swipe_right"]
    assert select_classes("3") == ["swipe_left", "swipe_right", "swipe_up"]
    sub = gestures("pull+no_gesture", n=8, size=16, frames=8, seed=1)
    assert sub.labels == ["pull", "no_gesture"] and sub.targets == [0, 1] * 4
    full = gestures(n=44, size=16, frames=8, seed=1)  # 4 clips per class, like the subset
    pull = full.clips[np.array(full.targets) == GESTURES.index("pull")]
    assert np.array_equal(sub.clips[0::2], pull)  # a class's clips do not depend on the others
    for bad in ("swipe_left+wave", "swipe_left", "1", "12", "swipe_up+swipe_up"):
        with pytest.raises(EdgekitError):
            select_classes(bad)
    with pytest.raises(EdgekitError):
        gestures(n=5)


def _hand(clips):
    """The hand's mask (bright skin colours; the background and distractors rarely match)."""
    c = clips.astype(np.int16)
    return (c[..., 0] >= 195) & (c[..., 1] >= 140) & (c[..., 2] >= 100) & (c[..., 0] - c[..., 2] >= 20)


def _centroid(mask, axis):
    """Per clip and frame, the mask's mean column ("x") or row ("y") in pixels."""
    profile = mask.sum(axis=-2 if axis == "x" else -1)
    grid = np.arange(profile.shape[-1])
    return (profile * grid).sum(-1) / np.maximum(profile.sum(-1), 1)


def test_directions_mean_what_they_say():
    g = gestures("swipe_left+swipe_right+swipe_up+swipe_down+push+pull", n=240, size=32, frames=16, seed=2)
    mask, y = _hand(g.clips), np.array(g.targets)
    for name, axis, sign in (("swipe_right", "x", 1), ("swipe_left", "x", -1), ("swipe_down", "y", 1),
                             ("swipe_up", "y", -1)):
        pos = _centroid(mask[y == g.labels.index(name)], axis)  # image y grows downwards
        assert sign * np.median(pos[:, -1] - pos[:, 0]) > 5, name
    area = mask.sum((2, 3))
    assert np.median(area[y == g.labels.index("pull")][:, -1] / area[y == g.labels.index("pull")][:, 0]) > 2
    assert np.median(area[y == g.labels.index("push")][:, 0] / area[y == g.labels.index("push")][:, -1]) > 2


def _features(clips):
    """Order-aware features from frame differences: brightness-constancy flow moments
    (sum over time of I_t times I_x, I_y, and the curl and divergence about the moving
    centre of motion and about the frame's centre), and order-blind ones: the mean frame
    (8x8 RGB) and the moments' magnitudes. Reversing a clip negates each moment, so
    |moment| is order-blind."""
    n, L, S = clips.shape[:3]
    gray = clips.astype(np.float32).mean(-1)
    grid = (np.arange(S) + 0.5) / S * 2 - 1
    X, Y = np.meshgrid(grid, grid)
    It = gray[:, 1:] - gray[:, :-1]
    Iy, Ix = np.gradient((gray[:, 1:] + gray[:, :-1]) / 2, axis=(2, 3))
    w = np.abs(It) / np.maximum(np.abs(It).sum((2, 3), keepdims=True), 1e-6)
    Xc, Yc = X - (w * X).sum((2, 3), keepdims=True), Y - (w * Y).sum((2, 3), keepdims=True)
    moments = np.stack([(It * Ix).sum((1, 2, 3)), (It * Iy).sum((1, 2, 3)),
                        (It * (Xc * Iy - Yc * Ix)).sum((1, 2, 3)), (It * (Xc * Ix + Yc * Iy)).sum((1, 2, 3)),
                        (It * (X * Iy - Y * Ix)).sum((1, 2, 3)), (It * (X * Ix + Y * Iy)).sum((1, 2, 3))], 1)
    k = S // 8
    mean_frame = clips.reshape(n, L, 8, k, 8, k, 3).astype(np.float32).mean((1, 3, 5)).reshape(n, -1)
    return moments, np.concatenate([mean_frame, np.abs(moments)], 1)


def _probe(features, targets):
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=1000))
    return float(cross_val_score(clf, features, targets, cv=4).mean())


@pytest.mark.parametrize("pair", PAIRS, ids=["+".join(p) for p in PAIRS])
def test_pairs_need_temporal_order(pair):
    g = gestures("+".join(pair), n=240, size=32, frames=16, seed=5)
    aware, blind = _features(g.clips)
    # the partner is built as the time reversal: its order-blind features are distributed
    # like the first class's, so an order-blind classifier stays near chance ...
    assert _probe(blind, g.targets) < 0.65
    # ... while one that sees the order of frames (their differences) tells them apart
    assert _probe(aware, g.targets) > 0.7


def test_order_blind_probe_is_not_blind_across_pairs():
    # the same order-blind features separate classes of different pairs (zoom scales the
    # whole scene, push/pull only the hand), so chance within pairs is about direction
    g = gestures("zoom_in+push", n=240, size=32, frames=16, seed=5)
    assert _probe(_features(g.clips)[1], g.targets) > 0.75


def test_load_data_gestures_bundle():
    b = load_data("gestures:n=220,size=24,frames=12,classes=4,gen_seed=1", seed=2)
    assert b.task == "clip_classify" and b.labels == list(GESTURES[:4]) and b.default_input == 24
    assert b.info["clip_length"] == 12 and b.info["frames"] == 8
    assert b.info["pairs"] == [["swipe_left", "swipe_right"], ["swipe_up", "swipe_down"]]
    assert len(b.train) + len(b.val) == 220 and np.bincount(b.val.targets).tolist() == [11] * 4
    clip, label = b.train[0]
    assert len(clip) == 12 and clip.read([0, 11]).shape == (2, 24, 24, 3)
    assert b.record == {"spec": b.spec, "val": 0.2, "seed": 2}
    again = load_data(b.record["spec"], seed=b.record["seed"], val=b.record["val"])
    assert again.val.indices == b.val.indices
    for bad in ("gestures:n=0", "gestures:classes=wave+swipe_left", "gestures:size=-3", "gestures:colour=red"):
        with pytest.raises(EdgekitError) as err:
            load_data(bad)
        assert "\n" not in str(err.value)
