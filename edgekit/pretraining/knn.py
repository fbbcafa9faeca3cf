"""The k-NN probe: how good a backbone's features are, without training anything on labels.

Every validation image is classified by its ``k`` nearest training images in cosine
similarity, each voting for its label with weight ``exp(similarity / T)`` (the weighted k-NN
of Wu et al., "Unsupervised Feature Learning via Non-Parametric Instance Discrimination",
arXiv 1805.01978, used by the MoCo authors' CIFAR demo with k 200, T 0.1; the issue's k 20).
Labels are read by the probe only: pretraining never sees them. Features come from the
eval transform (no augmentation), clips through their centre frame.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


@torch.no_grad()
def features(model: nn.Module, loader: Any, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """L2-normalised outputs of ``model`` (eval mode) and the targets over ``loader``."""
    was = model.training
    model.eval()
    feats, targets = [], []
    try:
        for x, y in loader:
            feats.append(F.normalize(model(x.to(device)).reshape(len(x), -1).float(), dim=1).cpu())
            targets.append(torch.as_tensor(y).cpu())
    finally:
        model.train(was)
    return torch.cat(feats), torch.cat(targets).long()


def knn_predict(bank: torch.Tensor, bank_labels: torch.Tensor, query: torch.Tensor, classes: int,
                k: int = 20, temperature: float = 0.1, chunk: int = 1024, exclude_self: bool = False) -> torch.Tensor:
    """The label each row of ``query`` gets from its ``k`` most similar rows of ``bank`` (both
    normalised), weighted by ``exp(similarity / temperature)``. ``exclude_self``: ``query`` is
    ``bank`` and a row may not vote for itself (leave-one-out)."""
    k = min(k, len(bank) - int(exclude_self))
    preds = []
    for start in range(0, len(query), chunk):
        q = query[start:start + chunk]
        sims = q @ bank.T
        if exclude_self:
            rows = torch.arange(len(q))
            sims[rows, rows + start] = float("-inf")
        sim, idx = sims.topk(k, dim=1)
        votes = torch.zeros(len(q), classes).scatter_add_(1, bank_labels[idx], (sim / temperature).exp())
        preds.append(votes.argmax(1))
    return torch.cat(preds) if preds else torch.zeros(0, dtype=torch.long)


def knn_top1(model: nn.Module, bank_loader: Any, val_loader: Any, classes: int, k: int = 20,
             temperature: float = 0.1, device: torch.device | str = "cpu") -> float:
    """Top-1 accuracy (%) of the k-NN probe of ``model`` with the training split as the bank."""
    bank, bank_labels = features(model, bank_loader, device)
    query, labels = features(model, val_loader, device)
    if not len(query):
        return float("nan")
    return 100.0 * float((knn_predict(bank, bank_labels, query, classes, k, temperature) == labels).float().mean())
