"""Regression: one output regressed with L1; MAE/RMSE."""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from .base import Task, register_task


class RegressionTask(Task):
    """Numeric targets (a number, or ``(label, sigma)`` of which the label counts); the
    prediction is the output itself; models are ranked by MAE; there is no distribution, so
    distillation compares raw outputs."""

    name = "regression"
    trainable = True

    def model_task(self, label_task: Any) -> str:
        """Numeric data trains a label-distribution model when the run chose its settings."""
        return "label_distribution" if label_task else "regression"

    def loss(self, *, mixer: Any = None, label_smoothing: float = 0.0, epochs: int = 1,
             label_task: Any = None) -> Callable:
        from ..training.step import regression_loss

        return regression_loss()

    def metrics(self, out: torch.Tensor, target: torch.Tensor) -> dict[str, Any]:
        pred = out.reshape(-1).float()
        err = pred - (target[:, 0] if target.dim() > 1 else target).float()
        return {"mae": float(err.abs().mean()), "rmse": float(err.pow(2).mean().sqrt())}

    def evaluate(self, model: nn.Module, loader: Any, device: str | torch.device = "cpu",
                 flip: bool = False) -> dict[str, Any]:
        from ..training.evaluators import evaluate_regressor

        return evaluate_regressor(model, loader, device)


register_task(RegressionTask)
