"""The metrics each built-in task owns: top-k counts, classifier, regressor and label-distribution
evaluation over a loader (see :mod:`edgekit.training.metrics` for what each number is).

This module sits below :mod:`edgekit.tasks` (it imports only torch and
:mod:`edgekit.models.dldl`), so a task computes its metrics without importing
:mod:`edgekit.training.metrics`, whose :func:`~edgekit.training.metrics.evaluate_model` asks the
task; that module re-exports every name here.
"""
from __future__ import annotations

import math
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


def label_metrics(pred: torch.Tensor, y: torch.Tensor, sigma: torch.Tensor | None = None) -> dict[str, Any]:
    """MAE, RMSE, Pearson correlation and (given per-sample sigmas) epsilon-error of ``pred`` against ``y``."""
    pred, y = pred.double().reshape(-1), y.double().reshape(-1)
    n = int(pred.numel())
    if n == 0:
        return {"n": 0}
    err = pred - y
    out: dict[str, Any] = {"n": n, "mae": float(err.abs().mean()), "rmse": float(err.pow(2).mean().sqrt())}
    pc, yc = pred - pred.mean(), y - y.mean()
    denom = float(pc.norm() * yc.norm())
    out["pearson"] = float((pc * yc).sum()) / denom if denom > 0 else math.nan
    if sigma is not None:
        s = sigma.double().reshape(-1).clamp_min(1e-10)  # sigma 0 clamped as in the paper's code
        out["eps_error"] = float((1 - torch.exp(-err.pow(2) / (2 * s * s))).mean())
    return out


@torch.no_grad()
def evaluate_label_model(model: nn.Module, loader: DataLoader, device: str | torch.device = "cpu",
                         flip: bool = True) -> dict[str, Any]:
    """:func:`label_metrics` of a label-distribution (or one-output) model over ``loader``; with
    ``flip`` the outputs for each image and its horizontal flip are averaged first."""
    from ..models.dldl import prediction

    model.eval()
    preds, ys, sigmas = [], [], []
    for x, y in loader:
        x = x.to(device)
        out = model(x)
        if flip:
            out = (out + model(torch.flip(x, dims=[-1]))) / 2
        preds.append(prediction(out).float().cpu())
        y = y.float().cpu()
        ys.append(y[:, 0] if y.dim() > 1 else y)
        if y.dim() > 1 and y.shape[1] > 1:
            sigmas.append(y[:, 1])
    if not preds:
        return {"n": 0}
    sig = torch.cat(sigmas) if sigmas and len(sigmas) == len(preds) else None
    return label_metrics(torch.cat(preds), torch.cat(ys), sig)


@torch.no_grad()
def evaluate_classifier(model: nn.Module, loader: DataLoader, device: str | torch.device = "cpu") -> dict[str, Any]:
    """Top-1/top-5 (%) and mean cross-entropy of a classifier over ``loader`` (running sums)."""
    model.eval()
    n, loss_sum, c1, c5 = 0, 0.0, 0, 0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        out = model(x)
        n += x.shape[0]
        loss_sum += float(nn.functional.cross_entropy(out, y, reduction="sum"))
        hits = topk_correct(out, y)
        c1, c5 = c1 + hits[1], c5 + hits[5]
    if n == 0:
        return {"n": 0}
    return {"n": n, "top1": 100.0 * c1 / n, "top5": 100.0 * c5 / n, "loss": loss_sum / n}


@torch.no_grad()
def evaluate_regressor(model: nn.Module, loader: DataLoader, device: str | torch.device = "cpu") -> dict[str, Any]:
    """MAE and RMSE of a one-output model over ``loader`` (targets: numbers or ``(label, sigma)``)."""
    model.eval()
    n, abs_sum, sq_sum = 0, 0.0, 0.0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        out = model(x)
        n += x.shape[0]
        pred, target = out.reshape(-1).float(), (y[:, 0] if y.dim() > 1 else y).float()
        abs_sum += float((pred - target).abs().sum())
        sq_sum += float(((pred - target) ** 2).sum())
    if n == 0:
        return {"n": 0}
    return {"n": n, "mae": abs_sum / n, "rmse": (sq_sum / n) ** 0.5}
