"""Baseline importance criteria from Torch-Pruning, on the same units as CURL.

``l1`` / ``l2`` (filter magnitude, Li et al. 2017), ``bn`` (BN scale, network
slimming), ``taylor`` (first-order Taylor, Molchanov et al. 2019; gradients of the
cross-entropy on the proxy set) and ``random``. Each scores a whole dependency group
with Torch-Pruning's group importance (mean over coupled layers, mean-normalised per
group), so ``edgekit prune --method l1`` differs from CURL only in the criterion:
same groups, same minimum keep ratio, same target search, same recovery.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ..errors import EdgekitError
from .prune_config import BASELINES
from .units import UnitGraph


def tp_scores(method: str, model: nn.Module, graph: UnitGraph, images: torch.Tensor,
              labels: torch.Tensor | None = None, seed: int = 0,
              loss: Callable[..., torch.Tensor] | None = None) -> dict[int, torch.Tensor]:
    """Importance per unit of every prunable group (higher = more important). ``loss(model, images,
    labels)``: the scalar Taylor differentiates (default cross-entropy; a label-distribution model's own loss)."""
    import torch_pruning as tp  # a core dependency
    imp_cls = tp.importance
    if method in ("l1", "l2"):
        imp = imp_cls.GroupMagnitudeImportance(p=1 if method == "l1" else 2)
    elif method == "bn":
        imp = imp_cls.BNScaleImportance()
    elif method == "taylor":
        imp = imp_cls.GroupTaylorImportance()
        if labels is None:
            raise EdgekitError("taylor importance needs labelled proxy images")
        model.eval()
        model.zero_grad(set_to_none=True)
        with torch.enable_grad():
            (loss(model, images, labels) if loss else nn.functional.cross_entropy(model(images), labels)).backward()
    elif method == "random":
        imp = imp_cls.RandomImportance()
        torch.manual_seed(seed)
    else:
        raise EdgekitError(f"unknown baseline {method!r}; expected one of {', '.join(BASELINES)}")
    out: dict[int, torch.Tensor] = {}
    for g in graph.groups:
        if not g.prunable:
            continue
        with torch.no_grad():
            s = imp(g.group)
        if s is None:  # e.g. BN scale on a group without BatchNorm: fall back to L1
            s = imp_cls.GroupMagnitudeImportance(p=1)(g.group)
        if s is not None and len(s) == g.size * g.per_unit:
            s = g.fold(s)  # grouped convolutions: one score per channel position
        if s is None or len(s) != g.size:
            raise EdgekitError(f"{method} importance cannot score layer group {g.name}")
        out[g.index] = s.detach().float().cpu()
    if method == "taylor":
        model.zero_grad(set_to_none=True)
    return out
