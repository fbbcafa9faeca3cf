"""The CLI: thin commands, one-line errors with exit 2, nothing overwritten without --force."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgekit", *args], capture_output=True, text=True, timeout=600)


def _one_line_error(res: subprocess.CompletedProcess, text: str) -> None:
    assert res.returncode == 2, (res.stdout, res.stderr)
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    assert lines[0].startswith("edgekit: error:") and text in lines[0], lines[0]


def test_info_eval_and_json(digits_ckpt: Path) -> None:
    res = run("info", str(digits_ckpt))
    assert res.returncode == 0, res.stderr
    for key in ("architecture compact_cnn", "params", "MACs", "labels       10", "val_top1", "lineage"):
        assert key in res.stdout
    data = json.loads(run("info", str(digits_ckpt), "--json").stdout)
    assert data["arch"] == "compact_cnn" and data["macs"] > 1e6
    ev = json.loads(run("eval", str(digits_ckpt), "--data", "digits", "--json").stdout)
    assert ev["n"] == 359 and 0 <= ev["top1"] <= ev["top5"] <= 100
    assert "top-1" in run("eval", str(digits_ckpt), "--data", "digits").stdout


def test_zoo_lists_params_and_macs() -> None:
    res = run("zoo", "--filter", "resnet18")
    assert res.returncode == 0
    row = [line for line in res.stdout.splitlines() if line.startswith("resnet18 ")][0].split()
    assert row[1] == "torchvision" and float(row[3]) == pytest.approx(11.69, abs=0.01)
    assert float(row[4]) == pytest.approx(1814, rel=0.01)


@pytest.mark.parametrize("args,text", [
    (["train", "--arch", "resnet81", "--data", "digits", "-o", "{tmp}/x.pt"], "did you mean resnet18"),
    (["train", "--arch", "compact_cnn", "--data", "digitz", "-o", "{tmp}/x.pt"], "unknown data source"),
    (["train", "--arch", "compact_cnn", "--data", "digits:val=2", "-o", "{tmp}/x.pt"], "digits:val=2"),
    (["train", "--arch", "compact_cnn", "--data", "digits", "--epochs", "0", "-o", "{tmp}/x.pt"], "positive"),
    # numbers: 0, negative and NaN are bad input, never "not given"
    (["train", "--arch", "compact_cnn", "--data", "digits", "--input-size", "0", "-o", "{tmp}/x.pt"],
     "--input-size must be a positive integer, got '0'"),
    (["train", "--arch", "compact_cnn", "--data", "digits", "--epochs", "-1", "-o", "{tmp}/x.pt"], "--epochs"),
    (["train", "--arch", "compact_cnn", "--data", "digits", "--lr", "nan", "-o", "{tmp}/x.pt"],
     "--lr must be a finite number"),
    (["train", "--arch", "compact_cnn", "--data", "digits", "--batch-size", "0", "-o", "{tmp}/x.pt"], "--batch-size"),
    (["train", "--arch", "compact_cnn", "--data", "digits", "--train-fraction", "0", "-o", "{tmp}/x.pt"],
     "--train-fraction"),
    (["train", "--arch", "compact_cnn", "--data", "digits", "--weight-decay", "-1", "-o", "{tmp}/x.pt"],
     "--weight-decay"),
    (["train", "--arch", "compact_cnn", "--data", "digits", "--precise-bn", "-1", "-o", "{tmp}/x.pt"],
     "--precise-bn"),
    (["eval", "{tmp}/corrupt.pt", "--batch-size", "0"], "--batch-size"),
    (["quickstart", "-o", "{tmp}/qs", "--epochs", "0"], "--epochs"),
    (["prune", "{tmp}/corrupt.pt", "-o", "{tmp}/x.pt", "--proxy-size", "0"], "--proxy-size"),
    (["prune", "{tmp}/corrupt.pt", "-o", "{tmp}/x.pt", "--finetune-epochs", "-1"], "--finetune-epochs"),
    (["prune", "{tmp}/corrupt.pt", "-o", "{tmp}/x.pt", "--lr", "nan"], "--lr"),
    (["prune", "{tmp}/corrupt.pt", "-o", "{tmp}/x.pt", "--min-keep", "nan"], "--min-keep"),
    (["prune", "{tmp}/corrupt.pt", "-o", "{tmp}/x.pt", "--round-to", "0"], "--round-to"),
    (["distill", "--teacher", "{tmp}/corrupt.pt", "--student", "compact_cnn_s", "-o", "{tmp}/x.pt",
      "--input-size", "0"], "--input-size"),
    (["distill", "--teacher", "{tmp}/corrupt.pt", "--student", "compact_cnn_s", "-o", "{tmp}/x.pt",
      "--epochs", "-1"], "--epochs"),
    (["distill", "--teacher", "{tmp}/corrupt.pt", "--student", "compact_cnn_s", "-o", "{tmp}/x.pt",
      "--temperature", "0"], "--temperature"),
    (["distill", "--teacher", "{tmp}/corrupt.pt", "--student", "compact_cnn_s", "-o", "{tmp}/x.pt",
      "--hash-num", "0"], "--hash-num"),
    (["distill", "--teacher", "{tmp}/corrupt.pt", "--student", "compact_cnn_s", "-o", "{tmp}/x.pt",
      "--lr", "nan"], "--lr"),
    (["info", "{tmp}/missing.pt"], "not found"),
    (["info", "{tmp}/corrupt.pt"], "not a readable edgekit checkpoint"),
    (["eval", "{tmp}/corrupt.pt", "--data", "digits"], "not a readable edgekit checkpoint"),
])
def test_bad_input_is_one_line_exit_2(tmp_path: Path, args: list[str], text: str) -> None:
    (tmp_path / "corrupt.pt").write_bytes(b"PK\x03\x04 truncated zip")
    _one_line_error(run(*[a.format(tmp=tmp_path) for a in args]), text)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corrupt.pt"]  # nothing written


def test_stage_configs_reject_bad_numbers() -> None:
    """The library checks what the CLI checks: one-line EdgekitError, 0/negative/NaN never "not given"."""
    from edgekit.compress.distill_config import DistillConfig
    from edgekit.compress.prune_config import PruneConfig
    from edgekit.errors import EdgekitError

    for cls, options, text in [(PruneConfig, {"proxy_size": 0}, "proxy_size"),
                               (PruneConfig, {"lr": float("nan")}, "lr must be a finite number"),
                               (PruneConfig, {"method": "l3"}, "unknown pruning method .l3.; did you mean"),
                               (PruneConfig, {"finetune_epochs": -1}, "finetune_epochs"),
                               (DistillConfig, {"input_size": 0}, "input_size"),
                               (DistillConfig, {"hash_num": 0}, "hash_num"),
                               (DistillConfig, {"alpha": -1.0}, "alpha"),
                               (DistillConfig, {"method": "kd+lhs"}, "did you mean lsh"),
                               (DistillConfig, {"precise_bn": -2}, "precise_bn")]:
        with pytest.raises(EdgekitError, match=text):
            cls(**options)
        assert "\n" not in str(pytest.raises(EdgekitError, cls, **options).value)


def test_existing_output_is_kept_without_force(tmp_path: Path, digits_ckpt: Path) -> None:
    target = tmp_path / "model.pt"
    target.write_bytes(digits_ckpt.read_bytes())
    res = run("train", "--arch", "compact_cnn", "--data", "digits", "-o", str(target))
    _one_line_error(res, "--force")
    assert target.read_bytes() == digits_ckpt.read_bytes()
    (tmp_path / "qs").mkdir()
    (tmp_path / "qs" / "keep.txt").write_text("mine")
    _one_line_error(run("quickstart", "-o", str(tmp_path / "qs")), "not empty")
    assert (tmp_path / "qs" / "keep.txt").read_text() == "mine"
