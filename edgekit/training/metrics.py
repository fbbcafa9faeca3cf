"""Evaluation metrics shared by the trainer, ``edgekit eval`` and the benchmarks."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader


def topk_correct(logits: torch.Tensor, target: torch.Tensor, ks: tuple[int, ...] = (1, 5)) -> dict[int, int]:
    """Number of samples whose target is among the top-k logits, per k (k capped at #classes)."""
    maxk = min(max(ks), logits.shape[1])
    pred = logits.topk(maxk, dim=1).indices
    hit = pred.eq(target.view(-1, 1))
    return {k: int(hit[:, :min(k, maxk)].any(dim=1).sum()) for k in ks}


@torch.no_grad()
def evaluate_model(model: nn.Module, loader: DataLoader, task: str = "classify",
                   device: str | torch.device = "cpu") -> dict[str, Any]:
    """Top-1/top-5 and mean CE (classifiers) or MAE/RMSE (regression) over ``loader``."""
    model.eval()
    n, loss_sum, c1, c5, abs_sum, sq_sum = 0, 0.0, 0, 0, 0.0, 0.0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        out = model(x)
        n += x.shape[0]
        if task in ("classify", "clip_classify", "tabular"):
            loss_sum += float(nn.functional.cross_entropy(out, y, reduction="sum"))
            hits = topk_correct(out, y)
            c1, c5 = c1 + hits[1], c5 + hits[5]
        else:
            pred, target = out.reshape(-1).float(), (y[:, 0] if y.dim() > 1 else y).float()
            abs_sum += float((pred - target).abs().sum())
            sq_sum += float(((pred - target) ** 2).sum())
    if n == 0:
        return {"n": 0}
    if task in ("classify", "clip_classify", "tabular"):
        return {"n": n, "top1": 100.0 * c1 / n, "top5": 100.0 * c5 / n, "loss": loss_sum / n}
    return {"n": n, "mae": abs_sum / n, "rmse": (sq_sum / n) ** 0.5}
