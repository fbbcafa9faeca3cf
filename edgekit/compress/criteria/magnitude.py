"""Magnitude criteria from Torch-Pruning, on the same units as CURL: ``l1`` / ``l2`` (filter
magnitude, Li et al., "Pruning Filters for Efficient ConvNets", 2017) and ``bn`` (the BatchNorm
scale, network slimming: Liu et al. 2017). Weights only: no data, no labels."""
from __future__ import annotations

from typing import Any

from .registry import register_criterion
from .base import TorchPruningCriterion


@register_criterion
class L1(TorchPruningCriterion):
    name = "l1"
    summary = "filter L1 norm, Torch-Pruning"

    def importance(self, imp: Any) -> Any:
        return imp.GroupMagnitudeImportance(p=1)


@register_criterion
class L2(TorchPruningCriterion):
    name = "l2"
    summary = "filter L2 norm"

    def importance(self, imp: Any) -> Any:
        return imp.GroupMagnitudeImportance(p=2)


@register_criterion
class BatchNormScale(TorchPruningCriterion):
    name = "bn"
    summary = "BatchNorm scale, L1 where a group has none"

    def importance(self, imp: Any) -> Any:
        return imp.BNScaleImportance()
