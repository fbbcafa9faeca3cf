"""Pruning and distilling clip models (TSN, TSM): the unit graph through the clip model, per-clip
CURL scores, shifted channels kept shifted, pruned TSMs that still stream, KD/LSH with clip inputs."""
from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from edgekit.checkpoint import Checkpoint, load_checkpoint
from edgekit.cli import main
from edgekit.compress import curl, fisher
from edgekit.compress.distill import distill
from edgekit.compress.features import FeatureTap
from edgekit.compress.kd import kl_divergence
from edgekit.compress.prune import prune
from edgekit.compress.selection import select
from edgekit.compress.temporal import FUTURE, PAST, clip_student, keep_shift_folds, quotas, shifted_streams
from edgekit.compress.units import UnitGraph
from edgekit.errors import EdgekitError
from edgekit.models.shift import fold_of
from edgekit.models.temporal import to_online
from edgekit.registry import create_model
from test_prune import _randomise_bn

FRAMES = 4


def _clip_model(arch: str, seed: int = 0, **kwargs) -> torch.nn.Module:
    torch.manual_seed(seed)
    if arch.startswith("tsm_"):
        kwargs.setdefault("shift", "causal")
    if "compact" not in arch:
        kwargs["small_input"] = True
    return _randomise_bn(create_model(arch, num_classes=11, frames=FRAMES, **kwargs), seed)


def _as_checkpoint(model: torch.nn.Module, arch: str, like: Path, **kwargs) -> Checkpoint:
    """``model`` (untrained) as a clip checkpoint on ``like``'s data, split and input."""
    base = load_checkpoint(like)
    kw = {"num_classes": 11, "frames": FRAMES, **kwargs}
    if "compact" not in arch:
        kw["small_input"] = True
    ck = Checkpoint(arch=arch, arch_kwargs=kw, state_dict={k: v.detach().clone() for k, v in model.state_dict().items()},
                    task="clip_classify", labels=list(base.labels), input_spec=dict(base.input_spec),
                    data=dict(base.data))
    return ck


def _online_error(model: torch.nn.Module, frames: int = 6, batch: int = 2, size: int = 32) -> tuple[float, list]:
    """Max |online frame by frame - offline causal per-frame logits| and the final states' shapes."""
    online = to_online(model).eval()
    clip = torch.randn(batch, frames, 3, size, size)
    with torch.no_grad():
        ref = model.eval().frame_logits(clip)
        states: list[torch.Tensor] = []
        outs = []
        for t in range(frames):
            out, *states = online(clip[:, t], *states)
            outs.append(out)
    return float((torch.stack(outs, 1) - ref).abs().max()), [tuple(s.shape) for s in states]


def _stream_widths(model: torch.nn.Module) -> list[int]:
    """Input channels of every shifted block, in depth order."""
    from edgekit.compress.temporal import shifted_blocks

    out = []
    for _, block in shifted_blocks(model):
        conv = next(m for m in block.modules() if isinstance(m, torch.nn.Conv2d))
        out.append(conv.in_channels)
    return out


# ------------------------------------------------------------------------------ the unit graph

@pytest.mark.parametrize("backbone", ["mobilenet_v2", "resnet18", "compact_cnn"])
@pytest.mark.parametrize("family", ["tsm_", "tsn_"])
def test_unit_graph_of_a_clip_model_is_its_backbones(family: str, backbone: str) -> None:
    """The (N,T)->(N*T) reshape and the shift's channel slices do not change the groups: the same
    groups, sizes, sites and protections as the 2D backbone's, under ``backbone.``."""
    model = _clip_model(family + backbone)
    image = create_model(backbone, num_classes=11, **({} if backbone == "compact_cnn" else {"small_input": True}))
    clip_graph = UnitGraph(model, torch.randn(1, FRAMES, 3, 32, 32))
    image_graph = UnitGraph(image.eval(), torch.randn(1, 3, 32, 32))

    def summary(graph: UnitGraph, prefix: str) -> list:
        return sorted((g.name[len(prefix):], g.size, sorted(s.name[len(prefix):] for s in g.sites), g.protected)
                      for g in graph.groups)

    assert summary(clip_graph, "backbone.") == summary(image_graph, "")
    # per-sample MACs: one clip is T frames
    assert clip_graph.macs({}) == pytest.approx(FRAMES * image_graph.macs({}), rel=1e-6)


# ------------------------------------------------------------------------------ per-clip scores

def test_exact_kl_of_a_clip_is_deleting_the_channel_in_all_its_frames(clip_ckpt: Path) -> None:
    """CURL's masked KL of one clip equals the KL of the model with the channel removed for all T
    frames; a batch of clips scores the mean of its clips (masks are per clip, not per frame).
    Fisher's per-clip masks: a batch's estimate is the mean of its clips' too."""
    model = copy.deepcopy(load_checkpoint(clip_ckpt).model).eval()
    for p in model.parameters():
        p.requires_grad_(True)
    x = torch.randn(3, FRAMES, 3, 32, 32, dtype=torch.float64)
    graph = UnitGraph(model, x[:1].float())
    streams = shifted_streams(model, graph)
    model.double()  # float64: KLs of 1e-6 are below float32's noise
    inner = [g for g in graph.groups if g.prunable and g.index not in streams]  # deletion keeps every fold
    assert inner and streams
    g = max(inner, key=lambda g: g.size)
    est = fisher.fisher_scores(model, graph, x, progress=False)
    est_clips = [fisher.fisher_scores(model, graph, x[i:i + 1], progress=False) for i in range(3)]
    for gi, s in est.items():
        torch.testing.assert_close(s.double(), torch.stack([e[gi] for e in est_clips]).double().mean(0),
                                   rtol=1e-4, atol=1e-12)
    for other in graph.groups:  # the exact KL of this group only (one masked pass per unit)
        if other is not g:
            other.protected = other.protected or "not scored in this test"
    batch = curl.kl_scores(model, graph, x, progress=False)[g.index]
    per_clip = torch.stack([curl.kl_scores(model, graph, x[i:i + 1], progress=False)[g.index] for i in range(3)])
    torch.testing.assert_close(batch, per_clip.mean(0), rtol=1e-5, atol=1e-12)
    unit = int(batch.argmax())
    pruned = copy.deepcopy(model).float()
    UnitGraph(pruned, x[:1].float()).prune({g.index: [unit]})
    pruned.double()
    with torch.no_grad():
        deleted = kl_divergence(pruned(x), model(x))
    assert float(deleted.min()) > 0
    torch.testing.assert_close(per_clip[:, unit].double(), deleted, rtol=1e-4, atol=0)


# ------------------------------------------------------------------------------ the shifted fold

def test_quotas_keep_the_shift_proportion() -> None:
    assert quotas(24, 8, False) == (3, 0, 21)
    assert quotas(15, 8, True) == (1, 1, 13)
    assert quotas(5, 8, False) == (1, 0, 4)  # at least one channel shifts, as fold_of says


@pytest.mark.parametrize("arch,shift", [("tsm_mobilenet_v2", "causal"), ("tsm_resnet18", "bidirectional")])
def test_shifted_channels_stay_shifted_and_first(arch: str, shift: str) -> None:
    """A selection that would strip a stream's shifted channels first is re-chosen: each shifted
    block's input keeps exactly fold_of(C') of its originally shifted channels (each direction),
    first and in order, the highest-scored of them; counts and MACs are the selection's."""
    model = _clip_model(arch, shift=shift)
    for p in model.parameters():
        p.requires_grad_(True)
    graph = UnitGraph(model, torch.randn(1, FRAMES, 3, 32, 32))
    streams = shifted_streams(model, graph)
    assert streams
    scores = {}
    for g in graph.groups:
        if not g.prunable:
            continue
        s = torch.arange(g.size, dtype=torch.float32) + 1000  # the shifted channels, first, go first
        scores[g.index] = s
        if g.index in streams:
            seg = streams[g.index].segments
            assert int((seg == PAST).sum()) == fold_of(g.size, 8)
            assert int((seg == FUTURE).sum()) == (fold_of(g.size, 8) if shift == "bidirectional" else 0)
    sel = select(graph, scores, kind="macs", ratio=0.6, rank="kl")
    counts = {gi: len(v) for gi, v in sel.removal.items()}
    naive_past = {gi: sum(int(streams[gi].segments[u]) == PAST for u in sel.removal.get(gi, [])) for gi in streams}
    assert any(naive_past.values())  # the plain ranking would remove shifted channels disproportionately
    macs = sel.macs
    # tag every stream channel with its original index (a BN bias the stream carries)
    tags = {}
    for gi in streams:
        site = next(s.name for s in graph.groups[gi].sites if isinstance(model.get_submodule(s.name),
                                                                        torch.nn.BatchNorm2d))
        bn = model.get_submodule(site)
        with torch.no_grad():
            bn.bias.copy_(torch.arange(bn.num_features, dtype=torch.float32))
        tags[gi] = (site, bn.num_features)
    sel = keep_shift_folds(model, graph, scores, sel)
    assert {gi: len(v) for gi, v in sel.removal.items()} == counts
    assert sel.macs == pytest.approx(macs)
    graph.prune(sel.removal)
    checked = 0
    for gi, (site, width) in tags.items():
        kept = model.get_submodule(site).bias.detach().round().long().tolist()
        fold, new = fold_of(width, 8), fold_of(len(kept), 8)
        if len(kept) == width:
            continue
        checked += 1
        assert all(k < fold for k in kept[:new])  # the new fold is made of originally past-shifted channels
        if shift == "bidirectional":
            assert all(fold <= k < 2 * fold for k in kept[new:2 * new])
            assert all(k >= 2 * fold for k in kept[2 * new:])
        else:
            assert all(k >= fold for k in kept[new:])
        # the highest-scored shifted channels (here: the last ones) are the ones kept
        assert kept[:new] == list(range(fold - new, fold))
    assert checked
    if shift == "causal":  # the pruned model streams; its state tensors shrink to 1/8 of each pruned width
        err, states = _online_error(model)
        assert err <= 1e-4
        before = _online_error(_clip_model(arch, shift=shift))[1]
        assert [s[1] for s in states] == [fold_of(c, 8) for c in _stream_widths(model)]
        assert all(a[1] <= b[1] for a, b in zip(states, before)) and states != before


# ------------------------------------------------------------------------------ prune end to end

@pytest.fixture(scope="module")
def mbv2_ckpt(clip_ckpt: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An (untrained, BN-randomised) causal tsm_mobilenet_v2 checkpoint at 32 px on clip_ckpt's data."""
    path = tmp_path_factory.mktemp("mbv2") / "tsm_mbv2.pt"
    _as_checkpoint(_clip_model("tsm_mobilenet_v2"), "tsm_mobilenet_v2", clip_ckpt, shift="causal").save(path)
    return path


def test_fisher_prune_of_tsm_mobilenet_v2_to_half_the_macs_streams(mbv2_ckpt: Path, tmp_path: Path) -> None:
    out = tmp_path / "p.pt"
    prune(mbv2_ckpt, None, out, target="macs=0.5", scoring="fisher", proxy_size=4, finetune_epochs=0,
          precise_bn=1, progress=False)
    ck = load_checkpoint(out)  # rebuilds from the channel plan
    assert ck.task == "clip_classify" and ck.channel_plan
    assert ck.metrics["macs_ratio"] == pytest.approx(0.5, abs=0.01)
    parent = load_checkpoint(mbv2_ckpt).model
    err, states = _online_error(ck.model)
    assert err <= 1e-4
    _, states_before = _online_error(parent)
    widths = _stream_widths(ck.model)
    assert [s[1] for s in states] == [fold_of(c, 8) for c in widths]  # 1/8 of each pruned width
    assert all(a[1] <= b[1] for a, b in zip(states, states_before))


def test_exact_curl_prune_of_the_clip_fixture(clip_ckpt: Path, tmp_path: Path) -> None:
    """Exact CURL scores (prefix-cached on the traced frame forward) on a compact_cnn TSM: its
    protected last stage holds most MACs, so 0.85 is the reachable target at min_keep 0.3."""
    out = tmp_path / "p.pt"
    ck = prune(clip_ckpt, None, out, target="macs=0.85", proxy_size=2, finetune_epochs=0, precise_bn=1,
               progress=False)
    assert ck.metrics["macs_ratio"] == pytest.approx(0.85, abs=0.02)
    assert _online_error(load_checkpoint(out).model)[0] <= 1e-4
    res = CliRunner().invoke(main, ["eval", str(out)])
    assert res.exit_code == 0, res.output
    assert "top-1" in res.output


@pytest.mark.parametrize("method", ["l1", "taylor", "random"])
def test_baselines_prune_a_clip_checkpoint(method: str, clip_ckpt: Path, tmp_path: Path) -> None:
    out = tmp_path / f"{method}.pt"
    ck = prune(clip_ckpt, None, out, method=method, target="macs=0.85", proxy_size=4, finetune_epochs=0,
               precise_bn=1, progress=False)
    assert ck.metrics["macs_ratio"] == pytest.approx(0.85, abs=0.02)
    assert _online_error(load_checkpoint(out).model)[0] <= 1e-4


@pytest.mark.slow
def test_exact_prune_of_tsm_mobilenet_v2_with_finetune(mbv2_ckpt: Path, tmp_path: Path) -> None:
    out = tmp_path / "p.pt"
    ck = prune(mbv2_ckpt, None, out, target="macs=0.5", proxy_size=2, finetune_epochs=1, progress=False)
    assert ck.metrics["macs_ratio"] == pytest.approx(0.5, abs=0.01)
    assert _online_error(load_checkpoint(out).model)[0] <= 1e-4


def test_clip_prune_refusals(clip_ckpt: Path, tmp_path: Path) -> None:
    ck = load_checkpoint(clip_ckpt)
    online = dataclasses.replace(ck, arch="tsm_online_compact_cnn")
    with pytest.raises(EdgekitError, match="streaming form of a causal tsm_compact_cnn"):
        prune(online, None, tmp_path / "a.pt", proxy_size=2, progress=False)
    with pytest.raises(EdgekitError, match="limited-data recipe expands single images"):
        prune(ck, None, tmp_path / "b.pt", recipe="limited-data", proxy_size=2, progress=False)
    online.save(tmp_path / "online.pt")
    res = CliRunner().invoke(main, ["prune", str(tmp_path / "online.pt"), "-o", str(tmp_path / "c.pt")])
    assert res.exit_code != 0
    assert len(res.output.strip().splitlines()) == 1 and "streaming form" in res.output
    assert not (tmp_path / "c.pt").exists()


# ------------------------------------------------------------------------------ distillation

def test_clip_feature_is_the_mean_of_the_frame_features() -> None:
    """The tapped feature of a clip model is per clip, (N, D): the frames' features averaged, which
    the linear classifier maps to exactly the clip logits."""
    model = _clip_model("tsm_compact_cnn").eval()
    x = torch.randn(3, FRAMES, 3, 32, 32)
    frames: list[torch.Tensor] = []
    clf = model.backbone.classifier
    hook = clf.register_forward_pre_hook(lambda m, inp: frames.append(inp[0]))
    with FeatureTap(model, (1, FRAMES, 3, 32, 32)) as tap, torch.no_grad():
        logits = model(x)
    hook.remove()
    assert tap.feature.shape == (3, frames[0].shape[1])
    torch.testing.assert_close(tap.feature, frames[0].reshape(3, FRAMES, -1).mean(1))
    torch.testing.assert_close(clf(tap.feature), logits, rtol=1e-5, atol=1e-5)


def test_distill_kd_from_a_tsn_teacher_into_a_tsm_student(clip_ckpt: Path, tmp_path: Path) -> None:
    teacher = tmp_path / "tsn.pt"
    _as_checkpoint(_clip_model("tsn_compact_cnn", seed=1), "tsn_compact_cnn", clip_ckpt).save(teacher)
    t = load_checkpoint(teacher)
    out = tmp_path / "student.pt"
    ck = distill(teacher, "tsm_compact_cnn", None, out, method="kd", epochs=1, batch_size=16, precise_bn=1,
                 progress=False)
    assert ck.arch == "tsm_compact_cnn" and ck.task == "clip_classify"
    assert ck.arch_kwargs["frames"] == FRAMES and ck.arch_kwargs["shift"] == "causal"  # from a TSN: streamable
    assert ck.input_spec == t.input_spec
    assert ck.lineage["parent_sha256"] == t.sha256 and ck.lineage["root_sha256"] == t.lineage["root_sha256"]
    assert ck.data == t.data
    log = [json.loads(line) for line in Path(str(out) + ".metrics.jsonl").read_text().splitlines()]
    assert log[-1]["kd"] > 0 and "val_top1" in ck.metrics
    assert _online_error(ck.model)[0] <= 1e-4


def test_distill_lshl2_between_clip_models_uses_clip_features(clip_ckpt: Path, tmp_path: Path) -> None:
    """A TSM teacher into a pruned TSM student (a checkpoint) with LSH+L2 on the clip features."""
    pruned = tmp_path / "pruned.pt"
    prune(clip_ckpt, None, pruned, method="l1", target="macs=0.85", proxy_size=2, finetune_epochs=0,
          precise_bn=1, progress=False)
    ck = distill(clip_ckpt, pruned, None, tmp_path / "s.pt", method="lshl2", epochs=1, batch_size=16,
                 precise_bn=1, cache_teacher=True, progress=False)
    assert ck.channel_plan and ck.provenance["hash_num"] > 0
    assert _online_error(ck.model)[0] <= 1e-4


def test_distill_clip_refusals(clip_ckpt: Path, tmp_path: Path) -> None:
    with pytest.raises(EdgekitError, match="classifies clips and student compact_cnn images"):
        distill(clip_ckpt, "compact_cnn", None, tmp_path / "a.pt", epochs=1, progress=False)
    image_teacher = dataclasses.replace(load_checkpoint(clip_ckpt), arch="compact_cnn", task="classify")
    with pytest.raises(EdgekitError, match="student tsm_compact_cnn classifies clips and the teacher images"):
        clip_student(image_teacher, "tsm_compact_cnn")
    with pytest.raises(EdgekitError, match="streaming form"):
        distill(clip_ckpt, "tsm_online_compact_cnn", None, tmp_path / "c.pt", epochs=1, progress=False)
    with pytest.raises(EdgekitError, match="no temporal shift"):
        distill(clip_ckpt, "tsn_compact_cnn", None, tmp_path / "d.pt", epochs=1, shift="causal", progress=False)
