"""``random``: Torch-Pruning's random importance, seeded by the run's seed (the floor any criterion
should beat)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .registry import register_criterion
from .base import Proxy, TorchPruningCriterion

if TYPE_CHECKING:
    from torch import nn


@register_criterion
class Random(TorchPruningCriterion):
    name = "random"
    summary = "uniform random scores, seeded"

    @property
    def seeded(self) -> bool:
        return True

    def importance(self, imp: Any) -> Any:
        return imp.RandomImportance()

    def prepare(self, model: nn.Module, proxy: Proxy) -> None:
        import torch

        torch.manual_seed(proxy.seed)
