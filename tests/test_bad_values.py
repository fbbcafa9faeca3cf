"""Bad values are one line, never a silent result or a traceback (issue 25).

Each case runs the CLI in-process (click's runner: no interpreter start per case) on tiny data
made here: a one-class image folder, NaN/inf CSVs, a NaN results file, a truncated resume file,
and checks a non-zero exit, exactly one stderr line, and that no output was written.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from edgekit.cli import main
from edgekit.errors import EdgekitError

TINY = ["--input-size", "16", "--batch-size", "8", "--precise-bn", "0"]


def cli(*args: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``edgekit ARGS`` run in this process; fails on a traceback."""
    res = CliRunner().invoke(main, list(args))
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    return res.exit_code, res.stdout, res.stderr


def one_line_error(args: list[str], *needles: str) -> str:
    """Run ``args``; assert a non-zero exit and one stderr line 'edgekit: error: ...' holding ``needles``."""
    code, _, err = cli(*args)
    lines = err.strip().splitlines()
    assert code != 0 and len(lines) == 1 and lines[0].startswith("edgekit: error: "), (code, err)
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


def image_folder(root: Path, counts: dict[str, int]) -> Path:
    """``root/<class>/<i>.png``: ``counts[class]`` small images per class (a class of 0 is an empty folder)."""
    from PIL import Image

    for k, (name, n) in enumerate(counts.items()):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.new("RGB", (16, 16), (40 * k, 7 * i, 100)).save(root / name / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def two_class(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """compact_cnn_s trained 1 epoch on a 2-class folder of 16 px images (classes a, b)."""
    from edgekit.training.trainer import train

    root = tmp_path_factory.mktemp("two")
    data = image_folder(root / "data", {"a": 8, "b": 8})
    out = root / "model.pt"
    train("compact_cnn_s", f"imagefolder:{data}", out, epochs=1, batch_size=8, input_size=16, precise_bn=0,
          progress=False)
    return out


# 1. fewer than two classes -------------------------------------------------------------------------------


def test_one_class_folder_does_not_train(tmp_path: Path) -> None:
    data = image_folder(tmp_path / "one", {"a": 6})
    out = tmp_path / "m.pt"
    one_line_error(["train", "--arch", "compact_cnn_s", "--data", f"imagefolder:{data}", "-o", str(out),
                    "--epochs", "1", *TINY], "1 class ('a')", "at least two classes")
    assert not out.exists() and not (tmp_path / "m.pt.metrics.jsonl").exists()


def test_one_class_training_split_refused_for_prune_and_distill(tmp_path: Path, two_class: Path) -> None:
    data = image_folder(tmp_path / "half", {"a": 6, "b": 0})  # two class folders, images in one
    for args, stage in ((["prune", str(two_class)], "pruning"),
                        (["distill", "--teacher", str(two_class), "--student", "compact_cnn_s"], "distillation")):
        out = tmp_path / f"{stage}.pt"
        one_line_error([*args, "--data", f"imagefolder:{data}", "-o", str(out), "--epochs" if stage ==
                        "distillation" else "--finetune-epochs", "1"], f"{stage} needs at least two classes")
        assert not out.exists()


# 2. a loss that is no number ---------------------------------------------------------------------------------


def test_nan_loss_stops_training_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "m.pt"
    line = one_line_error(["train", "--arch", "compact_cnn_s", "--data", "synthetic:classes=2,n=40", "-o", str(out),
                           "--epochs", "2", "--lr", "1e30", *TINY], "the loss became", "epoch 1/2", str(out))
    assert "nothing was written" in line
    assert not out.exists() and not Path(f"{out}.resume").exists()


def test_divergence_after_a_good_epoch_names_the_last_good_checkpoint(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from edgekit.checkpoint import load_checkpoint
    from edgekit.training import step as step_losses, trainer
    from edgekit.training.loop import Diverged, classification_loss

    def nan_in_second_epoch(*args, **kwargs):  # type: ignore[no-untyped-def]
        step = classification_loss(*args, **kwargs)

        def run(model, x, y, epoch):  # type: ignore[no-untyped-def]
            out = step(model, x, y, epoch)
            if epoch == 1:
                out.loss = out.loss * math.inf
            return out
        return run

    # the classify task's loss() looks the step loss up in edgekit.training.step when it is asked
    monkeypatch.setattr(step_losses, "classification_loss", nan_in_second_epoch)
    out = tmp_path / "m.pt"
    with pytest.raises(Diverged, match=r"epoch 2/3") as info:
        trainer.train("compact_cnn_s", "synthetic:classes=2,n=40", out, epochs=3, batch_size=8, input_size=16,
                      precise_bn=0, progress=False)
    assert f"the last good checkpoint is {out} (epoch 1)" in str(info.value) and info.value.epoch == 2
    ckpt = load_checkpoint(out)
    assert ckpt.metrics["epoch"] == 1
    assert all(torch.isfinite(t).all() for t in ckpt.state_dict.values() if t.is_floating_point())
    assert len((tmp_path / "m.pt.metrics.jsonl").read_text().splitlines()) == 1  # the bad epoch is not logged


# 3. tabular features with no value ------------------------------------------------------------------------


@pytest.mark.parametrize("rows, needles", [
    (["a,b,c,target", *[f"nan,{i},inf,{'xy'[i % 2]}" for i in range(12)]], ["feature columns 'a', 'c' have"]),
    (["a,b,target", *[f"NaN,{'-inf' if i % 3 else 'inf'},{'xy'[i % 2]}" for i in range(12)]],
     ["every feature column ('a', 'b')"]),
])
def test_tabular_columns_without_values(tmp_path: Path, rows: list[str], needles: list[str]) -> None:
    csv = tmp_path / "t.csv"
    csv.write_text("\n".join(rows) + "\n")
    out = tmp_path / "m.pt"
    one_line_error(["train", "--arch", "mlp_tabular", "--data", f"tabular:{csv}", "-o", str(out), "--epochs", "1"],
                   str(csv), "no value in the training rows", *needles)
    assert not out.exists()


def test_tabular_infinite_cells_are_imputed_like_missing_ones(tmp_path: Path) -> None:
    from edgekit.data import load_data

    csv = tmp_path / "t.csv"
    csv.write_text("a,b,target\n" + "".join(f"{'inf' if i == 3 else i},{i % 5},{'xy'[i % 2]}\n" for i in range(20)))
    bundle = load_data(f"tabular:{csv}")
    assert bundle.info["missing"] == {"a": 1} and "a" not in bundle.info["categorical"]
    assert all(math.isfinite(v) for v in bundle.input_spec["mean"] + bundle.input_spec["std"])


def test_input_spec_refuses_non_finite_training_rows() -> None:
    import numpy as np

    from edgekit.data.tabular import input_spec

    with pytest.raises(EdgekitError, match="feature 'b' hold"):
        input_spec(["a", "b"], np.array([[1.0, np.nan], [2.0, 3.0]], dtype=np.float32))


# 4. evaluation data with other labels ---------------------------------------------------------------------


def test_eval_refuses_data_with_other_labels(tmp_path: Path, two_class: Path) -> None:
    one = image_folder(tmp_path / "one", {"a": 2})
    one_line_error(["eval", str(two_class), "--data", f"imagefolder:{one}"], "1 class (a)", "2 classes (a, b)",
                   "evaluation data must have the model's labels")
    three = image_folder(tmp_path / "three", {"a": 2, "b": 2, "c": 2})
    one_line_error(["eval", str(two_class), "--data", f"imagefolder:{three}"], "3 classes")
    code, out, _ = cli("eval", str(two_class), "--split", "train")  # its own data still scores
    assert code == 0 and "top-1" in out


# 5. distillation method spellings -----------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["kd+", "kd++", "+kd", "+", "kd+bogus"])
def test_unknown_distill_methods_list_the_valid_ones(tmp_path: Path, two_class: Path, method: str) -> None:
    out = tmp_path / "s.pt"
    one_line_error(["distill", "--teacher", str(two_class), "--student", "compact_cnn_s", "-o", str(out),
                    "--method", method], "none, kd, l2, lsh, lshl2")
    assert not out.exists()


# 6. results files holding NaN ----------------------------------------------------------------------------


def test_report_refuses_nan_results(tmp_path: Path) -> None:
    from edgekit.benchmark.schema import FIELDS, results_document

    row = {**{k: None for k in FIELDS}, "model": "m", "artifact": "m.onnx", "runtime": "onnxruntime",
           "threads": 1, "batch": 1, "p50_ms": 1.0, "mean_ms": math.nan, "latencies_ms": [1.0, math.inf],
           "accuracy": {"pearson": math.nan, "n": 4}}
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results_document([row], {}, "edgekit bench")))  # json writes NaN, Infinity
    out = tmp_path / "report"
    one_line_error(["report", str(path), "-o", str(out)], str(path), "rows[0].mean_ms is nan")
    assert not out.exists()
    row["mean_ms"] = 1.0
    path.write_text(json.dumps(results_document([row], {}, "edgekit bench")))
    one_line_error(["report", str(path), "-o", str(out)], "rows[0].latencies_ms[1] is inf")


# 7. absurd epoch counts ---------------------------------------------------------------------------------


@pytest.mark.parametrize("epochs, needle", [("99999999999999999999", "fit in 64 bits"), ("100001", "at most 100,000")])
def test_absurd_epoch_counts(tmp_path: Path, epochs: str, needle: str) -> None:
    from edgekit.training.config import TrainConfig

    out = tmp_path / "m.pt"
    one_line_error(["train", "--arch", "compact_cnn_s", "--data", "digits", "-o", str(out), "--epochs", epochs],
                   "--epochs", needle)
    one_line_error(["prune", "x.pt", "-o", str(out), "--finetune-epochs", epochs], "--finetune-epochs", needle)
    assert not out.exists()
    with pytest.raises(EdgekitError, match=needle):
        TrainConfig(epochs=int(epochs))


# 8. resources ------------------------------------------------------------------------------------------------


def test_a_batch_larger_than_memory_is_one_line_before_anything_runs(tmp_path: Path) -> None:
    out = tmp_path / "m.pt"
    one_line_error(["train", "--arch", "compact_cnn_s", "--data", "digits", "-o", str(out), "--epochs", "1",
                    "--input-size", "100000"], "batch 64 x input 3x100000x100000", "GiB", "--batch-size")
    assert not out.exists()


def test_allocator_refusals_become_one_line() -> None:
    from edgekit.training.guards import allocation_guard

    for exc in (RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: "
                             "you tried to allocate 123 bytes.\nmore"), MemoryError()):
        with pytest.raises(EdgekitError, match=r"cannot allocate memory for batch 8 x input 3x9x9 \("):
            with allocation_guard("batch 8 x input 3x9x9"):
                raise exc
    with pytest.raises(RuntimeError, match="shape mismatch"):  # other errors are not memory errors
        with allocation_guard("batch 8"):
            raise RuntimeError("shape mismatch")


def test_truncated_resume_file_names_the_last_good_checkpoint(tmp_path: Path, two_class: Path) -> None:
    import shutil

    out = tmp_path / "m.pt"
    resume = tmp_path / "m.pt.resume"
    resume.write_bytes(b"PK\x03\x04 truncated")
    args = ["train", "--arch", "compact_cnn_s", "--data", "synthetic:classes=2,n=40", "-o", str(out),
            "--epochs", "2", "--resume", *TINY]
    one_line_error(args, f"cannot resume from {resume}", "train again without --resume")
    shutil.copy(two_class, out)  # the checkpoint an earlier epoch left
    before = out.read_bytes()
    one_line_error(args, f"cannot resume from {resume}", f"the last good checkpoint is {out}")
    assert out.read_bytes() == before
    torch.save({"model": {}, "fit": {}}, resume)  # readable, but not a resume file
    one_line_error(args, "not a training resume file")
