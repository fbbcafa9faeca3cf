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
    (["train", "--arch", "compact_cnn", "--data", "digits:val=2", "-o", "{tmp}/x.pt"], "val fraction"),
    (["train", "--arch", "compact_cnn", "--data", "digits", "--epochs", "0", "-o", "{tmp}/x.pt"], "positive"),
    (["info", "{tmp}/missing.pt"], "not found"),
    (["info", "{tmp}/corrupt.pt"], "not a readable edgekit checkpoint"),
    (["eval", "{tmp}/corrupt.pt", "--data", "digits"], "not a readable edgekit checkpoint"),
])
def test_bad_input_is_one_line_exit_2(tmp_path: Path, args: list[str], text: str) -> None:
    (tmp_path / "corrupt.pt").write_bytes(b"PK\x03\x04 truncated zip")
    _one_line_error(run(*[a.format(tmp=tmp_path) for a in args]), text)


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
