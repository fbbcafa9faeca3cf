"""The split is a property of the checkpoint: every stage scores on images training held apart.

A model is trained with a non-zero seed (the split seed), then the images each later stage
uses are compared, by content, with the images training used: evaluation, the export
parity gate (and calibration, which must come from the training split), bench accuracy,
and the data distill and prune open. Under the old behaviour (stages re-splitting with
seed 0) most validation images were training images; the last test pins that this
comparison does catch such a leak.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

import edgekit
from edgekit.checkpoint import load_checkpoint
from edgekit.data import load_data

SEED = 3


def _digest(t: torch.Tensor) -> str:
    return hashlib.sha1(t.contiguous().numpy().tobytes()).hexdigest()


def _images(ckpt: edgekit.Checkpoint, dataset) -> set[str]:
    tf = ckpt.eval_transform
    return {_digest(tf(dataset[i][0])) for i in range(len(dataset))}


@pytest.fixture(scope="module")
def seeded(tmp_path_factory) -> tuple[Path, set[str]]:
    out = tmp_path_factory.mktemp("split") / "model.ckpt"
    edgekit.train("compact_cnn", "digits", out, epochs=1, seed=SEED, progress=False)
    ckpt = load_checkpoint(out)
    trained_on = _images(ckpt, load_data("digits", seed=SEED).train)  # exactly what the trainer split
    return out, trained_on


def test_checkpoint_records_its_split(seeded) -> None:
    path, _ = seeded
    ckpt = load_checkpoint(path)
    assert ckpt.data == {"spec": "digits", "val": 0.2, "seed": SEED}
    assert ckpt.load_data().split == {"val": 0.2, "seed": SEED}
    # an explicit option in the spec still wins
    assert load_checkpoint(path).load_data("digits:seed=5").split == {"val": 0.2, "seed": 5}


def test_evaluation_parity_bench_never_see_training_images(seeded) -> None:
    from edgekit.benchmark.accuracy import validation_data
    from edgekit.exporters.samples import real_inputs

    path, trained_on = seeded
    ckpt = load_checkpoint(path)
    # edgekit eval (with and without --data) and the data prune/distill open
    for spec in (None, "digits"):
        val = _images(ckpt, ckpt.load_data(spec).val)
        assert len(val) > 300 and not val & trained_on
    # the export parity gate and int8 calibration
    x_val, _ = real_inputs(ckpt, None, "val", 10_000)
    assert len(x_val) > 300 and not {_digest(x) for x in x_val} & trained_on
    x_cal, _ = real_inputs(ckpt, None, "train", 64, seed=1)
    assert {_digest(x) for x in x_cal} <= trained_on
    # bench --data: the worker's validation split, for a checkpoint row
    bench_val = validation_data({"artifact": str(path), "format": "torch", "data": "digits"}).val
    assert not _images(ckpt, bench_val) & trained_on


def test_derived_checkpoints_inherit_the_split(seeded, tmp_path: Path) -> None:
    path, trained_on = seeded
    ckpt = load_checkpoint(path)
    child = ckpt.derive(ckpt.model, stage="prune")
    child.save(tmp_path / "child.pt")
    grandchild = load_checkpoint(tmp_path / "child.pt")
    assert grandchild.data == ckpt.data
    assert grandchild.lineage["root_sha256"] == ckpt.sha256
    assert not _images(ckpt, grandchild.load_data().val) & trained_on


def test_artifact_manifest_carries_the_split(seeded, tmp_path: Path) -> None:
    """bench --data on an exported artifact, with no checkpoint beside it, still splits as training did."""
    from edgekit.benchmark.accuracy import validation_data
    from edgekit.exporters.pipeline import export

    path, trained_on = seeded
    ckpt = load_checkpoint(path)
    rec = export(path, "onnx", output_dir=tmp_path, parity_size=32)[0]
    assert rec["data"] == ckpt.data
    val = validation_data({"artifact": rec["path"], "format": "onnx", "data": "digits",
                           "data_record": rec["data"]}).val
    assert not _images(ckpt, val) & trained_on


def test_default_seed_split_would_leak(seeded) -> None:
    """The pre-fix behaviour (a stage re-splitting with seed 0) overlaps heavily: the check above can fail."""
    path, trained_on = seeded
    ckpt = load_checkpoint(path)
    leaked = _images(ckpt, load_data("digits", seed=0).val) & trained_on
    assert len(leaked) > 200


def test_eval_cli_defaults_to_the_checkpoint_data(seeded) -> None:
    from click.testing import CliRunner

    from edgekit.cli import main

    path, _ = seeded
    res = CliRunner().invoke(main, ["eval", str(path), "--json"])
    assert res.exit_code == 0, res.output
    assert '"n": 359' in res.output
