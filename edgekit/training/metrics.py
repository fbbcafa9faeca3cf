"""Evaluation metrics shared by the trainer, ``edgekit eval`` and the benchmarks.

Classifiers: top-1, top-5 and mean cross-entropy. Regression: MAE and RMSE. Label
distributions (DLDL-v2; Gao et al., arXiv 2007.01771, section 4 and the authors'
evaluation code): MAE, RMSE, Pearson correlation and, when the data gives per-sample
sigmas, the epsilon-error ``mean(1 - exp(-(y_hat - y)^2 / (2 sigma^2)))``; at test time the
prediction of an image and of its horizontal flip are averaged (``flip``; off for data
where a flip changes the label).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

# the per-task metrics live below the tasks (edgekit.training.evaluators); re-exported here
from .evaluators import (evaluate_classifier, evaluate_label_model, evaluate_regressor,  # noqa: F401
                         label_metrics, topk_correct)


def evaluate_model(model: nn.Module, loader: DataLoader, task: str = "classify",
                   device: str | torch.device = "cpu", flip: bool = False) -> dict[str, Any]:
    """The metrics of ``task`` (a registered task name, :mod:`edgekit.tasks`) over ``loader``:
    top-1/top-5 and mean CE (classifiers), MAE/RMSE (regression) or the label-distribution
    metrics (:func:`evaluate_label_model`, with ``flip``)."""
    from ..tasks import get_task

    return get_task(task).evaluate(model, loader, device, flip)
