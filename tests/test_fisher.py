"""CURL's fast scoring (Fisher estimate of the masked KL), multi-step pruning, per-group
normalised ranking, and the CUDA path of scoring."""
from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from torch import nn

from edgekit.checkpoint import load_checkpoint, save_checkpoint
from edgekit.compress import curl, fisher
from edgekit.compress.kd import kl_divergence
from edgekit.compress.selection import select
from edgekit.compress.units import UnitGraph
from edgekit.data.transforms import make_input_spec
from edgekit.errors import EdgekitError
from edgekit.registry import create_model
from test_prune import _randomise_bn


def _small_net(scale: float) -> nn.Module:
    """conv -> BN -> ReLU -> conv -> BN -> ReLU -> pool -> fc; the first block's BN scaled by ``scale``
    so that deleting one of its channels moves the logits by O(scale)."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                        nn.Conv2d(8, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 5))
    _randomise_bn(net, seed=1)
    net[1].weight.data.mul_(scale)
    net[1].bias.data.mul_(scale)
    return net.eval()


def _exact_deletion_kl(model: nn.Module, graph: UnitGraph, gi: int, unit: int, x: torch.Tensor) -> float:
    pruned = copy.deepcopy(model).float()  # graphs are traced in float32 (MAC counting)
    UnitGraph(pruned, x[:1].float()).prune({gi: [unit]})
    pruned.to(x.dtype)
    with torch.no_grad():
        return float(kl_divergence(pruned(x), model(x)).mean())


def test_fisher_is_the_second_order_kl_of_a_small_deletion() -> None:
    """With small per-channel effects the estimate equals the exact KL of removing the channel
    (which :func:`curl.kl_scores` computes); the conv feeding its BN is not counted twice."""
    model = _small_net(scale=0.05)
    x = torch.randn(12, 3, 8, 8, dtype=torch.float64)
    graph = UnitGraph(model, x[:1].float())
    model.double()  # float64: KLs of 1e-6 are below float32's noise
    (group,) = [g for g in graph.groups if g.prunable]
    assert {s.name for s in group.sites} == {"0", "1"}
    est = fisher.fisher_scores(model, graph, x, progress=False)[group.index]
    exact = curl.kl_scores(model, graph, x, progress=False)[group.index]
    for unit in range(group.size):
        assert float(exact[unit]) == pytest.approx(_exact_deletion_kl(model, graph, group.index, unit, x), rel=1e-3)
    torch.testing.assert_close(est, exact, rtol=0.03, atol=0)
    assert bool((est > 0).all())


def test_fisher_ranks_like_exact_kl_on_a_trained_network(digits_ckpt: Path) -> None:
    """Whole-channel deletions of a trained net are not second-order small, but the ranking survives."""
    from scipy.stats import spearmanr

    from edgekit.compress.prune import proxy_set

    ck = load_checkpoint(digits_ckpt)
    x, _, _ = proxy_set(ck.load_data(), ck.eval_transform, 32, 0)
    model = ck.model.eval()
    graph = UnitGraph(model, x[:1])
    est = fisher.fisher_scores(model, graph, x, progress=False)
    exact = curl.kl_scores(model, graph, x, progress=False)
    assert est.keys() == exact.keys() and est
    both = torch.cat([exact[k] for k in exact]), torch.cat([est[k] for k in exact])
    assert spearmanr(*both)[0] > 0.7
    ratio = float((both[1] / both[0].clamp_min(1e-12)).median())
    assert 0.25 < ratio < 4  # the same quantity (its magnitude), not only the same order


def test_monte_carlo_draws_converge_to_the_class_sum() -> None:
    model = _small_net(scale=0.3)
    x = torch.randn(8, 3, 8, 8)
    graph = UnitGraph(model, x[:1])
    exact = fisher.fisher_scores(model, graph, x, progress=False)
    many = fisher.fisher_scores(model, graph, x, progress=False, samples=400, seed=3)
    few = fisher.fisher_scores(model, graph, x, progress=False, samples=1, seed=3)
    gi = next(iter(exact))
    rel_many = float(((many[gi] - exact[gi]).abs() / exact[gi]).mean())
    rel_few = float(((few[gi] - exact[gi]).abs() / exact[gi]).mean())
    assert rel_many < 0.2 and rel_many < rel_few


def test_fisher_on_a_model_fx_cannot_trace_uses_the_hook_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    model = _small_net(scale=0.02)
    x = torch.randn(6, 3, 8, 8)
    graph = UnitGraph(model, x[:1])
    traced = fisher.fisher_scores(model, graph, x, progress=False)
    monkeypatch.setattr(curl, "_trace", lambda *a: None)
    probed = fisher.fisher_scores(model, graph, x, progress=False)
    for k in traced:
        torch.testing.assert_close(traced[k], probed[k])


def test_residual_site_with_a_second_use_counts() -> None:
    """A BN whose output feeds the next block's conv *and* a residual add is a deletion site of its own."""
    model = create_model("compact_cnn", num_classes=4, width_mult=0.5).eval()
    graph = UnitGraph(model, torch.randn(1, 3, 16, 16))
    feeds = fisher._feeding_sites(model, [g for g in graph.groups if g.prunable])
    assert feeds is not None
    for g in graph.groups:
        if not g.prunable:
            continue
        for s in g.sites:
            if isinstance(model.get_submodule(s.name), nn.Conv2d) and any(
                    t.name.startswith(s.name.rsplit(".", 1)[0] + ".bn") for t in g.sites):
                assert s.name in feeds  # a conv straight into its own BN
    stream = next(g for g in graph.groups if g.prunable and len([s for s in g.sites if s.name.endswith("bn2")]) > 1)
    assert any(s.name.endswith("bn2") and s.name not in feeds for s in stream.sites)


def test_kl_norm_ranking_equalises_group_scales() -> None:
    model = create_model("compact_cnn", num_classes=4, width_mult=0.5).eval()
    graph = UnitGraph(model, torch.randn(1, 3, 16, 16))
    groups = [g for g in graph.groups if g.prunable]
    # one group's KLs are a million times the others': raw KL never cuts it, kl-norm does
    scores = {g.index: torch.linspace(1, 2, g.size) * (1e6 if i == 0 else 1.0) for i, g in enumerate(groups)}
    raw = select(graph, scores, kind="macs", ratio=0.8, rank="kl", min_keep=0.1)
    norm = select(graph, scores, kind="macs", ratio=0.8, rank="kl-norm", min_keep=0.1)
    assert groups[0].index not in raw.removal
    assert norm.removal.get(groups[0].index)


def test_selection_floors_override_min_keep() -> None:
    model = create_model("compact_cnn", num_classes=4, width_mult=0.5).eval()
    graph = UnitGraph(model, torch.randn(1, 3, 16, 16))
    g = next(g for g in graph.groups if g.prunable)
    scores = {h.index: torch.rand(h.size) for h in graph.groups if h.prunable}
    floors = {h.name: h.size for h in graph.groups}  # nobody may lose a unit ...
    floors[g.name] = 2  # ... except g, down to 2
    sel = select(graph, scores, kind="macs", ratio=0.97, min_keep=0.9, floors=floors)
    assert set(sel.removal) <= {g.index}
    with pytest.raises(EdgekitError, match="unreachable"):
        select(graph, scores, kind="macs", ratio=0.3, min_keep=0.1, floors=floors)


def _ckpt(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    model = create_model("compact_cnn", num_classes=4, width_mult=0.5)
    path = tmp_path / "src.pt"
    save_checkpoint(path, model, arch="compact_cnn", arch_kwargs={"num_classes": 4, "width_mult": 0.5},
                    labels=[str(i) for i in range(4)], input_spec=make_input_spec(16),
                    provenance={"data": "synthetic:classes=4,n=48"})
    return path


def test_multi_step_prune_reaches_target_with_floors_of_the_original(tmp_path: Path) -> None:
    from edgekit.compress.prune import prune

    src = _ckpt(tmp_path)
    ck = prune(src, "synthetic:classes=4,n=48", tmp_path / "p.pt", target="macs=0.45", scoring="fisher",
               steps=3, step_epochs=1, proxy_size=8, finetune_epochs=0, precise_bn=1, batch_size=8,
               min_keep=0.4, progress=False)
    m = ck.metrics
    assert 0.4 <= m["macs_ratio"] <= 0.45 + 1e-9  # met, within a unit of this half-width net
    ratios = [s["macs_ratio"] for s in m["steps"]]
    assert len(ratios) == 3 and ratios[0] > ratios[1] > ratios[2]
    for got, want in zip(ratios, (0.45 ** (1 / 3), 0.45 ** (2 / 3), 0.45)):
        assert want - 0.05 <= got <= want + 1e-9
    prov = ck.provenance
    assert prov["steps"] == 3 and prov["scoring"] == "fisher"
    for g in prov["groups"]:  # the floor is 40 % of the ORIGINAL width, not of the thinned one
        if g["kept"] < g["units"]:
            assert g["kept"] >= math.ceil(0.4 * g["units"] - 1e-9)
    assert any(g["kept"] < g["units"] for g in prov["groups"])
    assert load_checkpoint(tmp_path / "p.pt").model(torch.zeros(1, 3, 16, 16)).shape == (1, 4)


@pytest.mark.parametrize("options,steps", [
    ({}, 3), ({"target": "params=0.5"}, 3), ({"target": "latency=2ms@litert"}, 1), ({"scoring": "exact"}, 1),
    ({"method": "l1"}, 1), ({"steps": 2}, 2), ({"scoring": "exact", "steps": 4}, 4)])
def test_default_is_fisher_in_re_scored_steps_where_they_apply(options: dict, steps: int) -> None:
    from edgekit.compress.prune_config import DEFAULT_FISHER_STEPS, PruneConfig

    cfg = PruneConfig.from_options(options, "prune")
    assert cfg.scoring == options.get("scoring", "fisher")
    assert cfg.steps == (DEFAULT_FISHER_STEPS if steps == 3 and "steps" not in options else steps)


def test_default_prune_runs_the_re_scored_steps(tmp_path: Path) -> None:
    from edgekit.compress.prune import prune

    ck = prune(_ckpt(tmp_path), "synthetic:classes=4,n=48", tmp_path / "d.pt", proxy_size=8, finetune_epochs=0,
               precise_bn=1, batch_size=8, progress=False)
    assert ck.provenance["scoring"] == "fisher" and ck.provenance["steps"] == 3 and len(ck.metrics["steps"]) == 3


def test_multi_step_and_scoring_errors(tmp_path: Path) -> None:
    from edgekit.cli import main
    from edgekit.compress.prune import prune

    src = _ckpt(tmp_path)
    data = "synthetic:classes=4,n=48"
    with pytest.raises(EdgekitError, match="steps"):
        prune(src, data, tmp_path / "a.pt", steps=0, progress=False)
    with pytest.raises(EdgekitError, match="scoring"):
        prune(src, data, tmp_path / "a.pt", scoring="taylor2", progress=False)
    with pytest.raises(EdgekitError, match="needs a macs= or params= target"):
        prune(src, data, tmp_path / "a.pt", steps=2, target="latency=1ms@onnxruntime", proxy_size=4,
              progress=False)
    with pytest.raises(EdgekitError, match=r"unreachable .* in step \d of 2"):
        prune(src, data, tmp_path / "a.pt", steps=2, target="macs=0.05", proxy_size=4, scoring="fisher",
              finetune_epochs=0, precise_bn=1, batch_size=8, progress=False)
    res = CliRunner().invoke(main, ["prune", str(src), "-o", str(tmp_path / "b.pt"), "--steps", "-1"])
    assert res.exit_code == 2 and "steps" in res.output
    assert not (tmp_path / "a.pt").exists() and not (tmp_path / "b.pt").exists()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("scoring", ["exact", "fisher"])
def test_scoring_on_cuda_matches_cpu(scoring: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from edgekit.compress.prune import score_units

    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)  # compare float32 with float32
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    torch.manual_seed(0)
    model = create_model("resnet18", num_classes=5, small_input=True).eval()
    x = torch.randn(8, 3, 16, 16)
    for p in model.parameters():
        p.requires_grad_(True)
    graph = UnitGraph(model, x[:1])
    cpu = score_units("curl", model, graph, x, torch.zeros(8), progress=False, scoring=scoring)
    gpu = score_units("curl", model, graph, x, torch.zeros(8), progress=False, scoring=scoring, device="cuda")
    assert next(model.parameters()).device.type == "cpu"  # moved back for pruning
    for k in cpu:
        assert gpu[k].device.type == "cpu"
        torch.testing.assert_close(gpu[k], cpu[k], rtol=2e-2, atol=1e-6)
