"""Data specs: built-ins, image folders with corrupt files, CSV regression, bad specs."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgekit.data import load_data, parse_spec
from edgekit.data.transforms import eval_transform, make_input_spec, train_transform
from edgekit.errors import EdgekitError


def test_digits_is_real_and_split_is_seeded_and_stratified() -> None:
    a, b = load_data("digits"), load_data("digits")
    assert len(a.train) + len(a.val) == 1797 and a.labels == [str(i) for i in range(10)]
    assert a.val.indices == b.val.indices
    counts = np.bincount(a.val.targets, minlength=10)
    assert counts.min() >= 30, counts  # every class is in validation
    c = load_data("digits:val=0.5,seed=3")
    assert abs(len(c.val) - 898) <= 10 and c.val.indices != a.val.indices
    img, target = a.train[0]
    assert img.mode == "RGB" and img.size == (8, 8) and 0 <= target < 10


def test_synthetic_generator_options() -> None:
    b = load_data("synthetic:classes=3,n=60,size=24")
    assert b.labels == ["circle", "square", "triangle"] and len(b.train) + len(b.val) == 60
    assert b.train[0][0].size == (24, 24) and b.default_input == 24


def test_synthetic_clutter_adds_smaller_distractors_and_rejects_bad_counts() -> None:
    from edgekit.data import builtin

    plain, targets, _ = builtin.synthetic(8, 40, 32, 1)
    again, _, _ = builtin.synthetic(8, 40, 32, 1, clutter=0)
    assert np.array_equal(plain, again)  # clutter=0 is the old generator, image for image
    busy, busy_targets, _ = builtin.synthetic(8, 40, 32, 1, clutter=6)
    assert busy_targets == targets and not np.array_equal(plain, busy)
    # shapes are bright (a channel >= 140 for the labelled one, >= 100 for distractors) on a dark noisy
    # background: count the foreground blobs, one per image without clutter, several with it
    from scipy import ndimage

    def blobs(x: np.ndarray) -> int:
        labels, count = ndimage.label(x.max(axis=-1) >= 130)
        return int((np.bincount(labels.ravel())[1:] >= 4).sum())

    assert np.median([blobs(x) for x in plain]) == 1
    assert np.median([blobs(x) for x in busy]) >= 3
    b = load_data("synthetic:classes=8,n=80,clutter=3")
    assert len(b.train) + len(b.val) == 80
    for bad in ("-1", "x", "nan", "1.5"):
        with pytest.raises(EdgekitError, match="clutter"):
            load_data(f"synthetic:clutter={bad}")


def _write_folder(root: Path, classes=("cat", "dog"), n=6, size=20) -> None:
    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(root / c / f"{i}.png")


def test_imagefolder_skips_and_counts_corrupt_images(tmp_path: Path, caplog) -> None:
    _write_folder(tmp_path)
    (tmp_path / "dog" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (tmp_path / "cat" / "notes.txt").write_text("ignored: not an image extension")
    b = load_data(f"imagefolder:{tmp_path}?val=0.25")
    assert b.labels == ["cat", "dog"] and b.skipped == 1
    assert len(b.train) + len(b.val) == 12
    assert "unreadable" in caplog.text


def test_imagefolder_train_val_subfolders(tmp_path: Path) -> None:
    _write_folder(tmp_path / "train", n=4)
    _write_folder(tmp_path / "val", n=2)
    b = load_data(f"imagefolder:{tmp_path}")
    assert len(b.train) == 8 and len(b.val) == 4


def test_csv_regression_with_sigma_and_split(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    rows = ["path,target,sigma,split"]
    for i in range(10):
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(tmp_path / f"{i}.jpg")
        rows.append(f"{i}.jpg,{20 + i},{1.5},{'val' if i < 3 else 'train'}")
    (tmp_path / "ages.csv").write_text("\n".join(rows) + "\n")
    b = load_data(f"csv:{tmp_path / 'ages.csv'}")
    assert b.task == "label_distribution" and len(b.val) == 3 and len(b.train) == 7
    assert b.train[0][1] == (23.0, 1.5)
    (tmp_path / "bad.csv").write_text("path,target\n0.jpg,old\n")
    with pytest.raises(EdgekitError, match="not a number"):
        load_data(f"csv:{tmp_path / 'bad.csv'}")


@pytest.mark.parametrize("spec,message", [
    ("", "empty data spec"),
    ("mnist", "unknown data source"),
    ("digits:val=abc", "bad option"),
    ("digits:frobnicate=1", "unknown option"),
    ("digits:val", "malformed option"),
    ("imagefolder:/does/not/exist", "not found"),
    ("csv:/does/not/exist.csv", "not found"),
])
def test_bad_specs_are_clear_errors(spec: str, message: str) -> None:
    with pytest.raises(EdgekitError, match=message):
        load_data(spec)


def test_empty_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(EdgekitError, match="no class sub-folders"):
        load_data(f"imagefolder:{tmp_path}")
    (tmp_path / "a").mkdir()
    with pytest.raises(EdgekitError, match="no readable images"):
        load_data(f"imagefolder:{tmp_path}")


def test_parse_spec_keeps_paths_with_colons() -> None:
    assert parse_spec("imagefolder:C:/data/x?val=0.1") == ("imagefolder", "C:/data/x", {"val": "0.1"})


def test_transforms_follow_the_input_spec() -> None:
    img = Image.new("RGB", (300, 200), (255, 0, 0))
    small = make_input_spec(32)
    x = eval_transform(small)(img)
    assert x.shape == (3, 32, 32)
    assert x[0].mean().item() == pytest.approx((1 - 0.485) / 0.229, rel=1e-3)
    big = make_input_spec(224, crop_ratio=0.875)
    assert big["resize"] == 256 and eval_transform(big)(img).shape == (3, 224, 224)
    assert train_transform(big)(img).shape == (3, 224, 224)
    assert train_transform(small, "no_flip")(img).shape == (3, 32, 32)
