"""Clip data: TSN segment sampling, the clip transforms (no flip), jester:PATH and
videofolder:PATH on real files written here (JPEGs with PIL, videos with PyAV)."""
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from edgekit.data import load_data, make_input_spec, with_frames
from edgekit.data.clips import (ArrayClip, ClipTransform, frame_spec, probe_video, segment_indices)
from edgekit.data.transforms import eval_transform, preprocessing, train_transform
from edgekit.errors import EdgekitError

# ---------------------------------------------------------------------------------------
# sampling


def test_segment_centres_in_evaluation():
    assert segment_indices(16, 8) == [1, 3, 5, 7, 9, 11, 13, 15]
    assert segment_indices(10, 4) == [1, 3, 6, 8]  # centres 1.25, 3.75, 6.25, 8.75
    assert segment_indices(8, 8) == list(range(8))


def test_random_offsets_stay_in_their_segment_in_training():
    gen = torch.Generator().manual_seed(0)
    draws = np.array([segment_indices(32, 4, train=True, generator=gen) for _ in range(400)])
    for k in range(4):
        assert draws[:, k].min() == 8 * k and draws[:, k].max() == 8 * k + 7  # all of segment k, nothing else
    assert len({tuple(d) for d in draws}) > 100


def test_temporal_jitter_moves_the_window_but_keeps_order():
    gen = torch.Generator().manual_seed(1)
    draws = np.array([segment_indices(32, 4, train=True, jitter=0.5, generator=gen) for _ in range(400)])
    assert (np.diff(draws, axis=1) >= 0).all() and draws.min() >= 0 and draws.max() <= 31
    # a window shorter than the clip: some draws leave their segment (none do without jitter)
    inside = (draws // 8 == np.arange(4)).all(1)
    assert 0 < inside.mean() < 1
    assert draws[:, 0].max() > 7


def test_short_clips_repeat_frames_in_order():
    assert segment_indices(3, 8) == [0, 0, 0, 1, 1, 2, 2, 2]
    assert segment_indices(1, 4) == [0, 0, 0, 0]
    gen = torch.Generator().manual_seed(2)
    for _ in range(50):
        idx = segment_indices(3, 8, train=True, jitter=0.2, generator=gen)
        assert idx == sorted(idx) and set(idx) <= {0, 1, 2}
    # a clip transform on a 3-frame clip still gives T frames, in order
    clip = np.stack([np.full((8, 8, 3), 50 * i, np.uint8) for i in range(3)])
    spec = make_input_spec(8, frames=8)
    out = eval_transform(spec)(ArrayClip(clip))
    levels = out[:, 0, 0, 0] * spec["std"][0] + spec["mean"][0]
    assert torch.allclose(levels * 255, torch.tensor([0, 0, 0, 50, 50, 100, 100, 100.0]), atol=0.5)


# ---------------------------------------------------------------------------------------
# specs and transforms


def test_clip_spec_and_frames_are_settable():
    spec = make_input_spec(32, frames=8)
    assert spec["kind"] == "clip" and spec["frames"] == 8 and spec["shape"] == [8, 3, 32, 32]
    assert spec["layout"] == "NTCHW"
    assert frame_spec(spec)["shape"] == [3, 32, 32] and "frames" not in frame_spec(spec)
    four = with_frames(spec, 4)
    assert four["shape"] == [4, 3, 32, 32] and four["frames"] == 4 and with_frames(make_input_spec(32), 4) == four
    assert eval_transform(four)(np.zeros((16, 40, 40, 3), np.uint8)).shape == (4, 3, 32, 32)
    assert preprocessing(four)["frames"] == 4
    with pytest.raises(EdgekitError):
        with_frames(spec, 0)


def _gradient_clip(frames=6, size=48):
    """Brightness increasing left to right, the same in every frame."""
    row = np.linspace(0, 255, size).astype(np.uint8)
    return np.broadcast_to(row[None, None, :, None], (frames, size, size, 3)).copy()


@pytest.mark.parametrize("size", [32, 72])  # padded crop; RandomResizedCrop
@pytest.mark.parametrize("augment", ["standard", "dldl"])
def test_clip_training_transform_never_flips(size, augment):
    torch.manual_seed(0)
    crop = None if size <= 64 else 0.875
    spec = make_input_spec(size, frames=4, crop_ratio=crop)
    tf = train_transform(spec, augment)
    clip = _gradient_clip()
    for _ in range(12):
        out = tf(clip)
        assert out.shape == (4, 3, size, size)
        third = size // 3
        assert (out[..., :third].mean() < out[..., -third:].mean()).item()  # left stays darker
        assert torch.equal(out[0], out[-1])  # one spatial transform for all frames
    # the image preset with the same name does flip (so this test can fail)
    image_tf = train_transform(make_input_spec(size, crop_ratio=crop), "standard")
    img = Image.fromarray(clip[0])
    flips = sum(bool(image_tf(img)[..., :size // 3].mean() > image_tf(img)[..., -(size // 3):].mean())
                for _ in range(12))
    assert flips > 0


def test_loader_batches_clips_and_eval_is_deterministic():
    bundle = load_data("gestures:n=110,size=16,frames=10")
    spec = make_input_spec(16, frames=5)
    x, y = next(iter(bundle.loader("train", train_transform(spec), 8, shuffle=True)))
    assert x.shape == (8, 5, 3, 16, 16) and x.dtype == torch.float32 and y.dtype == torch.int64
    val = bundle.loader("val", eval_transform(spec), 8)
    assert torch.equal(next(iter(val))[0], next(iter(val))[0])


def test_clip_transform_rejects_bad_settings():
    with pytest.raises(EdgekitError):
        ClipTransform(0, lambda v: v)
    with pytest.raises(EdgekitError):
        ClipTransform(4, lambda v: v, train=True, jitter=1.0)


# ---------------------------------------------------------------------------------------
# jester:PATH


LABELS = ["Swiping Right", "No gesture", "Swiping Left"]  # deliberately not sorted


def _jpeg_clip(folder: Path, frames: int, level: int) -> None:
    folder.mkdir(parents=True)
    for i in range(frames):
        Image.fromarray(np.full((20, 30, 3), level + 10 * i, np.uint8)).save(folder / f"{i + 1:05d}.jpg")


def _jester_tree(root: Path, frames_dir: Path, train: dict, val: dict) -> None:
    for n, (vid, _) in enumerate({**train, **val}.items()):
        _jpeg_clip(frames_dir / vid, 5 + n % 3, 40 + 5 * n)


def _write_plain(root: Path, train: dict, val: dict) -> None:
    (root / "jester-v1-labels.csv").write_text("\n".join(LABELS) + "\n")
    for name, rows in (("jester-v1-train.csv", train), ("jester-v1-validation.csv", val)):
        (root / name).write_text("".join(f"{vid};{label}\n" for vid, label in rows.items()))
    (root / "jester-v1-test.csv").write_text("999\n")


TRAIN = {str(100 + i): LABELS[i % 3] for i in range(9)}
VAL = {str(200 + i): LABELS[(i + 1) % 3] for i in range(4)}


@pytest.mark.parametrize("nested", [True, False], ids=["20bn-jester-v1", "flat"])
def test_jester_original_layout(tmp_path, nested):
    frames = tmp_path / "20bn-jester-v1" if nested else tmp_path
    _jester_tree(tmp_path, frames, TRAIN, VAL)
    _write_plain(tmp_path, {**TRAIN, "555": "No gesture"}, VAL)  # 555 has no frames
    b = load_data(f"jester:{tmp_path}")
    assert b.task == "clip_classify" and b.labels == LABELS and b.info["layout"] == "jester-v1"
    assert len(b.train) == 9 and len(b.val) == 4 and b.skipped == 1
    assert b.train.targets == [i % 3 for i in range(9)] and b.val.targets == [(i + 1) % 3 for i in range(4)]
    assert b.record == {"spec": f"jester:{tmp_path}", "folders": True, "source_split": "csv"}
    clip, label = b.train[1]  # video 101: 6 frames, levels 45, 55, ...
    assert len(clip) == 6 and label == 1
    frames_read = clip.read([0, 5])
    assert frames_read.shape == (2, 20, 30, 3) and abs(int(frames_read[1].mean()) - 95) <= 3
    # a checkpoint reopening it (any seed, any fraction) gets the CSVs' split again
    again = load_data(b.record["spec"], seed=7, val=0.5)
    assert again.val.targets == b.val.targets and [c.paths for c in again.val.clips] == [c.paths for c in b.val.clips]
    x = eval_transform(make_input_spec(16, frames=4))(clip)
    assert x.shape == (4, 3, 16, 16)


def test_jester_rehosted_layout(tmp_path):
    # header row, comma-separated, a label_id column fixing the order, frames under Train/ and Validation/
    ids = {"Swiping Left": 2, "No gesture": 1, "Swiping Right": 0}
    _jester_tree(tmp_path, tmp_path / "Train", TRAIN, {})
    _jester_tree(tmp_path, tmp_path / "Validation", {}, VAL)
    for name, rows in (("Train.csv", TRAIN), ("Validation.csv", VAL)):
        (tmp_path / name).write_text("video_id,label,label_id,frames\n" + "".join(
            f"{vid},{label},{ids[label]},5\n" for vid, label in rows.items()))
    b = load_data(f"jester:{tmp_path}")
    assert b.labels == LABELS and len(b.train) == 9 and len(b.val) == 4 and b.skipped == 0
    assert b.info["layout"] == "rehosted" and b.record["source_split"] == "csv"
    assert b.val.targets == [(i + 1) % 3 for i in range(4)]


def test_jester_bad_input_is_one_line(tmp_path):
    cases = [f"jester:{tmp_path / 'missing'}", f"jester:{tmp_path}"]  # no folder; no CSVs
    bad = tmp_path / "bad"
    bad.mkdir()
    _jester_tree(bad, bad, TRAIN, VAL)
    _write_plain(bad, {**TRAIN, "101": "Thumb Up"}, VAL)  # a label not in the labels file
    cases.append(f"jester:{bad}")
    noframes = tmp_path / "noframes"
    noframes.mkdir()
    _write_plain(noframes, TRAIN, VAL)
    cases.append(f"jester:{noframes}")
    for spec in cases:
        with pytest.raises(EdgekitError) as err:
            load_data(spec)
        assert "\n" not in str(err.value), spec
    with pytest.raises(EdgekitError, match="Thumb Up"):
        load_data(f"jester:{bad}")


# ---------------------------------------------------------------------------------------
# videofolder:PATH


def _write_video(path: Path, frames: int, level: int, codec: str) -> None:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=10)
        stream.width, stream.height = 32, 24
        stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        for i in range(frames):
            img = np.full((24, 32, 3), min(255, level + 12 * i), np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def test_videofolder_reads_real_videos_and_skips_bad_ones(tmp_path, caplog):
    pytest.importorskip("av")
    for c, cls in enumerate(("clap", "wave")):
        (tmp_path / cls).mkdir()
        for i in range(4):
            ext, codec = ((".mp4", "mpeg4"), (".avi", "mjpeg"), (".webm", "libvpx"), (".avi", "mpeg4"))[i]
            _write_video(tmp_path / cls / f"v{i}{ext}", 8 + 2 * i, 20 + 10 * c, codec)
    (tmp_path / "clap" / "corrupt.mp4").write_bytes(b"\x00\x01not a video" * 50)
    (tmp_path / "wave" / "empty.avi").write_bytes(b"")
    (tmp_path / "wave" / "notes.txt").write_text("ignored")
    assert [probe_video(tmp_path / "clap" / f"v{i}{e}") for i, e in enumerate((".mp4", ".avi", ".webm"))] == [8, 10, 12]
    assert probe_video(tmp_path / "wave" / "empty.avi") == 0 == probe_video(tmp_path / "clap" / "corrupt.mp4")
    with caplog.at_level("WARNING", logger="edgekit.data"):
        b = load_data(f"videofolder:{tmp_path}?val=0.25&seed=3")
    assert "skipped 2 unreadable or empty video(s)" in caplog.text
    assert b.task == "clip_classify" and b.labels == ["clap", "wave"] and b.skipped == 2
    assert len(b.train) == 6 and sorted(b.val.targets) == [0, 1]  # stratified
    assert b.record == {"spec": b.spec, "val": 0.25, "seed": 3}
    again = load_data(f"videofolder:{tmp_path}?val=0.25&seed=3")
    assert again.val.indices == b.val.indices
    clip, _ = b.train[0]
    x = eval_transform(make_input_spec(16, frames=4))(clip)
    assert x.shape == (4, 3, 16, 16)
    brightness = x.mean((1, 2, 3))
    assert (brightness[1:] > brightness[:-1]).all()  # frames come out in time order
    frames = clip.read([0, len(clip) - 1, len(clip) + 5])  # past the end: the last frame
    assert frames.shape[0] == 3 and np.array_equal(frames[1], frames[2])


def test_videofolder_bad_paths(tmp_path):
    for spec in (f"videofolder:{tmp_path / 'nope'}", f"videofolder:{tmp_path}"):
        with pytest.raises(EdgekitError) as err:
            load_data(spec)
        assert "\n" not in str(err.value)
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "broken.webm").write_bytes(b"garbage")
    with pytest.raises(EdgekitError, match="no readable videos"):
        load_data(f"videofolder:{tmp_path}")


def test_checkpoint_records_the_clip_spec_and_reopens_the_split(tmp_path):
    from edgekit.checkpoint import Checkpoint, load_checkpoint

    _jester_tree(tmp_path, tmp_path, TRAIN, VAL)
    _write_plain(tmp_path, TRAIN, VAL)
    bundle = load_data(f"jester:{tmp_path}")
    spec = make_input_spec(16, frames=4)
    ckpt = Checkpoint(arch="tsm_compact_cnn", arch_kwargs={}, state_dict={}, task="clip_classify",
                      labels=bundle.labels, input_spec=spec, data=bundle.record)
    ckpt.save(tmp_path / "m.ckpt")
    loaded = load_checkpoint(tmp_path / "m.ckpt")
    assert loaded.input_spec == spec and loaded.data == bundle.record
    again = loaded.load_data()
    assert [c.paths for c in again.val.clips] == [c.paths for c in bundle.val.clips]
    x = eval_transform(loaded.input_spec)(again.val[0][0])
    assert x.shape == (4, 3, 16, 16)


def test_a_corrupt_frame_reads_as_its_neighbour(tmp_path):
    from edgekit.data.clips import FrameFiles

    _jpeg_clip(tmp_path / "v", 4, 40)  # levels 40, 50, 60, 70
    (tmp_path / "v" / "00003.jpg").write_bytes(b"broken")
    clip = FrameFiles(sorted((tmp_path / "v").iterdir()))
    levels = [int(round(f.mean())) for f in clip.read([0, 1, 2, 3])]
    assert abs(levels[2] - levels[1]) <= 2 and abs(levels[3] - 70) <= 2  # frame 2 -> nearest readable (1)
    for p in (tmp_path / "v").iterdir():
        p.write_bytes(b"broken")
    with pytest.raises(EdgekitError, match="no readable frame"):
        clip.read([0])
