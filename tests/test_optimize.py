"""edgekit optimize: budgets and bad input, the measured search on digits (a candidate that meets
a generous budget, optimize.json, the report), reuse of finished candidates, an impossible budget."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner

from edgekit.cli import main
from edgekit.compress.prune_config import off_target
from edgekit.errors import EdgekitError
from edgekit.optimization.budget import Budget, parse_budget
from edgekit.optimization.config import OptimizeConfig
from edgekit.optimization.plan import Plan

#: The tiny search every end-to-end test shares (same settings -> same candidate keys): KD alone
#: and one pruning step, to keep it short; the last test adds fine-tuning to the same folder.
SMALL = dict(ratios=(0.5,), recovery=("kd",), recovery_epochs=1, steps=1, proxy_size=32, calib_size=32,
             parity_size=32, min_seconds=0.3, precise_bn=10)
SMALL_CLI = ["--ratios", "0.5", "--recovery", "kd", "--recovery-epochs", "1", "--steps", "1", "--proxy-size", "32",
             "--calib-size", "32", "--parity-size", "32", "--min-seconds", "0.3", "--precise-bn", "10"]


def _one_line(res: Any, code: int, text: str) -> str:
    assert res.exit_code == code, (res.exit_code, res.output, res.stderr)
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    assert text in lines[0], lines[0]
    return lines[0]


def test_budget_parsing() -> None:
    assert parse_budget("2ms@litert") == Budget(2.0, "litert")
    b = parse_budget(" 0.5 ms @ onnxruntime ")
    assert (b.ms, b.runtime, b.target, str(b)) == (0.5, "onnxruntime", "onnx", "0.5ms@onnxruntime")
    assert parse_budget("2ms@litert").target == "tflite"
    assert b.met(0.5) and not b.met(0.51) and not b.met(None)
    for bad, words in [("0ms@litert", "> 0"), ("-1ms@litert", "> 0"), ("nanms@litert", "finite"),
                       ("infms@litert", "finite"), ("2@litert", "expected milliseconds"), ("2ms", "expected"),
                       ("2ms@litrt", "did you mean litert"), ("2ms@torch", "not supported"), ("xms@litert", "number")]:
        with pytest.raises(EdgekitError, match=words) as exc:
            parse_budget(bad)
        assert "\n" not in str(exc.value)


@pytest.mark.parametrize("budget, text", [("0ms@litert", "must be > 0"), ("-1ms@litert", "must be > 0"),
                                          ("nanms@litert", "finite"), ("2ms@nosuchruntime", "unknown runtime")])
def test_cli_bad_budget_is_one_line_exit_2(budget: str, text: str, tmp_path: Path) -> None:
    res = CliRunner().invoke(main, ["optimize", str(tmp_path / "x.pt"), "--budget", budget, "-o", str(tmp_path)])
    _one_line(res, 2, text)


@pytest.mark.parametrize("args, text", [(["--threads", "0"], "--threads"), (["--max-drop", "nan"], "--max-drop"),
                                        (["--max-drop", "-1"], "--max-drop"), (["--ratios", "0.5,1"], "--ratios"),
                                        (["--ratios", "0"], "--ratios"), (["--min-seconds", "0"], "--min-seconds"),
                                        (["--precision", "int4"], "--precision"), (["--steps", "0"], "--steps"),
                                        (["--round-to", "0"], "--round-to"), (["--round-to", "nan"], "--round-to"),
                                        (["--scoring", "taylor"], "--scoring"), (["--recovery", "ce"], "--recovery"),
                                        (["--recovery", "kd,,ce"], "unknown recovery 'ce'"),
                                        (["--recovery", " , "], "--recovery")])
def test_cli_bad_numbers_are_one_line_exit_2(args: list[str], text: str, tmp_path: Path) -> None:
    res = CliRunner().invoke(main, ["optimize", str(tmp_path / "x.pt"), "--budget", "2ms@litert",
                                    "-o", str(tmp_path), *args])
    _one_line(res, 2, text)


def test_config_and_plan_checks() -> None:
    assert OptimizeConfig(ratios=(0.25, 0.5, 0.5)).ratios == (0.5, 0.25)  # largest first, once each
    for bad in (dict(threads=0), dict(max_drop=float("nan")), dict(recovery_epochs=-1), dict(ratios=(1.0,)),
                dict(calib_size=0), dict(recovery_lr=0.0), dict(steps=0), dict(scoring="l1"), dict(round_to=0),
                dict(round_to=-16), dict(recovery="ce"), dict(recovery=()), dict(recovery="kd,ce")):
        with pytest.raises(EdgekitError):
            OptimizeConfig(**bad)
    assert OptimizeConfig(max_drop=0).max_drop == 0  # zero loss allowed is a real setting
    cfg = OptimizeConfig()
    assert (cfg.scoring, cfg.steps, cfg.round_to) == ("fisher", 3, "auto") and OptimizeConfig(round_to="8").round_to == 8
    # scoring, steps and the resolved channel multiple change the pruned model: part of every candidate's key
    base = cfg.candidate_settings({"spec": "digits"}, 16)
    for other in (OptimizeConfig(scoring="exact").candidate_settings({"spec": "digits"}, 16),
                  OptimizeConfig(steps=1).candidate_settings({"spec": "digits"}, 16),
                  cfg.candidate_settings({"spec": "digits"}, None)):
        assert Plan.pruned(0.5, 3, "int8", "tflite").key("a", other) != Plan.pruned(0.5, 3, "int8", "tflite").key("a", base)
    p = Plan.pruned(0.5, 3, "int8", "tflite")
    assert p.label == "macs0.50+kd3" and Plan.unpruned("int8", "tflite").label == "unpruned"
    # both recoveries by default, each its own candidate; a list or a comma string, once each, in order
    assert cfg.recovery == ("kd", "finetune") and Plan.pruned(0.5, 5, "int8", "tflite", "finetune").label == "macs0.50+finetune5"
    assert OptimizeConfig(recovery="finetune, kd,finetune").recovery == ("finetune", "kd")
    assert OptimizeConfig(recovery=["kd"]).recovery == ("kd",)
    # the pruned checkpoint's key: shared by the recoveries of a fraction, not by other fractions or pruning settings
    from edgekit.optimization.plan import prune_key

    assert prune_key("a", 0.5, cfg.prune_settings({}, 16)) == prune_key("a", 0.50001, cfg.prune_settings({}, 16))
    assert prune_key("a", 0.5, cfg.prune_settings({}, 16)) == prune_key(
        "a", 0.5, OptimizeConfig(recovery_lr=0.1, calib_size=8).prune_settings({}, 16))
    assert len({prune_key("a", 0.5, cfg.prune_settings({}, 16)), prune_key("b", 0.5, cfg.prune_settings({}, 16)),
                prune_key("a", 0.35, cfg.prune_settings({}, 16)), prune_key("a", 0.5, cfg.prune_settings({}, 8)),
                prune_key("a", 0.5, OptimizeConfig(steps=1).prune_settings({}, 16))}) == 5
    assert Plan.pruned(0.5, 3, "int8", "tflite", "finetune").key("a", base) != p.key("a", base)
    assert Plan.pruned(0.5, 0, "int8", "tflite", "finetune").recovery is None  # 0 epochs: no recovery
    with pytest.raises(EdgekitError, match="unknown recovery"):
        Plan(0.5, "ce", 3, "int8", "tflite")
    assert p.precisions() == ["int8", "fp16", "fp32"] and Plan.unpruned("fp16", "onnx").precisions() == ["fp16", "fp32"]
    settings = {"seed": 0}
    keys = {p.key("a", settings), p.key("b", settings), p.key("a", {"seed": 1}),
            Plan.pruned(0.35, 3, "int8", "tflite").key("a", settings), Plan.pruned(0.5, 3, "fp32", "tflite").key("a", settings)}
    assert len(keys) == 5 and p.key("a", settings) == Plan.pruned(0.5, 3, "int8", "tflite").key("a", settings)


def test_stage_function_survives_importing_the_package() -> None:
    code = "import edgekit.optimization.search, edgekit\nassert callable(edgekit.optimize)\nprint('ok')"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and "ok" in res.stdout, res.stderr


@pytest.fixture(scope="module")
def one_thread() -> Any:
    """Training on 1 thread: on a shared 2-core machine 2 torch threads spin against other work."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def searched(digits_ckpt: Path, tmp_path_factory: pytest.TempPathFactory, one_thread: Any) -> tuple[Path, dict]:
    """A generous budget, every plan of the tiny grid tried: the unpruned int8 model and CURL 50 % + KD 1 epoch."""
    import edgekit

    out = tmp_path_factory.mktemp("optimize")
    doc = edgekit.optimize(digits_ckpt, None, out, budget="1000ms@litert", max_drop=100, exhaustive=True,
                           progress=False, **SMALL)
    return out, doc


def test_generous_budget_picks_a_candidate_that_meets_it(searched: tuple[Path, dict]) -> None:
    out, doc = searched
    on_disk = json.loads((out / "optimize.json").read_text())
    assert on_disk["chosen"]["key"] == doc["chosen"]["key"] and on_disk["format"] == "edgekit.optimize"
    labels = [c["label"] for c in doc["candidates"]]
    assert doc["meets_budget"] and doc["computed"] == len(labels) and doc["reused"] == 0
    pruned = doc["candidates"][1]
    # compact_cnn's 24-wide layers can keep only 16 or 24 channels: where rounding lands off the fraction
    # (which depends on the trained weights, so on the CPU that trained them) the search also tries it
    # with unrounded counts and measures both; where it lands on it, it does not
    off = off_target(pruned["macs_ratio"], 0.5)
    assert labels == ["unpruned", "macs0.50+kd1"] + (["macs0.50u+kd1"] if off else [])
    # at most the asked fraction, give or take the tolerance; counts rounded to 16
    assert 0.3 < pruned["macs_ratio"] <= 0.51 and pruned["precision"] == "int8"
    unrounded = doc["candidates"][2] if off else None
    assert unrounded is None or (0.49 <= unrounded["macs_ratio"] <= 0.51 and unrounded["pruned"] != pruned["pruned"])
    assert Path(pruned["checkpoint"]).is_file() and Path(pruned["folder"]).parent == out / "candidates"
    # Fisher-scored and rounded to LiteRT's channel multiple (round_to auto for a litert budget)
    from edgekit.checkpoint import load_checkpoint
    from edgekit.compress.rounding import round_to_for

    pruned_ckpt = load_checkpoint(pruned["pruned"])
    block = round_to_for("litert")
    assert pruned_ckpt.provenance["round_to"] == block and pruned_ckpt.provenance["scoring"] == "fisher"
    widths = [m.out_channels for m in pruned_ckpt.model.modules() if isinstance(m, torch.nn.Conv2d)]
    original = [m.out_channels for m in load_checkpoint(doc["checkpoint"]).model.modules()
                if isinstance(m, torch.nn.Conv2d)]
    assert widths != original and all(w % block == 0 or w == o for w, o in zip(widths, original)), (widths, original)
    if unrounded is not None:
        loose = load_checkpoint(unrounded["pruned"])
        assert loose.provenance["round_to"] is None and loose.provenance["scoring"] == "fisher"
        assert any(m.out_channels % block for m in loose.model.modules() if isinstance(m, torch.nn.Conv2d))
    chosen = doc["chosen"]
    assert chosen["p50_ms"] <= 1000 and Path(chosen["artifact"]).is_file()
    assert chosen["artifact"].endswith(".tflite") and Path(chosen["artifact"] + ".json").is_file()  # manifest
    # the most accurate of the eligible candidates (ties: the faster), on the select half
    best = max(doc["candidates"], key=lambda c: (c["select_top1"], -c["p50_ms"]))
    assert chosen["key"] == best["key"]
    orig = doc["original"]
    assert 10 < orig["top1"] <= 100 and chosen["drop"] == pytest.approx(orig["top1"] - chosen["top1"])
    assert chosen["select_drop"] == pytest.approx(orig["select_top1"] - chosen["select_top1"])
    # what is reported is the other half: the two halves split the held-out split, with no image in both
    sel = doc["selection"]
    assert sel["choose_on"] == "select" and sel["report_on"] == "report" and sel["select_n"] and sel["report_n"]
    assert {r["runtime"] for r in orig["rows"]} == {"torch", "onnxruntime", "litert"}
    assert orig["latency_ms"] == next(r["p50_ms"] for r in orig["rows"] if r["runtime"] == "litert")
    sp = chosen["speedups"]
    assert set(sp) == {"torch", "onnxruntime", "litert"}
    assert sp["litert"]["speedup"] == pytest.approx(sp["litert"]["p50_ms"] / chosen["p50_ms"])
    assert doc["pareto"] and {p["key"] for p in doc["pareto"]} <= {c["key"] for c in doc["candidates"]}
    report = Path(doc["report"])
    assert report.is_file() and "Pareto" in report.with_suffix(".md").read_text()
    rows = json.loads(Path(doc["results"]).read_text())["rows"]
    assert len(rows) == 3 + len(labels) and all(r["lineage"]["root_sha256"] == orig["sha256"] for r in rows)
    chosen_row = next(r for r in rows if r["artifact"] == chosen["artifact"])
    halves = chosen_row["accuracy"]["halves"]
    assert halves["select"]["n"] + halves["report"]["n"] == chosen_row["accuracy"]["n"] == sel["select_n"] + sel["report_n"]
    assert chosen["top1"] == pytest.approx(halves["report"]["top1"])
    assert chosen["select_top1"] == pytest.approx(halves["select"]["top1"])


def _stamps(out: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime_ns for p in (out / "candidates").rglob("*") if p.is_file()}


def test_rerun_reuses_every_candidate(searched: tuple[Path, dict], digits_ckpt: Path) -> None:
    import edgekit

    out, first = searched
    before = _stamps(out)
    doc = edgekit.optimize(digits_ckpt, None, out, budget="1000ms@litert", max_drop=100, exhaustive=True,
                           resume=True, progress=False, **SMALL)
    n = len(first["candidates"])
    assert doc["computed"] == 0 and doc["reused"] == n and all(c["reused"] for c in doc["candidates"])
    assert _stamps(out) == before  # nothing under candidates/ was rewritten
    assert doc["chosen"]["key"] == first["chosen"]["key"]


def test_impossible_budget_names_the_closest(searched: tuple[Path, dict], digits_ckpt: Path) -> None:
    out, _ = searched
    res = CliRunner().invoke(main, ["optimize", str(digits_ckpt), "--budget", "0.0001ms@litert", "-o", str(out),
                                    *SMALL_CLI])
    assert res.exit_code == 1 and "Traceback" not in res.stderr, res.stderr
    line = res.stderr.strip().splitlines()[-1]  # after the progress lines: the verdict, one line
    n = len(json.loads((out / "optimize.json").read_text())["candidates"])
    assert line.startswith(f"edgekit: no candidate of {n} meets 0.0001ms@litert within 1 points"), line
    doc = json.loads((out / "optimize.json").read_text())
    assert not doc["meets_budget"] and doc["chosen"] is None and doc["computed"] == 0
    fastest = min(doc["candidates"], key=lambda c: c["p50_ms"])  # one recovery per architecture here
    assert doc["closest"]["key"] == fastest["key"] and f"closest: {fastest['label']}" in line
    assert "closest:" in res.stdout and doc["report"] in res.stdout


def test_closest_over_budget_is_the_best_recovery_of_the_fastest_fraction() -> None:
    """Nothing meets the budget: the closest is the fastest MACs fraction, and of its recoveries (one
    architecture, latencies apart by timing noise) the more accurate, not the one timed 1 % faster."""
    from edgekit.optimization.summary import _closest

    def rec(macs: float | None, p50: float, top1: float, meets: bool = False, error: str | None = None) -> dict:
        return {"plan": {"macs": macs}, "p50_ms": p50, "top1": top1, "select_top1": top1, "meets_budget": meets,
                "error": error}

    kd, ft = rec(0.25, 0.1171, 94.7), rec(0.25, 0.1177, 96.4)
    assert _closest([rec(None, 0.3, 97.5), rec(0.35, 0.156, 96.4), kd, ft]) is ft
    assert _closest([rec(0.5, 0.2, 97.0), rec(0.25, None, 99.0, error="refused"), kd]) is kd
    under = rec(0.35, 0.15, 90.0, meets=True)
    assert _closest([kd, ft, under, rec(0.5, 0.16, 89.0, meets=True)]) is under  # under the budget first
    assert _closest([rec(0.5, None, 0.0, error="x")]) is None


def test_split_halves_are_fixed_stratified_and_disjoint() -> None:
    import numpy as np

    from edgekit.benchmark.accuracy import split_halves

    targets = np.repeat(np.arange(4), 10)
    correct = targets % 2 == 0
    a, b = split_halves(correct, targets), split_halves(correct, targets)
    assert a == b and a["select"]["n"] == a["report"]["n"] == 20
    assert a["select"]["top1"] == a["report"]["top1"] == 50.0  # stratified: each half holds 5 of every class


def test_grid_goes_past_a_rounded_fit_while_unrounded_counts_keep_more(monkeypatch: pytest.MonkeyPatch) -> None:
    """0.75 rounded to 16 channels lands at 0.47 of the MACs and fits: 0.5 unrounded keeps more of
    the network and is tried (it may fit and be more accurate); 0.35 is smaller than the fit: skipped."""
    from types import SimpleNamespace

    from edgekit.optimization import search as search_mod
    from edgekit.optimization.candidate import Candidate

    actual = {(None, False): 1.0, (0.75, False): 0.47, (0.75, True): 0.75, (0.5, False): 0.47, (0.5, True): 0.5,
              (0.35, False): 0.33, (0.35, True): 0.35}
    ran: list[tuple[float | None, bool]] = []

    def fake_run(search: Any, plan: Plan, say: Any) -> Candidate:
        key = (plan.macs, bool(plan.unrounded))
        ran.append(key)
        macs = actual[key]
        return Candidate(plan, f"k{len(ran)}", Path("."), {"p50_ms": 10 * macs, "accuracy": {"top1": 90.0}},
                         metrics={"macs_ratio": macs})

    monkeypatch.setattr(search_mod, "run_candidate", fake_run)
    cfg = OptimizeConfig(ratios=(0.75, 0.5, 0.35), refine=0, recovery=("kd",))
    fake = SimpleNamespace(cfg=cfg, budget=parse_budget("6ms@litert"), round_to=16)
    search_mod._search(fake, 90.0, search_mod.Progress(False))
    assert ran == [(None, False), (0.75, False), (0.75, True), (0.5, True)]


def test_unrounded_plans_have_their_own_label_and_key() -> None:
    from edgekit.optimization.plan import prune_key

    rounded, loose = Plan.pruned(0.5, 5, "int8", "tflite", "kd"), Plan.pruned(0.5, 5, "int8", "tflite", "kd", True)
    assert (rounded.label, loose.label) == ("macs0.50+kd5", "macs0.50u+kd5") and loose.as_dict()["unrounded"]
    settings = {"seed": 0}
    assert rounded.key("a", settings) != loose.key("a", settings)
    # a rounded plan's key is what it was before the field existed: earlier searches' candidates are reused
    legacy = {"macs": 0.5, "recovery": "kd", "recovery_epochs": 5, "precision": "int8", "target": "tflite"}
    text = json.dumps({"parent": "a", "plan": legacy, "settings": settings}, sort_keys=True)
    import hashlib

    assert rounded.key("a", settings) == hashlib.sha256(text.encode()).hexdigest()[:16]
    with pytest.raises(EdgekitError, match="nothing to recover or round"):
        Plan(None, None, 0, "int8", "tflite", True)
    cfg = OptimizeConfig()
    assert prune_key("a", 0.5, cfg.prune_settings({}, 16)) != prune_key("a", 0.5, cfg.prune_settings({}, None))
    from edgekit.compress.prune_config import off_target

    assert off_target(0.434, 0.5) and off_target(0.655, 0.75) and not off_target(0.737, 0.75)
    assert not off_target(0.5, 0.5) and off_target(0.52, 0.5)


def test_resume_needs_an_earlier_search(tmp_path: Path) -> None:
    import edgekit

    with pytest.raises(EdgekitError, match="nothing to resume"):
        edgekit.optimize(tmp_path / "x.pt", None, tmp_path, budget="2ms@litert", resume=True, progress=False)


def test_killed_candidate_resumes_at_its_first_missing_stage(searched: tuple[Path, dict], digits_ckpt: Path) -> None:
    """A candidate killed after recovery (no artifact, no bench row) keeps its pruned and recovered checkpoints."""
    import edgekit

    out, first = searched
    pruned = next(c for c in first["candidates"] if c["plan"]["macs"] is not None)
    folder = Path(pruned["folder"])
    for p in folder.iterdir():
        if p.name.startswith("bench.") or ".tflite" in p.name or p.name == "manifest.json":
            p.unlink()
    kept = {p: p.stat().st_mtime_ns for p in (Path(pruned["pruned"]), Path(pruned["checkpoint"]))}
    doc = edgekit.optimize(digits_ckpt, None, out, budget="1000ms@litert", max_drop=100, exhaustive=True,
                           progress=False, **SMALL)
    assert doc["computed"] == 1 and doc["reused"] == len(first["candidates"]) - 1
    assert {p: p.stat().st_mtime_ns for p in kept} == kept  # neither pruned nor recovered again
    again = next(c for c in doc["candidates"] if c["key"] == pruned["key"])
    assert Path(again["artifact"]).is_file() and again["top1"] == pytest.approx(pruned["top1"], abs=2.0)


def test_an_unreachable_ratio_is_a_failed_candidate_not_a_failed_search(digits_ckpt: Path, tmp_path: Path,
                                                                        one_thread: Any) -> None:
    """min_keep 0.3 cannot reach 5 % of the MACs: that plan is recorded as failed, kept, and the search goes on."""
    import edgekit

    opts = {**SMALL, "ratios": (0.05,), "refine": 0}
    doc = edgekit.optimize(digits_ckpt, None, tmp_path, budget="1000ms@litert", max_drop=100, exhaustive=True,
                           progress=False, **opts)
    failed = next(c for c in doc["candidates"] if c["plan"]["macs"] == 0.05)
    assert "compression failed" in failed["error"] and "unreachable" in failed["error"]
    assert not failed["meets_budget"] and doc["chosen"]["plan"]["macs"] is None  # the unpruned model
    again = edgekit.optimize(digits_ckpt, None, tmp_path, budget="1000ms@litert", max_drop=100, exhaustive=True,
                             progress=False, **opts)
    assert again["computed"] == 0  # the refusal is kept like any finished candidate


def test_both_recoveries_share_one_pruned_checkpoint(searched: tuple[Path, dict], digits_ckpt: Path,
                                                     one_thread: Any) -> None:
    """``recovery=("kd", "finetune")``: the fraction's KD candidate of the earlier search is reused, the
    fine-tuned one starts from the same pruned checkpoint (not pruned again) and is its own candidate,
    and the chosen one is the more accurate (last in this file: it adds a candidate)."""
    import edgekit
    from edgekit.checkpoint import load_checkpoint

    out, first = searched
    kd = first["candidates"][1]
    shared = Path(kd["pruned"])
    stamp = shared.stat().st_mtime_ns
    doc = edgekit.optimize(digits_ckpt, None, out, budget="1000ms@litert", max_drop=100, exhaustive=True,
                           progress=False, **{**SMALL, "recovery": ("kd", "finetune")})
    off = len(first["candidates"]) == 3  # rounding landed off the fraction: unrounded plans too
    assert [c["label"] for c in doc["candidates"]] == ["unpruned", "macs0.50+kd1", "macs0.50+finetune1"] + (
        ["macs0.50u+kd1", "macs0.50u+finetune1"] if off else [])
    assert doc["computed"] == (2 if off else 1) and doc["reused"] == len(first["candidates"])
    cand = doc["candidates"][2]
    loose = doc["candidates"][3:]
    assert not off or loose[0]["pruned"] == loose[1]["pruned"] != str(kd["pruned"])  # each rounding pruned once
    assert cand["key"] != kd["key"] and Path(cand["artifact"]).is_file()
    assert cand["pruned"] == str(shared) and shared.stat().st_mtime_ns == stamp  # pruned once for both
    assert shared.parent == out / "pruned" and cand["macs_ratio"] == kd["macs_ratio"]
    tuned = load_checkpoint(cand["checkpoint"])
    pruned = load_checkpoint(shared)
    assert tuned.provenance["stage"] == "finetune" and tuned.provenance["parent"] == pruned.sha256
    assert 10 < tuned.metrics["val_top1"] <= 100 and tuned.metrics["val_top1"] != pruned.metrics["top1_pruned_bn"]
    best = max(doc["candidates"], key=lambda c: (c["select_top1"], -c["p50_ms"]))
    assert doc["chosen"]["key"] == best["key"]
