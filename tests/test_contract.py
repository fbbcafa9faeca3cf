"""Contract tests over the registry, as timm parametrizes over ``list_models``.

Every edgekit architecture and a list of torchvision families go through the whole
pipeline at 32 px with 4 classes: **build** (forward, and the declared layout agrees
with what hooks find) -> **train** (one batch of ``edgekit train``, in training mode:
auxiliary heads would surface here) -> **prune** (L1 to 50 % MACs, no fine-tuning)
-> **rebuild** (the pruned checkpoint rebuilt from its channel plan in a fresh Python
process, outputs equal) -> **export** (ONNX through the parity gate). Known failures
are ``xfail(strict=True)`` with the reason; heavy architectures are ``slow``.

:func:`~edgekit.benchmark.contract.run_contract` (in the package) yields one (stage, status, detail)
per stage; the test asserts on it and ``benchmarks/contract_matrix.py`` prints the same stages as a matrix.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from edgekit.errors import EdgekitError
from edgekit.benchmark.contract import KNOWN_FAILURES, SIZE, SLOW, STAGES, architectures, run_contract
from edgekit.registry import create_model

def _param(arch: str):
    marks = []
    if arch in SLOW:
        marks.append(pytest.mark.slow)
    if arch in KNOWN_FAILURES:
        stage, reason = KNOWN_FAILURES[arch]
        marks.append(pytest.mark.xfail(strict=True, raises=AssertionError, reason=f"{stage}: {reason}"))
    return pytest.param(arch, marks=marks, id=arch)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("arch", [_param(a) for a in architectures()])
def test_contract(arch: str, tmp_path: Path) -> None:
    results = list(run_contract(arch, tmp_path))
    print(json.dumps({arch: results}, indent=1))
    failed = {stage: detail for stage, status, detail in results if status != "pass"}
    if arch in KNOWN_FAILURES and set(failed) != {KNOWN_FAILURES[arch][0]}:
        raise RuntimeError(f"{arch} should fail only at {KNOWN_FAILURES[arch][0]}, got {failed}")  # not the xfail
    assert [s for s, *_ in results] == list(STAGES), failed
    assert not failed, "; ".join(f"{k}: {v}" for k, v in failed.items())


# -- the fixes behind the matrix, pinned on their own ---------------------------------------------------


def test_grouped_convolutions_pruned_by_channel_position() -> None:
    """RegNetY's grouped 3x3 convolutions lose the same channels in every conv group: groups stay."""
    from edgekit.compress.prune import score_units
    from edgekit.compress.selection import select
    from edgekit.compress.units import UnitGraph
    from edgekit.registry import count_macs

    model = create_model("regnet_y_400mf", num_classes=4, small_input=True).eval()
    x = torch.randn(4, 3, SIZE, SIZE)
    graph = UnitGraph(model, x[:1])
    conv = model.get_submodule("trunk_output.block2.block2-0.f.b.0")
    g = next(g for g in graph.groups if g.name == "trunk_output.block2.block2-0.f.b.0")
    assert (g.per_unit, g.size, g.protected) == (conv.groups, conv.out_channels // conv.groups, None)
    sel = select(graph, score_units("l1", model, graph, x, None, progress=False), kind="macs", ratio=0.5, rank="raw")
    before = count_macs(model, (1, 3, SIZE, SIZE))
    graph.prune(sel.removal)
    assert conv.groups == 13 and conv.out_channels % 13 == 0 and conv.in_channels % 13 == 0
    assert count_macs(model, (1, 3, SIZE, SIZE)) / before == pytest.approx(sel.macs / graph.base_macs)
    assert sel.macs / graph.base_macs <= 0.5
    assert model(x).shape == (4, 4)


def test_shufflenet_prune_is_a_clear_refusal() -> None:
    from edgekit.compress.units import UnitGraph

    model = create_model("shufflenet_v2_x1_0", num_classes=4, small_input=True).eval()
    with pytest.raises(EdgekitError, match="channel shuffle"):
        UnitGraph(model, torch.randn(1, 3, SIZE, SIZE))


def test_googlenet_trains_on_plain_logits() -> None:
    model = create_model("googlenet", num_classes=4, small_input=True).train()
    out = model(torch.randn(2, 3, SIZE, SIZE))
    assert isinstance(out, torch.Tensor) and out.shape == (2, 4)
    nn.functional.cross_entropy(out, torch.tensor([0, 1])).backward()
