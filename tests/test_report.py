"""The report's speed-ups against the original model of a lineage, and legible plot labels.

Result rows are built by hand with the bench schema, so the expected ratios are exact.
"""
from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from matplotlib.text import Text

from edgekit.benchmark import plots
from edgekit.benchmark.report import report
from edgekit.benchmark.schema import FIELDS, results_document
from edgekit.benchmark.speedup import speedups

MACHINE = {"cpu": "Test CPU", "hostname": "box", "arch": "x86_64", "logical_cores": 4, "usable_cores": 4}
ORIGINAL = {"sha256": "a" * 64, "name": "resnet", "parent_sha256": None, "root_sha256": "a" * 64,
            "root_name": "resnet"}
PRUNED = {"sha256": "b" * 64, "name": "resnet_pruned", "parent_sha256": "a" * 64, "root_sha256": "a" * 64,
          "root_name": "resnet"}
DISTILLED = {"sha256": "c" * 64, "name": "student", "parent_sha256": "b" * 64, "root_sha256": "a" * 64,
             "root_name": "resnet"}
DELEGATE = {"torch": "eager", "litert": "xnnpack", "onnxruntime": "CPUExecutionProvider"}


def row(model: str, runtime: str, p50: float, *, precision: str = "fp32", threads: int = 1, batch: int = 1,
        lineage: dict[str, Any] | None = None, top1: float | None = None, machine: dict | None = None,
        error: str | None = None) -> dict[str, Any]:
    r = {k: None for k in FIELDS}
    r.update(model=model, artifact=f"{model}.{runtime}", runtime=runtime, delegate=DELEGATE[runtime],
             threads=threads, batch=batch, precision=precision, machine=machine or MACHINE, lineage=lineage,
             error=error, latencies_ms=[])
    if error is None:
        r.update(p50_ms=p50, mean_ms=p50, p90_ms=p50 * 1.1, p99_ms=p50 * 1.2, std_ms=p50 * 0.01, timed_runs=20,
                 model_size_mb=1.0, noisy=False, cv=0.01,
                 accuracy={"data": "digits", "n": 100, "top1": top1} if top1 is not None else None)
    return r


def lineage_rows() -> list[dict[str, Any]]:
    return [
        row("resnet", "torch", 40.0, lineage=ORIGINAL, top1=90.0),
        row("resnet", "torch", 24.0, threads=2, lineage=ORIGINAL),
        row("resnet", "litert", 20.0, lineage=ORIGINAL, top1=90.0),
        row("resnet", "litert", 8.0, precision="int8", lineage=ORIGINAL, top1=89.5),
        row("resnet_pruned", "torch", 16.0, lineage=PRUNED, top1=88.0),
        row("resnet_pruned", "litert", 4.0, precision="int8", lineage=PRUNED, top1=87.0),
        row("resnet_pruned", "litert", 3.0, precision="int8", threads=2, lineage=PRUNED),
        row("student", "onnxruntime", 2.0, lineage=DISTILLED, top1=85.0),
    ]


def _with_source(rows: list[dict[str, Any]], source: str = "results") -> list[dict[str, Any]]:
    return [{**r, "_source": source} for r in rows]


def test_speedups_against_own_and_original_model() -> None:
    rows = _with_source(lineage_rows())
    sp = speedups(rows)
    # the original's own rows: 1.00x against itself; int8 TFLite against its fp32 TFLite
    assert (sp[0].own, sp[0].original_torch, sp[0].original_runtime) == (1.0, 1.0, 1.0)
    assert (sp[3].own, sp[3].original_torch, sp[3].original_runtime) == (5.0, 5.0, 2.5)
    assert sp[3].original_precision == "fp32"
    # pruned int8 TFLite: vs its own torch row, vs the original's torch row, vs the original fp32 TFLite
    assert sp[5].own == pytest.approx(16 / 4) and sp[5].own_model == "resnet_pruned"
    assert sp[5].original_torch == pytest.approx(40 / 4) and sp[5].original == "resnet"
    assert sp[5].original_runtime == pytest.approx(20 / 4) and sp[5].original_precision == "fp32"
    # two threads: only two-thread references (the pruned checkpoint has no two-thread torch row)
    assert sp[6].own is None and sp[6].original_torch == pytest.approx(24 / 3) and sp[6].original_runtime is None
    # a distilled student two generations down: its root is still the original; no ONNX row of the original
    assert sp[7].own is None and sp[7].original_torch == pytest.approx(40 / 2) and sp[7].original_runtime is None


def test_a_model_that_is_its_own_root_is_its_own_original() -> None:
    own_root = {"sha256": "d" * 64, "name": "student", "root_sha256": "d" * 64, "root_name": "compact_cnn_s"}
    rows = _with_source([row("student", "torch", 6.0, lineage=own_root),
                         row("student", "litert", 2.0, lineage=own_root)])
    sp = speedups(rows)
    assert sp[1].original == "student" and sp[1].own == sp[1].original_torch == pytest.approx(3.0)


def test_same_runtime_reference_falls_back_to_the_rows_precision() -> None:
    rows = _with_source([row("resnet", "litert", 10.0, precision="int8", lineage=ORIGINAL),
                         row("resnet_pruned", "litert", 5.0, precision="int8", lineage=PRUNED)])
    sp = speedups(rows)
    assert sp[1].original_runtime == pytest.approx(2.0) and sp[1].original_precision == "int8"


def test_references_come_from_the_same_machine_only() -> None:
    original = _with_source([row("resnet", "torch", 40.0, lineage=ORIGINAL)], "before")
    pruned = _with_source([row("resnet_pruned", "litert", 4.0, precision="int8", lineage=PRUNED)], "after")
    assert speedups(original + pruned)[1].original_torch == pytest.approx(10.0)
    elsewhere = _with_source([row("resnet_pruned", "litert", 4.0, precision="int8", lineage=PRUNED,
                                  machine={**MACHINE, "hostname": "phone"})], "after")
    assert speedups(original + elsewhere)[1].original_torch is None


def test_rows_without_lineage_keep_the_name_based_baseline() -> None:
    rows = _with_source([row("net", "torch", 30.0), row("net", "onnxruntime", 10.0),
                         row("net_pruned", "onnxruntime", 5.0)])
    sp = speedups(rows)
    assert sp[1].own == pytest.approx(3.0) and sp[1].original_torch is None
    # a file with one torch model: it is the own baseline of every row (today's behaviour)
    assert sp[2].own == pytest.approx(6.0) and sp[2].own_model == "net"
    # --baseline names the original explicitly
    sp = speedups(rows, baseline="net")
    assert sp[2].original_torch == pytest.approx(6.0) and sp[2].original_runtime == pytest.approx(2.0)
    # a lineage row never borrows another model's torch row as its own
    assert speedups(_with_source([row("resnet", "torch", 40.0, lineage=ORIGINAL),
                                  row("x", "litert", 4.0, lineage=PRUNED)]))[1].own is None


def _md_row(md: str, *cells: str) -> list[str]:
    needle = "| " + " | ".join(cells) + " |"
    line = next(ln for ln in md.splitlines() if ln.startswith(needle))
    return [c.strip() for c in line.strip().strip("|").split("|")]


def test_report_columns_and_method_text(tmp_path: Path) -> None:
    rows = lineage_rows() + [row("resnet_pruned", "onnxruntime", 0, lineage=PRUNED, error="runtime missing")]
    rows[2]["device"] = "cpu"
    rows[-2].update(device="Pixel 7", browser="Chrome 150")  # a phone's browser row (edgekit bench --runtime browser)
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results_document(rows, MACHINE, "edgekit bench ...")))
    report([path], tmp_path / "rep")
    md = (tmp_path / "rep" / "report.md").read_text()
    header = _md_row(md, "model", "runtime")
    assert dict(zip(header, _md_row(md, "resnet", "litert", "xnnpack", "fp32", "1")))["device"] == "cpu"
    assert dict(zip(header, _md_row(md, *[rows[-2][k] for k in ("model", "runtime", "delegate")])))["device"] == \
        "Pixel 7 (Chrome 150)"
    cells = dict(zip(header, _md_row(md, "resnet_pruned", "litert", "xnnpack", "int8", "1")))
    assert cells["x own torch"] == "4.00x"
    assert cells["x original torch"] == "10.00x"
    assert cells["x original, same runtime"] == "5.00x (vs fp32)"
    assert "original: resnet" in cells["flags"]
    torch_cells = dict(zip(header, _md_row(md, "resnet", "torch", "eager", "fp32", "1")))
    assert [torch_cells[k] for k in ("x own torch", "x original torch", "x original, same runtime")] == \
        ["1.00x", "1.00x", "1.00x"]
    method = md.split("## How these numbers were measured", 1)[1]
    for words in ("x own torch", "x original torch", "x original, same runtime", "same threads and batch",
                  "root of the row's lineage", "pruned int8 TFLite model against the original fp32 TFLite"):
        assert words in method
    assert (tmp_path / "rep" / "pareto.png").stat().st_size > 1000
    assert "runtime missing" in md


def _overlap(a: Any, b: Any) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


@pytest.mark.parametrize("n", [6, 24])
def test_pareto_labels_never_overlap_when_points_crowd(n: int) -> None:
    # n rows within 2 % latency and 0.5 points of accuracy, far from one more row so that they crowd into a few
    # pixels; long labels: at a fixed offset they print over each other
    rows = [row(f"model_{i}", ["torch", "litert", "onnxruntime"][i % 3], 10.0 + 0.01 * i, top1=90 + 0.02 * i)
            for i in range(n)] + [row("far", "torch", 100.0, top1=20.0)]
    labels = [f"model_{i} {r['runtime']}/{r['delegate']} {r['precision']} t1 [results]" for i, r in enumerate(rows)]
    fig = plots.pareto_figure(rows, labels)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    texts = [t for t in fig.axes[0].texts if t.get_text() in labels]
    assert sorted(t.get_text() for t in texts) == sorted(labels)
    boxes = [Text.get_window_extent(t, renderer) for t in texts]  # the text alone, without its leader line
    frame = fig.bbox
    for box in boxes:
        assert frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1
    clashes = [(a.get_text(), b.get_text()) for (a, ba), (b, bb) in itertools.combinations(zip(texts, boxes), 2)
               if _overlap(ba, bb)]
    assert not clashes
    legend = fig.axes[0].get_legend().get_window_extent(renderer)
    assert not any(_overlap(b, legend) for b in boxes)
    assert plots.pareto_plot(rows, labels)[:4] == b"\x89PNG"
