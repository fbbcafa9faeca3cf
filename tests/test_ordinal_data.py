"""The data side of DLDL-v2: the ordinal image generator, the csv label/sigma/split columns,
the DLDL-v2 augmentation preset, and that the generated set is learnable on CPU."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from edgekit.data import load_data, make_input_spec, train_transform
from edgekit.data.ordinal import label_range, ordinal
from edgekit.data.transforms import AUGMENTS, IMAGENET_MEAN, IMAGENET_STD, dldl_steps
from edgekit.errors import EdgekitError


def test_generator_is_deterministic_and_differs_per_seed() -> None:
    a, b, c = ordinal(64, 32, seed=3), ordinal(64, 32, seed=3), ordinal(64, 32, seed=4)
    assert a.images.shape == (64, 32, 32, 3) and a.images.dtype == np.uint8
    assert np.array_equal(a.images, b.images) and np.array_equal(a.labels, b.labels)
    assert np.array_equal(a.sigmas, b.sigmas)
    assert not np.array_equal(a.images, c.images) and not np.allclose(a.labels, c.labels)


def test_targets_in_range_with_per_sample_sigma_and_label_noise() -> None:
    d = ordinal(3000, 16, seed=0, lo=10.0, hi=20.0)
    assert d.labels.min() >= 10 and d.labels.max() <= 20 and d.truth.min() >= 10 and d.truth.max() <= 20
    # sigma: 1..4 units of a 0..100 range, scaled to this range of 10
    assert d.sigmas.min() >= 0.1 and d.sigmas.max() <= 0.4 and d.sigmas.std() > 0.05
    # the recorded label is the truth plus noise of the sample's own sigma (not clipped ones)
    inside = (d.labels > 10) & (d.labels < 20)
    z = (d.labels - d.truth)[inside] / d.sigmas[inside]
    assert abs(z.mean()) < 0.1 and 0.9 < z.std() < 1.1
    assert all(isinstance(y, float) and s > 0 for y, s in d.targets)


def _disk_pixels(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixel count of the foreground (anything unlike the corner colour) and its mean column."""
    diff = np.abs(images.astype(np.int32) - images[:, :1, :1, :].astype(np.int32)).sum(-1)
    mask = diff > diff.reshape(len(images), -1).max(1)[:, None, None] / 2
    cols = np.arange(images.shape[2])[None, None, :]
    return mask.sum((1, 2)), (mask * cols).sum((1, 2)) / mask.sum((1, 2))


def test_label_is_a_flip_invariant_property_of_the_pixels() -> None:
    clean, cluttered = ordinal(400, 48, seed=5, clutter=False), ordinal(400, 48, seed=5)
    # clutter changes the pictures, never the targets
    assert np.array_equal(clean.labels, cluttered.labels) and not np.array_equal(clean.images, cluttered.images)
    area, centre_x = _disk_pixels(clean.images)
    flipped_area, flipped_x = _disk_pixels(clean.images[:, :, ::-1])
    radius = np.sqrt(area / np.pi)
    assert np.abs(radius - clean.radius).max() < 0.75  # the drawn disk is the recorded one
    assert np.array_equal(area, flipped_area)
    assert np.abs(centre_x + flipped_x - 47).max() < 0.5  # the mirror moves the disk...
    # ...yet the true value is a function of the measured, flip-invariant radius alone
    fit = np.polyval(np.polyfit(radius, clean.truth, 1), radius)
    assert np.abs(fit - clean.truth).max() < 0.03 * (clean.hi - clean.lo)
    assert abs(np.corrcoef(centre_x, clean.truth)[0, 1]) < 0.15


def test_ordinal_spec_is_a_label_distribution_bundle() -> None:
    b = load_data("ordinal:n=300,size=32,gen_seed=1,val=0.25,seed=2")
    assert b.task == "label_distribution" and b.labels == [] and b.default_input == 32
    assert len(b.train) == 225 and len(b.val) == 75
    assert b.info == {"label_range": "0:100:1", "flip_invariant": True}
    assert b.record == {"spec": b.spec, "val": 0.25, "seed": 2}
    img, (y, s) = b.train[0]
    assert img.size == (32, 32) and 0 <= y <= 100 and 1 <= s <= 4
    _, target = next(iter(b.loader("val", train_transform(make_input_spec(32), "none"), 8)))
    assert target.dtype == torch.float32 and target.shape == (8, 2)
    other = load_data("ordinal:n=300,size=32,gen_seed=1,val=0.25,seed=3")  # same images, other split
    assert sorted(other.train.targets + other.val.targets) == sorted(b.train.targets + b.val.targets)
    assert other.train.targets != b.train.targets
    assert load_data("ordinal:n=50,size=16,lo=1,hi=5").info["label_range"] == "1.0:5.0:0.1"
    assert load_data("ordinal:n=50").default_input == 64


@pytest.mark.parametrize("spec,message", [
    ("ordinal:n=0", "positive integer"),
    ("ordinal:lo=5,hi=1", "lo < hi"),
    ("ordinal:lo=nan", "lo < hi"),
    ("ordinal:size=8", "at least 16"),
    ("ordinal:gen_seed=-1", ">= 0"),
    ("ordinal:n=20,colour=red", "unknown option"),
])
def test_bad_ordinal_options_are_one_line_errors(spec: str, message: str) -> None:
    with pytest.raises(EdgekitError, match=message):
        load_data(spec)


def _csv(root: Path, header: str, rows: list[str], name: str = "d.csv") -> str:
    rng = np.random.default_rng(0)
    for i in range(10):
        Image.fromarray(rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)).save(root / f"{i}.png")
    (root / name).write_text("\n".join([header] + rows) + "\n")
    return f"csv:{root / name}"


def test_csv_label_or_target_column_with_sigma_and_split(tmp_path: Path) -> None:
    with_sigma = _csv(tmp_path, "path,label,sigma,split",
                      [f"{i}.png,{20.5 + i},{0 if i == 4 else 1.5},{'val' if i < 3 else 'train'}" for i in range(10)])
    b = load_data(with_sigma)
    assert b.task == "label_distribution" and len(b.val) == 3 and len(b.train) == 7
    assert b.train[0][1] == (23.5, 1.5) and b.train[1][1] == (24.5, 0.0)  # sigma 0 is allowed (clamped later)
    assert b.record == {"spec": with_sigma, "folders": True}
    assert b.info["label_range"] == "20.5:29.5:0.1"
    plain = load_data(_csv(tmp_path, "path , target ", [f"{i}.png,{3 * i}" for i in range(10)], "t.csv"))
    assert plain.task == "regression" and len(plain.train) == 8 and len(plain.val) == 2
    assert all(isinstance(t, float) for t in plain.train.targets + plain.val.targets)
    assert plain.info["label_range"] == "0:27:1"  # whole-number labels: step 1


@pytest.mark.parametrize("header,row,message", [
    ("path,age", "0.png,3", "'label' \\(or 'target'\\)"),
    ("path,label,target", "0.png,3,3", "both 'label' and 'target'"),
    ("path,label", "0.png,old", "b.csv:3: label is not a number"),
    ("path,label", "0.png,inf", "b.csv:3: label must be a finite"),
    ("path,label,sigma", "0.png,3,-1", "b.csv:3: sigma must be >= 0"),
    ("path,label,sigma", "0.png,3,nan", "b.csv:3: sigma must be a finite number"),
    ("path,label,sigma", "0.png,3,", "b.csv:3: sigma must be a number"),
    ("path,label,split", "0.png,3,test", "b.csv:3: split must be train or val"),
])
def test_bad_csv_cells_are_one_line_errors(tmp_path: Path, header: str, row: str, message: str) -> None:
    good = {"path": "1.png", "sigma": "1", "split": "train"}
    first = ",".join(good.get(col, "2") for col in header.split(","))  # a valid line 2
    spec = _csv(tmp_path, header, [first, row], "b.csv")
    with pytest.raises(EdgekitError, match=message) as info:
        load_data(spec)
    assert "\n" not in str(info.value)


def _is_grey(x: torch.Tensor) -> bool:
    raw = x * torch.tensor(IMAGENET_STD)[:, None, None] + torch.tensor(IMAGENET_MEAN)[:, None, None]
    return bool((raw - raw.mean(0)).abs().max() < 1e-4)


def test_dldl_augmentation_preset() -> None:
    assert AUGMENTS == ("standard", "no_flip", "none", "dldl", "dldl_no_flip")
    img = Image.fromarray(ordinal(1, 48, seed=1).images[0]).resize((50, 40))
    torch.manual_seed(0)
    for size in (32, 64):
        tf = train_transform(make_input_spec(size), "dldl")
        outs = [tf(img) for _ in range(30)]
        assert all(o.shape == (3, size, size) for o in outs)
        assert (outs[0] - outs[1]).abs().mean() > 0.05  # random, not a fixed transform
        assert 4 <= sum(_is_grey(o) for o in outs) <= 26  # random grayscale at p = 0.5
    spec = make_input_spec(32)
    assert train_transform(spec, "dldl_no_flip")(img).shape == (3, 32, 32)
    with_flip, without = dldl_steps(spec), dldl_steps(spec, flip=False)
    assert type(with_flip[0]).__name__ == "RandomHorizontalFlip"
    assert [type(t) for t in without] == [type(t) for t in with_flip[1:]]
    with pytest.raises(EdgekitError, match="unknown augmentation"):
        train_transform(spec, "dldl2")


def test_label_range_suggestions() -> None:
    assert label_range(0, 100) == "0:100:1"
    assert label_range(1.0, 5.0) == "1.0:5.0:0.1"
    assert label_range(3.2, 78.9, integer=True) == "3:79:1"
    assert label_range(7, 7, integer=True) == "7:8:1"


def test_ordinal_set_is_learnable_in_seconds(tmp_path: Path) -> None:
    """compact_cnn with the task's default DLDL head and loss: the validation MAE falls well below the
    training-mean predictor's."""
    import edgekit

    spec = "ordinal:n=600,size=32"
    bundle = load_data(spec)
    train_y = np.array([y for y, _ in bundle.train.targets])
    val_y = np.array([y for y, _ in bundle.val.targets])
    mean_mae = float(np.abs(val_y - train_y.mean()).mean())
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a model this small only waits on a second thread of a shared CPU
    try:
        ck = edgekit.train("compact_cnn", spec, tmp_path / "o.pt", epochs=4, batch_size=32,
                           arch_kwargs={"width_mult": 0.5}, progress=False)
    finally:
        torch.set_num_threads(threads)
    assert ck.num_outputs == 102 and ck.arch_kwargs["head"] == "dldl"
    assert ck.metrics["val_mae"] < 0.4 * mean_mae, (ck.metrics["val_mae"], mean_mae)
