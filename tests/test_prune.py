"""CURL pruning: units, KL scoring (exactness and batching), selection rules, BN re-estimation,
recovery pieces, the prune entry point with reload in a fresh process, CLI errors."""
from __future__ import annotations

import copy
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from edgekit.checkpoint import load_checkpoint, save_checkpoint
from edgekit.compress import curl
from edgekit.compress.kd import kl_divergence
from edgekit.compress.selection import parse_target, select
from edgekit.compress.units import UnitGraph
from edgekit.data.transforms import make_input_spec
from edgekit.errors import EdgekitError
from edgekit.registry import count_macs, create_model
from edgekit.training.precise_bn import precise_bn


def _randomise_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    return model.eval()


def test_resnet_residual_stream_is_one_unit_and_classifier_protected() -> None:
    model = create_model("resnet18", num_classes=10, small_input=True).eval()
    graph = UnitGraph(model, torch.randn(1, 3, 32, 32))
    by_name = {g.name: g for g in graph.groups}
    stream = next(g for g in graph.groups if any(s.name == "layer2.1.bn2" for s in g.sites))
    sites = {s.name for s in stream.sites}
    # one unit spans the projection shortcut and every block's last BN of the stage
    assert {"layer2.0.downsample.1", "layer2.0.bn2", "layer2.1.bn2"} <= sites
    assert stream.size == 128 and stream.prunable
    # the stage feeding fc is protected; fc's outputs are never a unit
    last = next(g for g in graph.groups if ("fc", "in") in g.layers)
    assert not last.prunable
    assert all(s.name != "fc" for g in graph.groups for s in g.sites)
    # inner channels are their own units
    assert by_name["layer1.0.conv1"].size == 64 and {s.name for s in by_name["layer1.0.conv1"].sites} == {
        "layer1.0.conv1", "layer1.0.bn1"}


def test_depthwise_channels_tied_to_expansion() -> None:
    model = create_model("mobilenet_v2", num_classes=10).eval()
    graph = UnitGraph(model, torch.randn(1, 3, 32, 32))
    g = next(g for g in graph.groups if ("features.5.conv.1.0", "dw") in g.layers)
    assert ("features.5.conv.0.0", "out") in g.layers  # the 1x1 expansion
    assert ("features.5.conv.2", "in") in g.layers  # the projection


@pytest.mark.parametrize("arch", ["compact_cnn", pytest.param("resnet18", marks=pytest.mark.slow)])
def test_kl_scores_equal_kl_of_actually_pruned_model(arch: str) -> None:
    torch.manual_seed(0)
    kw = {} if arch == "resnet18" else {"width_mult": 0.5}
    model = _randomise_bn(create_model(arch, num_classes=5, **kw))
    x = torch.randn(6, 3, 32 if arch == "resnet18" else 16, 32 if arch == "resnet18" else 16)
    graph = UnitGraph(model, x[:1])
    chosen = [g for g in graph.groups if g.prunable][:3]
    for g in graph.groups:  # score three groups only (keeps the test fast)
        if g not in chosen:
            g.protected = "not scored in this test"
    scores = curl.kl_scores(model, graph, x, progress=False, budget=20_000)  # small budget: several mask batches
    with torch.no_grad():
        base = model(x)
    for g in chosen:
        for unit in (0, g.size - 1):
            pruned = copy.deepcopy(model)
            UnitGraph(pruned, x[:1]).prune({g.index: [unit]})
            with torch.no_grad():
                expected = kl_divergence(pruned(x), base).mean()
            assert scores[g.index][unit] == pytest.approx(float(expected), rel=1e-3, abs=1e-7)
    assert all(bool((s >= -1e-7).all()) for s in scores.values())


def test_traced_and_full_pass_scoring_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    model = _randomise_bn(create_model("compact_cnn", num_classes=4, width_mult=0.5))
    x = torch.randn(5, 3, 16, 16)
    graph = UnitGraph(model, x[:1])
    traced = curl.kl_scores(model, graph, x, progress=False)
    monkeypatch.setattr(curl, "_trace", lambda *a: None)
    full = curl.kl_scores(model, graph, x, progress=False)
    for k in traced:
        torch.testing.assert_close(traced[k], full[k], rtol=1e-4, atol=1e-8)


def _ranks(t: torch.Tensor) -> torch.Tensor:
    return t.argsort().argsort().double()


def test_bf16_exact_scores_keep_the_fp32_ranking(digits_ckpt: Path) -> None:
    """``precision="bf16"``: the masked passes run under bfloat16 autocast (the numbers change),
    and the unit ranking that selection uses stays that of float32 scoring (a trained model on
    its own proxy images; a random network's near-zero KLs drown in bf16 rounding)."""
    from edgekit.compress.prune import proxy_set

    ck = load_checkpoint(digits_ckpt)
    model = ck.model.eval()
    x, _, _ = proxy_set(ck.load_data(), ck.eval_transform, 32, 0)
    graph = UnitGraph(model, x[:1])
    fp32 = curl.kl_scores(model, graph, x, progress=False)
    bf16 = curl.kl_scores(model, graph, x, progress=False, precision="bf16")
    a, b = (torch.cat([s[k] for k in sorted(fp32)]) for s in (fp32, bf16))
    assert not torch.equal(a, b) and bool((b >= -1e-6).all())  # computed differently, still a KL
    spearman = float(torch.corrcoef(torch.stack([_ranks(a), _ranks(b)]))[0, 1])
    assert spearman > 0.95, spearman
    assert float(((b - a).abs() / a.clamp_min(1e-12)).median()) < 0.1  # the same quantity, not just the same order
    with pytest.raises(ValueError, match="precision"):
        curl.kl_scores(model, graph, x, progress=False, precision="fp16")


def test_exact_precision_auto_follows_the_cpu() -> None:
    from edgekit.compress.prune import exact_precision_on
    from edgekit.device import native_bf16

    cpu = torch.device("cpu")
    native = bool(getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()
                  or getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)())
    assert native_bf16(cpu) == native
    assert exact_precision_on("auto", cpu) == ("bf16" if native else "fp32")
    assert exact_precision_on("auto", torch.device("cuda")) == "fp32"  # true float32 on a GPU
    assert exact_precision_on("fp32", cpu) == "fp32" and exact_precision_on("bf16", cpu) == "bf16"


def test_selection_hits_target_and_keeps_min_ratio() -> None:
    model = create_model("resnet18", num_classes=10).eval()
    graph = UnitGraph(model, torch.randn(1, 3, 32, 32))
    gen = torch.Generator().manual_seed(0)
    scores = {g.index: torch.rand(g.size, generator=gen) for g in graph.groups if g.prunable}
    base = count_macs(model, (1, 3, 32, 32))
    for rank in ("kl", "kl-per-mac"):
        sel = select(graph, scores, kind="macs", ratio=0.5, rank=rank, min_keep=0.3)
        for g in graph.groups:
            kept = g.size - len(sel.removal.get(g.index, []))
            assert kept >= math.ceil(0.3 * g.size)
        pruned = copy.deepcopy(model)
        UnitGraph(pruned, torch.randn(1, 3, 32, 32)).prune(sel.removal)
        real = count_macs(pruned, (1, 3, 32, 32))
        assert real == pytest.approx(sel.macs, rel=1e-6)  # the cost model is exact
        assert 0.48 <= real / base <= 0.5
    with pytest.raises(EdgekitError, match="unreachable with min_keep"):
        select(graph, scores, kind="macs", ratio=0.05, min_keep=0.3)


def test_round_to_and_params_target() -> None:
    model = create_model("resnet18", num_classes=10).eval()
    graph = UnitGraph(model, torch.randn(1, 3, 32, 32))
    scores = {g.index: torch.arange(g.size, dtype=torch.float) for g in graph.groups if g.prunable}
    sel = select(graph, scores, kind="params", ratio=0.6, rank="kl", min_keep=0.3, round_to=8)
    for g in graph.groups:
        assert (g.size - len(sel.removal.get(g.index, []))) % 8 == 0
    pruned = copy.deepcopy(model)
    UnitGraph(pruned, torch.randn(1, 3, 32, 32)).prune(sel.removal)
    ratio = sum(p.numel() for p in pruned.parameters()) / sum(p.numel() for p in model.parameters())
    assert 0.55 <= ratio <= 0.6


def test_parse_target_errors() -> None:
    assert parse_target("latency=5ms@litert").runtime == "litert"
    for bad in ("flops=0.5", "macs=2", "macs=x", "latency=5ms"):
        with pytest.raises(EdgekitError):
            parse_target(bad)


def test_bn_reestimation_matches_batch_statistics() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.BatchNorm2d(4)).eval()
    x = torch.randn(16, 3, 8, 8)
    assert precise_bn(model, [x[:8], x[8:], x[:1] + 100], num_batches=2) == 16  # the third batch is not used
    feats = model[0](x)
    torch.testing.assert_close(model[1].running_mean, feats.mean((0, 2, 3)), rtol=1e-4, atol=1e-5)
    assert not model.training and model[1].momentum == 0.1


def test_expanded_set_variants() -> None:
    from edgekit.compress.recovery import VARIANTS, cutout, patch_shuffle

    rng = np.random.default_rng(0)
    img = np.arange(64, dtype=np.uint8).reshape(8, 8)
    shuffled = patch_shuffle(img, 2, np.random.default_rng(1))
    assert sorted(shuffled.ravel()) == sorted(img.ravel())  # a permutation of blocks
    blocks = {tuple(shuffled[i:i + 4, j:j + 4].ravel()) for i in (0, 4) for j in (0, 4)}
    assert blocks == {tuple(img[i:i + 4, j:j + 4].ravel()) for i in (0, 4) for j in (0, 4)}
    cut = cutout(np.full((20, 20), 255, np.uint8), rng)
    zero_frac = float((cut == 0).mean())
    assert 0.2 ** 2 - 0.02 <= zero_frac <= 0.5 ** 2 + 0.02
    assert len(VARIANTS) == 6


def test_label_refinement_moves_table_toward_student() -> None:
    from edgekit.compress.recovery import refine_loss

    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    table = torch.zeros(5, 3)
    targets = torch.tensor([0, 1, 2, 0, 1])
    step = refine_loss(table, targets)
    x = torch.randn(2, 4)
    out = step(model, x, torch.tensor([1, 3]), 0)
    # dL/dZ for KL(p_s || softmax(Z)) at Z=0 is 0.7 * (softmax(Z) - p_s) / B; the table moves toward p_s
    p_s = torch.softmax(model(x).detach(), 1)
    expected = -(0.7 * (torch.full_like(p_s, 1 / 3) - p_s) / 2)
    torch.testing.assert_close(table[[1, 3]], expected, rtol=1e-4, atol=1e-6)
    assert table[[0, 2, 4]].abs().sum() == 0 and out.loss.requires_grad


def _fresh_reload(path: Path) -> dict:
    code = ("import json,sys,torch; from edgekit.checkpoint import load_checkpoint; "
            "c=load_checkpoint(sys.argv[1]); m=c.model; x=torch.zeros(1,*c.input_spec['shape']); "
            "print(json.dumps({'out': list(m(x).shape), 'plan': bool(c.channel_plan)}))")
    res = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_prune_digits_end_to_end(digits_ckpt: Path, tmp_path: Path) -> None:
    from edgekit.evaluation import evaluate
    from edgekit.compress.prune import prune

    out = tmp_path / "pruned.pt"
    ck = prune(digits_ckpt, "digits", out, target="macs=0.6", proxy_size=16, finetune_epochs=1, progress=False)
    m = ck.metrics
    assert 0.588 <= m["macs_ratio"] <= 0.6
    assert m["top1_pruned_bn"] > 20 and m["val_top1"] > 20  # well above chance (10 %)
    assert ck.provenance["stage"] == "prune" and ck.provenance["method"] == "curl"
    assert _fresh_reload(out) == {"out": [1, 10], "plan": True}
    assert evaluate(out, "digits")["top1"] == pytest.approx(m["val_top1"])
    bn = m["precise_bn"]  # recovery ended with precise BN, before/after recorded
    assert bn["images"] > 0 and bn["after"]["top1"] == pytest.approx(m["val_top1"])
    # the run's temporaries are gone: only the checkpoint is left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pruned.pt"]
    with pytest.raises(EdgekitError, match="already exists"):
        prune(digits_ckpt, "digits", out, proxy_size=16, finetune_epochs=0, progress=False)
    # scores kept in a named file are reused by the next run with the same inputs
    kept = tmp_path / "scores.pt"
    prune(digits_ckpt, None, out, target="macs=0.6", proxy_size=16, finetune_epochs=0, force=True,
          scores_path=kept, progress=False)
    ck2 = prune(digits_ckpt, None, out, target="macs=0.6", proxy_size=16, finetune_epochs=0, force=True,
                scores_path=kept, progress=False)
    assert ck2.metrics["scores_cached"] and kept.is_file()
    # exact scores are kept per arithmetic: bf16 scores never stand in for float32 ones
    exact = dict(target="macs=0.6", proxy_size=16, finetune_epochs=0, force=True, scores_path=tmp_path / "ex.pt",
                 scoring="exact", progress=False)
    fp32 = prune(digits_ckpt, None, out, exact_precision="fp32", **exact)
    bf16 = prune(digits_ckpt, None, out, exact_precision="bf16", **exact)
    assert (fp32.provenance["exact_precision"], bf16.provenance["exact_precision"]) == ("fp32", "bf16")
    assert not bf16.metrics["scores_cached"] and ck2.provenance["exact_precision"] is None  # fisher: not exact
    assert prune(digits_ckpt, None, out, exact_precision="bf16", **exact).metrics["scores_cached"]
    with pytest.raises(EdgekitError, match="exact precision"):
        prune(digits_ckpt, None, out, exact_precision="fp16", **exact)


def _random_ckpt(arch: str, path: Path, classes: int = 4, size: int = 32, **kw: object) -> Path:
    torch.manual_seed(0)
    model = _randomise_bn(create_model(arch, num_classes=classes, **kw))
    save_checkpoint(path, model, arch=arch, arch_kwargs={"num_classes": classes, **kw},
                    labels=[str(i) for i in range(classes)], input_spec=make_input_spec(size),
                    provenance={"data": "synthetic:classes=4,n=48"})
    return path


_SLOW = pytest.mark.slow


@pytest.mark.parametrize("arch,kw,method", [
    ("compact_cnn", {}, "curl"), ("resnet18", {"small_input": True}, "l1"), ("mobilenet_v2", {}, "l1"),
    pytest.param("resnet18", {"small_input": True}, "curl", marks=_SLOW),
    pytest.param("mobilenet_v2", {}, "curl", marks=_SLOW)])
def test_prune_reloads_in_fresh_process(arch: str, kw: dict, method: str, tmp_path: Path) -> None:
    from edgekit.compress.prune import prune

    src = _random_ckpt(arch, tmp_path / "src.pt", size=16, **kw)  # 16 px keeps CURL scoring fast
    out = tmp_path / "p.pt"
    ck = prune(src, "synthetic:classes=4,n=48", out, target="macs=0.6", method=method, proxy_size=2,
               finetune_epochs=0, precise_bn=1, progress=False)
    assert abs(ck.metrics["macs_ratio"] - 0.6) <= 0.012
    assert _fresh_reload(out) == {"out": [1, 4], "plan": True}


@pytest.mark.parametrize("arch", ["resnet50", "mobilenet_v3_small", "efficientnet_b0", "regnet_x_400mf",
                                  "convnext_tiny"])
def test_prune_zoo_architectures_l1(arch: str, tmp_path: Path) -> None:
    """Every listed architecture prunes (structure only: L1 criterion) and rebuilds from its plan."""
    from edgekit.compress.prune import prune

    src = _random_ckpt(arch, tmp_path / "src.pt")
    out = tmp_path / "p.pt"
    ck = prune(src, "synthetic:classes=4,n=48", out, target="macs=0.8", method="l1", proxy_size=4,
               finetune_epochs=0, precise_bn=1, batch_size=8, progress=False)
    assert abs(ck.metrics["macs_ratio"] - 0.8) <= 0.016
    assert _fresh_reload(out) == {"out": [1, 4], "plan": True}


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["resnet50", "mobilenet_v3_small", "efficientnet_b0", "regnet_x_400mf",
                                  "convnext_tiny"])
def test_prune_zoo_architectures_curl(arch: str, tmp_path: Path) -> None:
    from edgekit.compress.prune import prune

    src = _random_ckpt(arch, tmp_path / "src.pt")
    ck = prune(src, "synthetic:classes=4,n=48", tmp_path / "p.pt", target="macs=0.8", proxy_size=2,
               finetune_epochs=0, precise_bn=1, batch_size=8, progress=False)
    assert abs(ck.metrics["macs_ratio"] - 0.8) <= 0.016


def test_limited_data_recipe_runs(synthetic_ckpt: Path, tmp_path: Path) -> None:
    from edgekit.compress.prune import prune

    ck = prune(synthetic_ckpt, "synthetic:classes=4,n=160", tmp_path / "p.pt", target="macs=0.7", proxy_size=16,
               finetune_epochs=1, refine_epochs=1, recipe="limited-data", train_fraction=0.5, progress=False)
    assert ck.provenance["recipe"] == "limited-data" and ck.metrics["recovery_seconds"] > 0


def test_prune_errors(synthetic_ckpt: Path, tmp_path: Path) -> None:
    from edgekit.compress.prune import prune

    data = "synthetic:classes=4,n=160"
    with pytest.raises(EdgekitError, match="fewer than the proxy set"):
        prune(synthetic_ckpt, data, tmp_path / "a.pt", proxy_size=10_000, progress=False)
    with pytest.raises(EdgekitError, match="unreachable"):
        prune(synthetic_ckpt, data, tmp_path / "b.pt", target="macs=0.01", proxy_size=8, finetune_epochs=0,
              progress=False)
    with pytest.raises(EdgekitError, match="classes"):
        prune(synthetic_ckpt, "digits", tmp_path / "c.pt", proxy_size=8, progress=False)


def test_nothing_prunable_names_the_layer(tmp_path: Path) -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3, groups=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(8, 3))
    with pytest.raises(EdgekitError, match="nothing prunable.*feeds the classifier"):
        UnitGraph(model, torch.randn(1, 3, 8, 8))


def test_cli_prune_bad_target(synthetic_ckpt: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from edgekit.cli import main

    res = CliRunner().invoke(main, ["prune", str(synthetic_ckpt), "--data", "synthetic:classes=4,n=160",
                                    "-o", str(tmp_path / "x.pt"), "--target", "flops=0.5"])
    assert res.exit_code == 2 and "bad target" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "x.pt").exists()
    res = CliRunner().invoke(main, ["prune", str(synthetic_ckpt), "-o", str(tmp_path / "x.pt"), "--scoring", "exact",
                                    "--exact-precision", "fp8"])
    assert res.exit_code == 2 and "--exact-precision" in res.output and "Traceback" not in res.output


@pytest.mark.slow
def test_latency_target_and_measured_speedup(digits_ckpt: Path, tmp_path: Path) -> None:
    """``latency=Xms@litert``: exported, measured, bisected; the speed-up is measured, not inferred.

    LiteRT (XNNPACK) is the runtime where compact_cnn's pruned widths pay off on a CPU
    (onnxruntime gains little at this size), so the target is set there.
    """
    from edgekit.compress.latency import measure_latency
    from edgekit.compress.prune import prune

    base = measure_latency(load_checkpoint(digits_ckpt), "litert", data="digits", workdir=tmp_path)
    goal = 0.8 * base
    ck = prune(digits_ckpt, "digits", tmp_path / "p.pt", target=f"latency={goal:.4f}ms@litert",
               proxy_size=32, finetune_epochs=0, measure_latency=True, latency_runtimes=("litert",),
               progress=False)
    search = ck.metrics["latency_search"]
    assert search["latency_ms"] <= goal and len(search["trials"]) >= 2
    assert search["macs_ratio"] < 1.0
    assert ck.metrics["latency"]["litert"]["after_ms"] > 0
