"""``--labeled-fraction``: training on a stratified, seeded share of the training split's labels.

The fraction and its seed are part of the checkpoint's data record, so every later stage that
opens the data through ``Checkpoint.load_data`` (eval, prune, distill, export calibration, bench)
sees the same labelled images; the validation split never changes; the rest of the training split
is the unlabelled pool (``DataBundle.labeled_split``).
"""
from __future__ import annotations

import hashlib
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

import edgekit
from edgekit.checkpoint import load_checkpoint
from edgekit.data import load_data, load_recorded
from edgekit.errors import EdgekitError
from edgekit.training.config import TrainConfig

SEED = 2


def _digest(t) -> str:
    return hashlib.sha1(t.contiguous().numpy().tobytes()).hexdigest()


def _counts(dataset) -> Counter:
    return Counter(int(t) for t in dataset.targets)


def test_labeled_split_is_stratified_seeded_and_partitions_the_training_split() -> None:
    bundle = load_data("digits")
    labeled, unlabeled = bundle.labeled_split(0.1, seed=SEED)
    assert set(labeled.indices).isdisjoint(unlabeled.indices)
    assert sorted(labeled.indices + unlabeled.indices) == list(range(len(bundle.train)))
    per_class = _counts(bundle.train)
    assert _counts(labeled) == {c: round(n * 0.1) for c, n in per_class.items()}  # every class, its share
    assert _counts(unlabeled) == {c: n - round(n * 0.1) for c, n in per_class.items()}
    again, _ = bundle.labeled_split(0.1, seed=SEED)
    other, _ = bundle.labeled_split(0.1, seed=SEED + 1)
    assert again.indices == labeled.indices and other.indices != labeled.indices
    whole, none = bundle.labeled_split(1.0)
    assert len(whole) == len(bundle.train) and len(none) == 0
    # the labelled images are training images: the bundle's subset, never the validation split's
    assert [labeled[i][1] for i in range(5)] == [bundle.train[j][1] for j in labeled.indices[:5]]


def test_numeric_targets_are_drawn_unstratified() -> None:
    bundle = load_data("ordinal:n=60,size=16")
    labeled, unlabeled = bundle.labeled_split(0.25, seed=0)
    assert len(labeled) == round(len(bundle.train) * 0.25) and len(labeled) + len(unlabeled) == len(bundle.train)


@pytest.mark.parametrize("fraction,text", [(0, "must be in (0, 1], got 0"), (-0.5, "must be in (0, 1]"),
                                           (float("nan"), "finite number"), (1.5, "must be in (0, 1]")])
def test_bad_fractions_are_one_line(fraction: float, text: str) -> None:
    bundle = load_data("digits")
    for call in (lambda: bundle.labeled(fraction), lambda: bundle.labeled_split(fraction),
                 lambda: TrainConfig(labeled_fraction=fraction)):
        with pytest.raises(EdgekitError) as err:
            call()
        assert text in str(err.value) and "\n" not in str(err.value)


def test_a_fraction_leaving_a_class_unlabelled_names_it_and_the_smallest_that_works() -> None:
    bundle = load_data("digits")
    smallest = min(_counts(bundle.train).items(), key=lambda kv: kv[1])
    with pytest.raises(EdgekitError) as err:
        bundle.labeled(0.003)
    msg = str(err.value)
    assert f"class '{bundle.labels[smallest[0]]}' ({smallest[1]} training samples)" in msg, msg
    suggested = float(msg.rsplit(" ", 1)[1])
    labeled, _ = bundle.labeled_split(suggested)
    assert set(_counts(labeled)) == set(range(10))  # the suggestion labels every class ...
    with pytest.raises(EdgekitError, match="without a labelled sample"):  # ... and is the smallest at 3 digits
        bundle.labeled_split(suggested - 10 ** -4)


def test_a_class_of_one_sample_is_labelled_only_by_the_whole_split() -> None:
    from edgekit.data.labeled import labeled_indices

    with pytest.raises(EdgekitError, match="class 'b' \\(1 training sample\\) without a labelled sample; the "
                                           "smallest fraction that labels every class is 1$"):
        labeled_indices([0, 0, 0, 1], 0.9, seed=0, labels=["a", "b"])
    assert labeled_indices([0, 0, 0, 1], 1.0, seed=0) == ([0, 1, 2, 3], [])


def test_prunes_train_fraction_draws_the_same_samples() -> None:
    """One draw: prune's --train-fraction (subset_train, unrecorded) and the labelled part agree."""
    bundle = load_data("digits")
    for fraction, seed in ((0.1, 0), (0.15, 3), (0.5, 1)):
        assert bundle.subset_train(fraction, seed).train.indices == bundle.labeled_split(fraction, seed)[0].indices


@pytest.fixture(scope="module")
def labeled_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("labeled") / "model.ckpt"
    edgekit.train("compact_cnn", "digits", out, epochs=1, seed=SEED, labeled_fraction=0.2, input_size=16,
                  precise_bn=2, progress=False)
    return out


def test_the_checkpoint_records_the_fraction_and_later_stages_see_the_same_labels(labeled_ckpt: Path,
                                                                                 tmp_path: Path) -> None:
    ckpt = load_checkpoint(labeled_ckpt)
    assert ckpt.data == {"spec": "digits", "val": 0.2, "seed": SEED, "labeled_fraction": 0.2, "labeled_seed": SEED}
    full = load_data("digits", seed=SEED)
    expected, _ = full.labeled_split(0.2, SEED)
    for spec in (None, "digits"):  # what eval, prune, distill and export calibration open
        data = ckpt.load_data(spec)
        assert data.train.indices == expected.indices and len(data.train) == len(expected)
        assert data.val.indices == full.val.indices  # the validation split never changes
    # a pruned or distilled child inherits the record, hence the same labelled images
    child = ckpt.derive(ckpt.model, stage="prune")
    child.save(tmp_path / "child.ckpt")
    assert load_checkpoint(tmp_path / "child.ckpt").load_data().train.indices == expected.indices
    # bench accuracy reads the same record
    from edgekit.benchmark.accuracy import validation_data

    assert validation_data({"data": "digits", "artifact": str(labeled_ckpt), "format": "torch"}).val.indices \
        == full.val.indices
    # export's calibration images are the labelled training images, all of them and only them
    from edgekit.exporters.samples import real_inputs

    x, _ = real_inputs(ckpt, None, "train", n=10_000)
    tf = ckpt.eval_transform
    assert sorted(_digest(t) for t in x) == sorted(_digest(tf(expected[i][0])) for i in range(len(expected)))
    # taking a labelled fraction of an already labelled split again is refused, not compounded
    with pytest.raises(EdgekitError, match="already the labelled fraction 0.2"):
        ckpt.load_data().labeled(0.5)
    assert load_recorded(ckpt.data).train.indices == expected.indices


def test_the_record_is_checked_on_load(labeled_ckpt: Path, tmp_path: Path) -> None:
    import torch

    obj = torch.load(labeled_ckpt, map_location="cpu", weights_only=True)
    obj["data"]["labeled_fraction"] = 2.0
    torch.save(obj, tmp_path / "bad.ckpt")
    with pytest.raises(EdgekitError, match="data.labeled_fraction.*a fraction in"):
        load_checkpoint(tmp_path / "bad.ckpt")


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgekit", *args], capture_output=True, text=True, timeout=600)


def test_cli_trains_on_the_fraction_and_info_shows_it(tmp_path: Path, labeled_ckpt: Path, digits_ckpt: Path) -> None:
    info = _cli("info", str(labeled_ckpt))
    assert info.returncode == 0, info.stderr
    assert "data         digits (validation 0.2, split seed 2); labels: 20% of the training split " \
           "(stratified, seed 2)" in info.stdout, info.stdout
    out = tmp_path / "alias.ckpt"
    res = _cli("train", "--arch", "compact_cnn", "--data", "digits", "--epochs", "1", "--input-size", "16",
               "--precise-bn", "0", "--train-fraction", "0.05", "-o", str(out))  # the deprecated name still works
    assert res.returncode == 0, res.stderr
    assert load_checkpoint(out).data["labeled_fraction"] == 0.05
    assert "data         digits (validation 0.2, split seed 0); labels: all of the training split" in \
        _cli("info", str(digits_ckpt)).stdout
    bad = _cli("train", "--arch", "compact_cnn", "--data", "digits", "--labeled-fraction", "0.001",
               "-o", str(tmp_path / "x.ckpt"))
    lines = [line for line in bad.stderr.splitlines() if line.strip()]
    assert bad.returncode == 2 and len(lines) == 1 and "without a labelled sample" in lines[0], bad.stderr
    assert not (tmp_path / "x.ckpt").exists()
