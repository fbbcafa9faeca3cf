"""``taylor``: first-order Taylor importance (Molchanov et al., "Importance Estimation for Neural
Network Pruning", CVPR 2019) from Torch-Pruning, on the gradients of the task loss on the labelled
proxy set: cross-entropy for a classifier, a label-distribution model's own loss otherwise."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...errors import EdgekitError
from .registry import register_criterion
from .base import Needs, Proxy, TorchPruningCriterion

if TYPE_CHECKING:
    from torch import nn


@register_criterion
class Taylor(TorchPruningCriterion):
    name = "taylor"
    summary = "first-order Taylor on the labelled proxy images' loss gradients"
    needs = Needs(labels=True, gradients=True)

    def importance(self, imp: Any) -> Any:
        return imp.GroupTaylorImportance()

    def prepare(self, model: nn.Module, proxy: Proxy) -> None:
        """One backward pass of the task loss: the weights' gradients the importance reads."""
        import torch

        if proxy.labels is None:
            raise EdgekitError("taylor importance needs labelled proxy images")
        model.eval()
        model.zero_grad(set_to_none=True)
        with torch.enable_grad():
            if proxy.label_task is not None:
                from ...training.label_distribution import label_loss

                loss = label_loss(proxy.label_task)(model, proxy.images, proxy.labels, 0).loss
            else:
                loss = torch.nn.functional.cross_entropy(model(proxy.images), proxy.labels)
            loss.backward()

    def finish(self, model: nn.Module) -> None:
        model.zero_grad(set_to_none=True)
