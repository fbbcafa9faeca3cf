"""Pruning criteria as registered objects (:mod:`edgekit.compress.criteria`).

A criterion registered here, in the test, prunes through the public API and the CLI with no other
edit; the built-ins answer what the pipeline used to ask by comparing names (ranking, seeding,
precision, default steps, what they need); unknown names are one line listing the registered ones.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import edgekit
from edgekit.checkpoint import save_checkpoint
from edgekit.cli import main
from edgekit.compress.criteria import (CRITERIA, Criterion, Needs, build_criterion, criterion_names, get_criterion,
                                       register_criterion)
from edgekit.compress.prune_config import DEFAULT_FISHER_STEPS, PruneConfig
from edgekit.data.transforms import make_input_spec
from edgekit.errors import EdgekitError
from edgekit.registry import create_model

BUILTINS = ("curl", "l1", "l2", "bn", "taylor", "random")
DATA = "synthetic:classes=4,n=48"


@pytest.fixture()
def ones() -> list:
    """Register a toy criterion ``ones`` (every unit scores 1; it asks for the teacher) for one test;
    yields the :class:`Proxy` of every call."""
    calls: list = []

    @register_criterion
    class Ones(Criterion):
        name = "test_ones"
        summary = "every unit scores 1 (a test criterion)"
        needs = Needs(teacher=True)

        def score(self, model, graph, proxy):
            calls.append(proxy)
            return {g.index: torch.ones(g.size) for g in graph.groups if g.prunable}

    try:
        yield calls
    finally:
        CRITERIA.pop("test_ones", None)


@pytest.fixture()
def tiny_ckpt(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    path = tmp_path / "tiny.pt"
    save_checkpoint(path, create_model("compact_cnn", num_classes=4, width_mult=0.5).eval(), arch="compact_cnn",
                    arch_kwargs={"num_classes": 4, "width_mult": 0.5}, labels=[str(i) for i in range(4)],
                    input_spec=make_input_spec(16), provenance={"data": DATA})
    return path


def test_a_registered_criterion_prunes_through_the_public_api(ones: list, tiny_ckpt: Path, tmp_path: Path) -> None:
    ck = edgekit.prune(tiny_ckpt, DATA, tmp_path / "p.pt", method="test_ones", target="macs=0.6", steps=2, proxy_size=4,
                       finetune_epochs=0, precise_bn=1, progress=False)
    assert 0.5 < ck.metrics["macs_ratio"] <= 0.6 * 1.02  # a half-width net: coarse steps
    assert ck.provenance["method"] == "test_ones"
    assert (ck.provenance["rank"], ck.provenance["scoring"], ck.provenance["exact_precision"]) == (None, None, None)
    assert len(calls := ones) == 2  # scored again on the thinned network in step 2
    assert all(p.teacher is not None and p.labels is None and len(p.images) == 4 for p in calls)  # what it needs


def test_the_cli_lists_and_accepts_registered_criteria(ones: list, tiny_ckpt: Path, tmp_path: Path) -> None:
    help_text = CliRunner().invoke(main, ["prune", "--help"], terminal_width=400).output
    assert all(f"{name} (" in help_text for name in (*BUILTINS, "test_ones")), help_text
    res = CliRunner().invoke(main, ["prune", str(tiny_ckpt), "--data", DATA, "-o", str(tmp_path / "p.pt"),
                                    "--method", "test_ones", "--target", "macs=0.7", "--proxy-size", "4",
                                    "--finetune-epochs", "0", "--precise-bn", "1"])
    assert res.exit_code == 0, res.output
    assert len(ones) == 1 and (tmp_path / "p.pt").is_file()


def test_an_unknown_method_is_one_line_listing_the_criteria(tiny_ckpt: Path, tmp_path: Path) -> None:
    res = CliRunner().invoke(main, ["prune", str(tiny_ckpt), "-o", str(tmp_path / "p.pt"), "--method", "l3"])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1, res.output
    assert "unknown pruning method 'l3'; did you mean" in res.output and f"known: {', '.join(BUILTINS)}" in res.output
    with pytest.raises(EdgekitError, match=f"known: {', '.join(BUILTINS)}"):
        PruneConfig(method="L1")
    assert not (tmp_path / "p.pt").exists()


def test_builtin_criteria_own_their_options() -> None:
    cpu = torch.device("cpu")
    assert criterion_names()[:len(BUILTINS)] == BUILTINS  # the built-ins first, in order
    fisher = build_criterion("curl", scoring="fisher", rank="kl")
    exact = build_criterion("curl", scoring="exact", exact_precision="fp32")
    l1, taylor = build_criterion("l1", scoring="fisher", rank="kl"), build_criterion("taylor")
    # the ranking selection uses: CURL's own option, raw scores for every other criterion
    assert (fisher.rank, exact.rank, l1.rank, taylor.rank) == ("kl", "kl-per-mac", "raw", "raw")
    assert l1.option("scoring") is None and l1.option("rank") is None  # CURL's options are not L1's
    # seeded scores (part of the score cache's key): random, and Fisher's Monte-Carlo draws
    assert [c.seeded for c in (fisher, exact, l1, taylor, build_criterion("random"))] == [True, False, False, False,
                                                                                          True]
    assert (exact.precision_on(cpu), fisher.precision_on(cpu), l1.precision_on(cpu)) == ("fp32", None, None)
    assert fisher.default_steps("macs=0.5") == DEFAULT_FISHER_STEPS
    assert fisher.default_steps(" Latency=2ms@litert") == exact.default_steps("macs=0.5") == 1
    assert l1.default_steps("params=0.5") == 1
    assert PruneConfig().steps == DEFAULT_FISHER_STEPS and PruneConfig(method="l1").steps == 1
    assert taylor.needs.labels and taylor.needs.gradients and not l1.needs.labels and fisher.needs.distribution
    assert exact.needs.gradients is False and fisher.needs.gradients
    assert criterion_names(lacking="distribution")[:len(BUILTINS) - 1] == BUILTINS[1:]  # what a one-output model can be pruned with
    with pytest.raises(EdgekitError, match="unknown scoring 'approx'"):
        build_criterion("curl", scoring="approx")


def test_registration_is_checked() -> None:
    class Dup(Criterion):
        name = "l1"

    class Nameless(Criterion):
        pass

    with pytest.raises(EdgekitError, match="'l1' is already registered"):
        register_criterion(Dup)
    with pytest.raises(EdgekitError, match="needs a name"):
        register_criterion(Nameless)
    with pytest.raises(EdgekitError, match="Criterion subclass"):
        register_criterion(object)  # type: ignore[arg-type]
    assert get_criterion("l1").__name__ == "L1" and criterion_names()[:len(BUILTINS)] == BUILTINS


def test_baseline_scores_through_score_units() -> None:
    """The baselines score every prunable group through the shared Torch-Pruning loop; random is seeded."""
    from edgekit.compress.prune import score_units
    from edgekit.compress.units import UnitGraph

    torch.manual_seed(0)
    model = create_model("compact_cnn", num_classes=4, width_mult=0.5).eval()
    x, y = torch.randn(4, 3, 16, 16), torch.tensor([0, 1, 2, 3])
    graph = UnitGraph(model, x[:1])
    prunable = {g.index: g.size for g in graph.groups if g.prunable}
    for name in BUILTINS[1:]:
        scores = score_units(name, model, graph, x, y, seed=3, progress=False)
        assert {k: len(v) for k, v in scores.items()} == prunable, name
    assert all(p.grad is None for p in model.parameters())  # Taylor's gradients are cleared
    again = score_units("random", model, graph, x, y, seed=3, progress=False)
    other = score_units("random", model, graph, x, y, seed=4, progress=False)
    assert all(torch.equal(again[k], v) for k, v in score_units("random", model, graph, x, y, seed=3).items())
    assert not all(torch.equal(again[k], v) for k, v in other.items())
    with pytest.raises(EdgekitError, match="taylor importance needs labelled proxy images"):
        score_units("taylor", model, graph, x, None, progress=False)
