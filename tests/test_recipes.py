"""Recipes in models/: every shipped recipe validates; bad overrides are one line, exit 2;
``edgekit run`` runs a shrunken recipe end to end, reuses every finished stage on a rerun, and
recomputes only the changed stage and those downstream of it."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from edgekit.cli import main
from edgekit.recipes.load import RelativeBudget, available_recipes, load_recipe, parse_recipe_budget

MODELS = Path(__file__).resolve().parents[1] / "models"
#: what the image-folder recipes require
REQUIRED = {"resnet18_imagefolder": ["data=imagefolder:/nonexistent/images"],
            "mobilenet_v2_imagefolder": ["data=imagefolder:/nonexistent/images"]}
#: compact_cnn_digits shrunk to seconds: tiny data, one epoch everywhere, ONNX fp32 only, no optimize
SMALL = ["data=synthetic:classes=4,n=160", "training.epochs=1", "training.batch_size=32", "training.precise_bn=0",
         "training.arch_kwargs={width_mult: 0.5}", "prune.proxy_size=32", "prune.precise_bn=0", "distill.epochs=1",
         "distill.batch_size=32", "distill.precise_bn=0", "export.targets=[onnx]", "export.precision=[fp32]",
         "export.calib_size=16", "export.parity_size=16", "bench.runtimes=[onnxruntime]", "bench.warmup=1",
         "bench.min_seconds=0.05", "bench.report=false", "optimize=null"]


def _sets(items: list[str]) -> list[str]:
    return [a for item in items for a in ("--set", item)]


def test_every_shipped_recipe_loads_and_validates() -> None:
    names = sorted(p.stem for p in MODELS.glob("*.yaml"))
    assert {"compact_cnn_digits", "resnet18_imagefolder", "mobilenet_v2_imagefolder",
            "tiny_age_net_ordinal"} <= set(names) <= set(available_recipes())
    for name in names:
        rec = load_recipe(MODELS / f"{name}.yaml", REQUIRED.get(name, []))
        assert rec.name == name and rec.training.epochs >= 1 and rec.export and rec.bench
        assert rec.prune is not None or rec.distill is not None  # every recipe compresses
    age = load_recipe("tiny_age_net_ordinal")
    assert (age.training.task, age.training.loss, age.training.label_range, age.training.optimizer,
            age.training.lr, age.data) == ("label_distribution", "dldl", "0:100:1", "adam", 1e-3,
                                           "ordinal:n=1000,size=64")
    assert load_recipe("mobilenet_v2_imagefolder", REQUIRED["mobilenet_v2_imagefolder"]).training.input_size == 96


def test_overrides_are_applied_and_typed() -> None:
    rec = load_recipe("compact_cnn_digits", ["training.epochs=2", "export.precision=[fp32]", "optimize=null",
                                             "optimize.budget=2ms@litert", "optimize.ratios=[0.5,0.25]"])
    assert rec.training.epochs == 2 and rec.export.precision == ["fp32"]
    assert rec.optimize.ratios == (0.5, 0.25) and str(rec.budget) == "2ms@litert"
    assert load_recipe("compact_cnn_digits", ["optimize=null"]).optimize is None
    assert parse_recipe_budget("0.25x@litert") == RelativeBudget(0.25, "litert")
    assert RelativeBudget(0.25, "litert").resolve(2.0).ms == 0.5


@pytest.mark.parametrize("recipe, sets, text", [
    ("compact_cnn_digits", ["trainng.epochs=2"], "unknown recipe section 'trainng'; did you mean training"),
    ("compact_cnn_digits", ["training.epoch=2"], "training: unknown training option 'epoch'; did you mean epochs"),
    ("compact_cnn_digits", ["training.epochs=0"], "training: epochs must be a positive integer"),
    ("compact_cnn_digits", ["training.lr=abc"], "training: lr must be a number"),
    ("compact_cnn_digits", ["prune.method=curll"], "prune: unknown pruning method 'curll'"),
    ("compact_cnn_digits", ["export.precision=[int4]"], "export: unknown precision 'int4'"),
    ("compact_cnn_digits", ["bench.threads=0"], "bench: thread count must be a positive integer"),
    ("compact_cnn_digits", ["bench.min_secs=1"], "did you mean min_seconds"),
    ("compact_cnn_digits", ["optimize.budget=2@litert"], "expected milliseconds at a runtime"),
    ("compact_cnn_digits", ["bench=null"], "budget 0.5x@litert needs the bench stage"),
    ("compact_cnn_digits", ["distill.student=no_such_net"], "no_such_net"),
    ("compact_cnn_digits", ["arch=compact_cn"], "compact_cn"),
    ("compact_cnn_digits", ["training.epochs"], "bad override 'training.epochs'; expected KEY=VALUE"),
    ("resnet18_imagefolder", [], "resnet18_imagefolder: data is required (e.g. --set data=imagefolder:PATH)"),
    ("mobilenet_v2_imagefolder", ["training.epochs=1"], "data is required"),
    ("no_such_recipe", [], "unknown recipe 'no_such_recipe'"),
])
def test_bad_recipe_input_is_one_line_exit_2(recipe: str, sets: list[str], text: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["run", recipe, *_sets(sets), "-o", str(out)])
    assert res.exit_code == 2, (res.exit_code, res.output)
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    assert text in lines[0], lines[0]
    assert not out.exists()  # validated before anything is written


def _run(out: Path, extra: list[str] = ()) -> dict[str, Any]:
    res = CliRunner().invoke(main, ["run", str(MODELS / "compact_cnn_digits.yaml"), *_sets([*SMALL, *extra]),
                                    "-o", str(out)])
    assert res.exit_code == 0, (res.output, res.stderr)
    return json.loads((out / "run.json").read_text())


def test_run_end_to_end_reuses_and_recomputes_downstream_only(tmp_path: Path) -> None:
    out = tmp_path / "run"
    first = _run(out)
    stages = [s["stage"] for s in first["stages"]]
    assert stages == ["train", "prune", "distill", "export", "bench"] == first["computed"]
    by = {s["stage"]: s for s in first["stages"]}
    for name in ("train", "prune", "distill"):
        assert (out / name / "model.pt").is_file() and len(by[name]["outputs"]["sha256"]) == 64
        assert (out / name / "stage.json").is_file()
    arts = by["export"]["outputs"]["artifacts"]
    assert sorted(Path(a["path"]).name for a in arts) == ["distill.fp32.onnx", "train.fp32.onnx"]
    rows = by["bench"]["outputs"]["rows"]
    assert len(rows) == 2 and all(r["p50_ms"] > 0 and r["top1"] is not None and not r["error"] for r in rows)
    assert first["resolved"]["training"]["epochs"] == 1 and first["resolved"]["optimize"] is None

    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and p.name != "run.json"}
    again = _run(out)
    assert again["computed"] == [] and all(s["reused"] for s in again["stages"])
    assert [s["key"] for s in again["stages"]] == [s["key"] for s in first["stages"]]
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes  # nothing rewritten

    changed = _run(out, ["prune.target=macs=0.7"])
    assert changed["computed"] == ["prune", "distill", "export", "bench"]
    keys = {s["stage"]: s["key"] for s in changed["stages"]}
    assert keys["train"] == by["train"]["key"] and all(keys[s] != by[s]["key"] for s in changed["computed"])
    assert (out / "train" / "model.pt").stat().st_mtime_ns == mtimes[out / "train" / "model.pt"]


@pytest.mark.slow
def test_run_with_a_relative_budget_ends_in_optimize(tmp_path: Path) -> None:
    """The recipe's own optimize section, its relative budget resolved from the bench stage."""
    small = [s for s in SMALL if not s.startswith(("export.targets", "bench.runtimes", "optimize"))]
    out = tmp_path / "run"
    res = CliRunner().invoke(main, ["run", "compact_cnn_digits", *_sets(small), "--set", "export.targets=[tflite]",
                                    "--set", "bench.runtimes=[litert]", "--set", "optimize.budget=20x@litert",
                                    "--set", "optimize.ratios=[0.5]", "--set", "optimize.recovery_epochs=1",
                                    "--set", "optimize.refine=0", "--set", "optimize.proxy_size=32",
                                    "--set", "optimize.calib_size=16", "--set", "optimize.parity_size=16",
                                    "--set", "optimize.min_seconds=0.3", "--set", "optimize.precise_bn=0",
                                    "-o", str(out)])
    assert res.exit_code == 0, (res.output, res.stderr)
    doc = json.loads((out / "run.json").read_text())
    opt = doc["stages"][-1]
    assert opt["stage"] == "optimize" and opt["outputs"]["meets_budget"] is True
    result = json.loads((out / "optimize" / "optimize.json").read_text())
    assert result["chosen"]["artifact"]
