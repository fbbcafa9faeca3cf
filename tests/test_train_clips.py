"""Training clip models (TSN, TSM) on clip data with the image trainer: the checkpoint records
clips (task, frames, shift) so every later stage rebuilds and samples them the same way; the
combinations that mean nothing are one-line errors; and (slow) TSM learns what the built-in
gestures need, temporal order, where TSN stays at chance within a direction pair."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from edgekit.checkpoint import load_checkpoint
from edgekit.cli import main
from edgekit.errors import EdgekitError
from edgekit.training.config import TrainConfig


def test_clip_checkpoint_records_frames_shift_and_task(clip_ckpt: Path) -> None:
    ckpt = load_checkpoint(clip_ckpt)
    assert ckpt.task == "clip_classify" and ckpt.arch == "tsm_compact_cnn"
    assert ckpt.arch_kwargs["frames"] == 4 and ckpt.arch_kwargs["shift"] == "causal"
    assert ckpt.input_spec["kind"] == "clip" and ckpt.input_spec["frames"] == 4
    assert ckpt.input_spec["shape"][0] == 4 and len(ckpt.labels) == 11 and ckpt.labels[0] == "swipe_left"
    assert 0 <= ckpt.metrics["val_top1"] <= 100
    # the rebuilt model takes what the checkpoint's own transform makes of a validation clip
    bundle = ckpt.load_data()
    clip, label = bundle.val[0]
    x = ckpt.eval_transform(clip)
    assert tuple(x.shape) == (4, 3, 32, 32)
    with torch.no_grad():
        out = ckpt.model(x[None])
    assert out.shape == (1, 11) and torch.isfinite(out).all()
    # the split is the checkpoint's: reloading gives the same validation clips
    again = ckpt.load_data()
    assert torch.equal(ckpt.eval_transform(again.val[0][0]), x) and again.val[0][1] == label


def test_frames_default_to_the_datas_suggestion(tmp_path: Path) -> None:
    from edgekit.data import load_data
    from edgekit.training.trainer import model_inputs

    bundle = load_data("gestures:n=22,frames=6")
    kwargs, spec = model_inputs("tsn_compact_cnn", bundle, TrainConfig())
    assert kwargs["frames"] == bundle.info["frames"] == 6 and spec["frames"] == 6 and "shift" not in kwargs
    kwargs, spec = model_inputs("tsm_compact_cnn", bundle, TrainConfig(frames=3, shift="causal"))
    assert kwargs["frames"] == 3 and kwargs["shift"] == "causal" and spec["shape"][:2] == [3, 3]


@pytest.mark.parametrize("args, text", [
    (["--arch", "tsm_compact_cnn", "--data", "digits"], "holds images"),
    (["--arch", "compact_cnn", "--data", "gestures:n=22"], "tsm_compact_cnn"),
    (["--arch", "tsn_compact_cnn", "--data", "gestures:n=22", "--shift", "causal"], "--shift"),
    (["--arch", "compact_cnn", "--data", "digits", "--frames", "4"], "--frames"),
    (["--arch", "tsm_online_compact_cnn", "--data", "gestures:n=22"], "--shift causal"),
    (["--arch", "tsm_compact_cnn", "--data", "gestures:n=22", "--frames", "0"], "--frames"),
    (["--arch", "tsm_compact_cnn", "--data", "gestures:n=22", "--shift", "forward"], "--shift"),
])
def test_meaningless_combinations_are_one_line(args: list[str], text: str, tmp_path: Path) -> None:
    out = tmp_path / "m.pt"
    res = CliRunner().invoke(main, ["train", *args, "-o", str(out), "--epochs", "1"])
    assert res.exit_code != 0 and not out.exists()
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in res.stderr and text in lines[0], res.stderr


def test_library_rejects_bad_clip_options() -> None:
    for bad in (dict(frames=0), dict(frames=-2), dict(shift="both")):
        with pytest.raises(EdgekitError):
            TrainConfig(**bad)


@pytest.mark.slow
def test_tsm_learns_direction_where_tsn_cannot(tmp_path: Path) -> None:
    """One direction pair (swipe left / right): TSN averages frames and stays near chance,
    a causal TSM sees the order and separates them (validation clips it never trained on)."""
    from edgekit.training.trainer import train

    data = "gestures:classes=swipe_left+swipe_right,n=400,size=32,frames=8"
    opts = dict(epochs=8, batch_size=32, lr=0.05, frames=8, precise_bn=4, progress=False)
    tsn = train("tsn_compact_cnn", data, tmp_path / "tsn.pt", **opts).metrics["val_top1"]
    tsm = train("tsm_compact_cnn", data, tmp_path / "tsm.pt", shift="causal", **opts).metrics["val_top1"]
    assert tsn < 65 and tsm > 85, (tsn, tsm)


def test_clip_batches_mix_like_images(tmp_path: Path) -> None:
    """mixup / CutMix (and the mWh schedule) act on (N, T, C, H, W) batches: the same box cut
    from every frame of the partner clip, labels mixed per clip."""
    import torch

    from edgekit.training.mix import Mixer

    x = torch.arange(4 * 3 * 3 * 8 * 8, dtype=torch.float32).reshape(4, 3, 3, 8, 8)
    y = torch.tensor([0, 1, 2, 3])
    mixed, ya, yb, lam = Mixer("cutmix", 1.0, seed=0).mix(x, y)
    changed = (mixed != x).any(dim=2)  # (N, T, H, W): where a clip's frames took the partner's pixels
    assert mixed.shape == x.shape and 0 < lam < 1 and changed.any()
    assert torch.equal(changed, changed[:, :1].expand_as(changed))  # one box for every frame of a clip
    out = tmp_path / "mwh.pt"
    from edgekit.training.trainer import train

    ckpt = train("tsm_compact_cnn", "gestures:n=44", out, epochs=2, batch_size=16, frames=3, shift="causal",
                 mix="mwh-cutmix", precise_bn=1, progress=False)
    assert ckpt.task == "clip_classify" and 0 <= ckpt.metrics["val_top1"] <= 100
