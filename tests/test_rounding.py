"""Per-runtime channel rounding and the "never slower than the parent" latency search.

Timing claims live in benchmarks/ort_channels.md; these tests check the logic: ``round_to="auto"``
resolves to the runtime's multiple, selections keep counts on that multiple, onnxruntime's
fast path really depends on the count (read from the graph it optimises, not timed), and the
latency search refuses to return a candidate that does not beat its parent, using a cost model
injected through ``measure`` that mimics the measured cliff (counts off the multiple are slow).
"""
from __future__ import annotations

import math

import pytest
import torch

from edgekit.checkpoint import Checkpoint
from edgekit.compress.latency import confirm_faster, select_for_latency
from edgekit.compress.rounding import (DEFAULT_ROUND_TO, ROUND_TO, onnxruntime_block, parse_round_to,
                                       resolve_round_to, round_to_for)
from edgekit.compress.selection import Target, select
from edgekit.compress.units import UnitGraph
from edgekit.errors import EdgekitError
from edgekit.models.zoo import compact_cnn


def _ckpt() -> Checkpoint:
    torch.manual_seed(0)
    model = compact_cnn(num_classes=4).eval()
    return Checkpoint(arch="compact_cnn", arch_kwargs={"num_classes": 4}, state_dict=model.state_dict(),
                      input_spec={"size": [32, 32], "channels": 3})


def _graph_and_scores(ckpt: Checkpoint) -> tuple[UnitGraph, dict[int, torch.Tensor]]:
    graph = UnitGraph(ckpt.model, torch.randn(1, 3, 32, 32))
    gen = torch.Generator().manual_seed(0)
    return graph, {g.index: torch.rand(g.size, generator=gen) for g in graph.groups if g.prunable}


def _cliff_cost(ckpt: Checkpoint, runtime: str) -> float:
    """Fake latency shaped like the measurement: cost steps at multiples of 16 (padding), and a
    count that is not a multiple of 16 leaves the fast path (10x)."""
    ms = 0.0
    for m in ckpt.model.modules():
        if isinstance(m, torch.nn.Conv2d):
            padded = math.ceil(m.out_channels / 16) * 16 * m.in_channels // m.groups * m.kernel_size[0] ** 2
            ms += padded * (1 if m.out_channels % 16 == 0 else 10) * 1e-5
    return ms


def _kept(graph: UnitGraph, removal: dict[int, list[int]]) -> list[tuple[int, int]]:
    return [(g.size, g.size - len(removal.get(g.index, []))) for g in graph.groups if g.prunable]


def test_auto_resolves_to_the_runtime_multiple() -> None:
    assert resolve_round_to("auto", "litert") == ROUND_TO["litert"] == round_to_for("litert")
    assert resolve_round_to("AUTO", "onnxruntime") == (onnxruntime_block() or ROUND_TO["onnxruntime"])
    assert resolve_round_to("auto", None) == DEFAULT_ROUND_TO  # macs/params targets name no runtime
    assert resolve_round_to(None, "onnxruntime") is None and resolve_round_to(4, "onnxruntime") == 4
    assert parse_round_to("12") == 12
    for bad in (0, -8, "eight", 2.5, True):
        with pytest.raises(EdgekitError, match="round_to must be a positive integer or 'auto'"):
            parse_round_to(bad)


def test_onnxruntime_fast_path_needs_the_multiple(tmp_path) -> None:
    """The cause of the slowdown, read from onnxruntime's optimised graph: a count on the block
    runs as an NCHWc convolution, one channel more as a plain NCHW FusedConv. Where the probe
    finds no block (an onnxruntime without the NCHWc layout on this CPU), no count gets it: the
    test checks that instead of skipping, so a probe that wrongly says None fails here."""
    np = pytest.importorskip("numpy")
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    block = onnxruntime_block()

    def ops(c: int) -> set[str]:
        w = numpy_helper.from_array(np.ones((c, 1, 3, 3), np.float32), "w")
        g = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[3, 3], pads=[1] * 4,
                                                group=c)], "dw",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, c, 8, 8])], [w])
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
        m.ir_version = 7
        opts = ort.SessionOptions()
        opts.optimized_model_filepath = str(tmp_path / f"dw{c}.onnx")
        ort.InferenceSession(m.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        return {f"{n.domain}:{n.op_type}" for n in onnx.load(opts.optimized_model_filepath).graph.node}

    if block is None:
        assert not any("com.microsoft.nchwc:Conv" in ops(c) for c in (8, 16, 32)), "NCHWc in use, probe said None"
        return
    assert "com.microsoft.nchwc:Conv" in ops(2 * block)
    assert "com.microsoft.nchwc:Conv" not in ops(2 * block + 1)


def test_a_broken_onnxruntime_probe_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only "not installed" means no block; a probe that breaks is a one-line error, not a silent None
    (which would read as "no fast path" and let the fast-path test above pass vacuously)."""
    ort = pytest.importorskip("onnxruntime")

    def broken(*args, **kwargs):
        raise RuntimeError("session refused\nsecond line")

    monkeypatch.setattr(ort, "InferenceSession", broken)
    onnxruntime_block.cache_clear()
    try:
        with pytest.raises(EdgekitError, match=r"probe failed \(RuntimeError: session refused\)") as err:
            onnxruntime_block()
        assert "\n" not in str(err.value)
    finally:
        onnxruntime_block.cache_clear()  # later callers probe the real onnxruntime again


def test_auto_round_to_keeps_counts_on_the_multiple() -> None:
    graph, scores = _graph_and_scores(_ckpt())
    mult = resolve_round_to("auto", "litert")
    sel = select(graph, scores, kind="macs", ratio=0.5, min_keep=0.3, round_to=mult)
    kept = _kept(graph, sel.removal)
    assert any(k < size for size, k in kept)  # something was pruned
    assert all(k % mult == 0 or k == size for size, k in kept), kept
    plain = select(graph, scores, kind="macs", ratio=0.5, min_keep=0.3, round_to=None)
    assert any(k % mult for size, k in _kept(graph, plain.removal) if k < size)  # what rounding prevents


def test_latency_search_refuses_a_candidate_slower_than_the_parent() -> None:
    ckpt = _ckpt()
    graph, scores = _graph_and_scores(ckpt)
    base = _cliff_cost(ckpt, "onnxruntime")
    target = Target("latency", 0.8 * base, "onnxruntime")
    with pytest.raises(EdgekitError, match="no pruned candidate runs faster than the unpruned model on onnxruntime"):
        select_for_latency(graph, scores, ckpt, target, rank="raw", min_keep=0.3, round_to=None,
                           measure=_cliff_cost, iterations=2)
    sel, info = select_for_latency(graph, scores, ckpt, target, rank="raw", min_keep=0.3, round_to=16,
                                   measure=_cliff_cost, iterations=3)
    assert info["latency_ms"] <= target.value < base and info["round_to"] == 16
    assert info["confirmed"]["pruned_ms"] < info["confirmed"]["parent_ms"] == base
    assert all(k % 16 == 0 or k == size for size, k in _kept(graph, sel.removal))


def test_confirm_faster_remeasures_against_the_parent() -> None:
    """A candidate that met the target by one lucky measurement is re-timed alternately with its
    parent; slower there, it is refused."""
    parent, child = _ckpt(), _ckpt()
    calls: list[str] = []

    def noisy(ck: Checkpoint, runtime: str) -> float:
        calls.append("parent" if ck is parent else "child")
        return 1.0 if ck is parent else 1.2

    with pytest.raises(EdgekitError, match=r"1\.200 ms pruned against 1\.000 ms unpruned"):
        confirm_faster(parent, child, "litert", noisy, rounds=3)
    assert calls == ["parent", "child"] * 3
    out = confirm_faster(child, parent, "litert", noisy, rounds=1)
    assert out["speedup"] == pytest.approx(1.2)
