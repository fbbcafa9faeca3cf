"""`edgekit quickstart` runs the whole pipeline end to end and says what it did."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_quickstart_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "qs"
    res = subprocess.run([sys.executable, "-m", "edgekit", "quickstart", "-o", str(out), "--epochs", "2"],
                         capture_output=True, text=True, timeout=1500)
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["models"]) == {"model", "pruned", "student"}
    for m in summary["models"].values():
        assert (out / m["checkpoint"]).is_file() and 10.0 < m["val_top1"] <= 100.0
    targets = {(a["model"], a["target"], a["precision"]) for a in summary["artifacts"]}
    assert {("model", "onnx", "fp32"), ("model", "tflite", "fp32"), ("model", "tflite", "int8"),
            ("pruned", "onnx", "fp32"), ("student", "tflite", "fp32")} <= targets
    for a in summary["artifacts"]:
        assert (out / "artifacts" / a["file"]).exists()
    rows = summary["bench"]
    assert rows and all(r["error"] is None and r["p50_ms"] > 0 for r in rows)
    assert all(r["top1"] is not None for r in rows)
    assert Path(summary["report"]).is_file() and (out / "report" / "report.md").is_file()
    for word in ("model", "pruned", "student", "val top-1", "report:"):
        assert word in res.stdout
    again = subprocess.run([sys.executable, "-m", "edgekit", "quickstart", "-o", str(out)],
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 2 and "not empty" in again.stderr
