"""`edgekit quickstart` runs the quickstart recipe end to end, says what it did, and ends with
the headline: the optimised artifact against the original in PyTorch eager and in fp32 LiteRT,
every number measured in that run."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

NUM = r"([0-9.]+)"
HEAD = re.compile(rf"^headline: (optimised|closest \(.*\)) (\S+) (\w+) on (\S+), 1 thread: top-1 {NUM}% at {NUM} ms")
REF = re.compile(rf"vs original (PyTorch eager|fp32 LiteRT) {NUM}% at {NUM} ms: {NUM}x faster, ([+-][0-9.]+) points")


def _edgekit(*args: str, timeout: int = 1500) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edgekit", *args], capture_output=True, text=True, timeout=timeout)


def _close(printed: str, value: float, digits: int) -> bool:
    """Whether ``printed`` is ``value`` as the summary rounded it (``digits`` significant or decimal)."""
    return abs(float(printed) - value) <= 0.5 * 10 ** -digits * max(1.0, abs(value)) + 1e-12


def _check_headline(line: str, head: dict[str, Any], opt: dict[str, Any], bench: list[dict[str, Any]]) -> None:
    match = HEAD.match(line)
    assert match, line
    what, label, precision, runtime, top1, p50 = match.groups()
    chosen = opt["chosen"] or opt["closest"]
    assert (what == "optimised") == opt["meets_budget"] == head["meets_budget"]
    assert (label, precision, runtime) == (chosen["label"], chosen["precision"], "LiteRT")
    assert head["artifact"] == chosen["artifact"] and Path(chosen["artifact"]).is_file()
    assert abs(float(top1) - chosen["top1"]) <= 0.005 and abs(float(p50) - chosen["p50_ms"]) <= 5e-4 * chosen["p50_ms"]
    assert 10.0 < chosen["top1"] <= 100.0 and chosen["p50_ms"] > 0
    refs = REF.findall(line)
    assert [r[0] for r in refs] == ["PyTorch eager", "fp32 LiteRT"], line
    original = {r["runtime"]: r for r in opt["original"]["rows"]}
    for (name, r_top1, r_p50, speedup, delta), ref in zip(refs, head["against"]):
        row = original["torch" if name == "PyTorch eager" else "litert"]
        assert ref["artifact"] == row["artifact"] and ref["precision"] == "fp32"
        assert abs(float(r_top1) - row["top1"]) <= 0.005 and 10.0 < row["top1"] <= 100.0
        assert abs(float(r_p50) - row["p50_ms"]) <= 5e-4 * row["p50_ms"] and row["p50_ms"] > 0
        ratio = row["p50_ms"] / chosen["p50_ms"]
        assert ratio > 0 and abs(ref["speedup"] - ratio) < 1e-9 and abs(float(speedup) - ratio) <= 0.005
        assert abs(float(delta) - (chosen["top1"] - row["top1"])) <= 0.006
        # the same model's accuracy as the bench stage measured it, independently, on the same split
        stage_row = next(b for b in bench if b["model"] == "model" and b["runtime"] == row["runtime"]
                         and b["precision"] == "fp32")
        assert abs(stage_row["top1"] - row["top1_all"]) <= 0.01, (stage_row, row)


def test_quickstart_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "qs"
    res = _edgekit("quickstart", "-o", str(out), "--epochs", "2")
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    run = json.loads((out / "run.json").read_text())
    assert [s["stage"] for s in run["stages"]] == ["train", "distill", "export", "bench", "optimize"] == run["computed"]
    assert summary["recipe"] == "quickstart" and summary["epochs"] == 2
    assert set(summary["models"]) == {"model", "student"}
    for m in summary["models"].values():
        assert Path(m["checkpoint"]).is_file() and 10.0 < m["val_top1"] <= 100.0
    targets = {(a["model"], a["target"], a["precision"]) for a in summary["artifacts"]}
    assert targets == {(m, t, "fp32") for m in ("model", "student") for t in ("onnx", "tflite")}
    rows = summary["bench"]
    assert len(rows) == 6 and all(r["error"] is None and r["p50_ms"] > 0 and r["top1"] is not None for r in rows)
    assert Path(summary["report"]).is_file() and Path(summary["optimize"]["report"]).is_file()
    cands = summary["optimize"]["candidates"]
    assert [(c["label"], c["precision"]) for c in cands] == [("unpruned", "int8"), ("macs0.50+kd3", "int8"),
                                                             ("macs0.50+finetune3", "int8")]
    for word in ("compact_cnn", "student", "val top-1", "macs0.50+kd3", "macs0.50+finetune3", "reports:"):
        assert word in res.stdout

    # the summary ends with the headline, and its numbers are optimize.json's, measured in this run
    head = summary["headline"]
    lines = [ln for ln in res.stdout.splitlines() if ln.strip()]
    assert lines[-1] == head["line"]
    opt = json.loads(Path(summary["optimize"]["json"]).read_text())
    _check_headline(lines[-1], head, opt, rows)
    pruned = [c["pruned"] for c in opt["candidates"] if c["plan"]["macs"] is not None]
    assert len(pruned) == 2 and pruned[0] == pruned[1] and Path(pruned[0]).is_file()  # pruned once, recovered twice

    # the optimised artifact's accuracy is what it earns: rerun on the held-out split, it scores the same
    import edgekit

    again = edgekit.bench(head["artifact"], runtime="litert", threads=1, runs=3, warmup=1, data="digits")
    assert abs(again[0]["accuracy"]["halves"]["report"]["top1"] - head["top1"]) <= 0.01  # optimize reports that half

    # the quickstart is the recipe: `edgekit run quickstart` with its settings finds every stage done
    rerun = _edgekit("run", "quickstart", "--set", "training.epochs=2", "-o", str(out), timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert json.loads((out / "run.json").read_text())["computed"] == []

    refused = _edgekit("quickstart", "-o", str(out), timeout=120)
    assert refused.returncode == 2 and "not empty" in refused.stderr


@pytest.mark.parametrize("meets", [True, False])
def test_headline_reads_optimize_json(meets: bool) -> None:
    """The headline from a recorded optimize.json: the chosen artifact (or the closest, said so)
    against the original's torch and fp32 LiteRT rows, with speed-ups and point differences."""
    from edgekit.recipes.quickstart import headline

    rows = [{"runtime": "torch", "precision": None, "artifact": "model.pt", "p50_ms": 0.8, "top1": 98.0, "error": None},
            {"runtime": "onnxruntime", "precision": "fp32", "artifact": "m.onnx", "p50_ms": 0.09, "top1": 98.0,
             "error": None},
            {"runtime": "litert", "precision": "fp32", "artifact": "m.tflite", "p50_ms": 0.1, "top1": 97.5,
             "error": None}]
    cand = {"label": "macs0.50+kd3", "precision": "int8", "artifact": "c.tflite", "p50_ms": 0.04, "top1": 97.0}
    opt = {"budget": {"threads": 1, "runtime": "litert", "ms": 0.05, "max_drop": 1.0}, "original": {"rows": rows},
           "meets_budget": meets, "chosen": cand if meets else None, "closest": None if meets else cand,
           "message": "m"}
    h = headline(opt)
    assert [(r["name"], r["speedup"], r["delta_points"]) for r in h["against"]] == [
        ("PyTorch eager", pytest.approx(20.0), pytest.approx(-1.0)),
        ("fp32 LiteRT", pytest.approx(2.5), pytest.approx(-0.5))]
    assert h["line"].startswith("headline: optimised macs0.50+kd3" if meets else "headline: closest (no candidate")
    assert "20.00x faster, -1.00 points" in h["line"] and "fp32 LiteRT 97.50% at 0.1 ms: 2.50x faster" in h["line"]
    none = headline({**opt, "chosen": None, "closest": None, "message": "every candidate failed"})
    assert none["line"] == "headline: no optimised artifact: every candidate failed" and "against" not in none
