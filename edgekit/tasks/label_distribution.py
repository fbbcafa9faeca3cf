"""Label distribution (DLDL-v2, Gao et al., arXiv 2007.01771): a distribution over a label
range plus its expectation (the prediction, last column), or one regressed number.

Its settings (label range, loss, flip test) live in the checkpoint's ``extra`` under
``label_distribution`` (:class:`~edgekit.training.label_distribution.LabelTask`)."""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from ..errors import EdgekitError
from .base import register_task
from .regression import RegressionTask


class LabelDistributionTask(RegressionTask):
    """MAE, RMSE, Pearson and epsilon-error (optionally averaged with the mirror image);
    pruning and distillation compare ``log p_hat`` (KL), export parity the distribution and
    the expectation apart; the manifest records which columns hold which."""

    name = "label_distribution"
    prunable = True
    bench_accuracy = True
    flip_test = True
    settings_key = "label_distribution"
    compare = "kl"
    data_tasks = ("regression", "label_distribution")

    def settings(self, extra: dict[str, Any]) -> Any:
        from ..training.label_distribution import LabelTask

        return LabelTask.of(extra)

    def loss(self, *, mixer: Any = None, label_smoothing: float = 0.0, epochs: int = 1,
             label_task: Any = None) -> Callable:
        from ..training.label_distribution import label_loss

        if label_task is None:
            raise EdgekitError("a label-distribution loss needs the task's settings (label range, loss)")
        return label_loss(label_task)

    def readout(self, out: torch.Tensor) -> torch.Tensor:
        from ..models.dldl import prediction

        return prediction(out)

    def metrics(self, out: torch.Tensor, target: torch.Tensor) -> dict[str, Any]:
        from ..training.metrics import label_metrics

        target = target.float()
        y = target[:, 0] if target.dim() > 1 else target
        sigma = target[:, 1] if target.dim() > 1 and target.shape[1] > 1 else None
        return label_metrics(self.readout(out).float(), y, sigma)

    def evaluate(self, model: nn.Module, loader: Any, device: str | torch.device = "cpu",
                 flip: bool = False) -> dict[str, Any]:
        from ..training.metrics import evaluate_label_model

        return evaluate_label_model(model, loader, device, flip)

    def soft_logits(self, label_task: Any = None) -> Callable[[torch.Tensor], torch.Tensor]:
        """``log p_hat``; a one-output (L1) model raises a one-line error (callers name the command)."""
        from ..models.dldl import log_distribution

        if label_task is not None and not label_task.has_distribution:
            raise EdgekitError("it regresses one number (--loss l1): there is no label distribution")
        return log_distribution

    def parity_numbers(self, ref: Any, out: Any, targets: list[Any] | None = None,
                       label_range: str | None = None) -> dict[str, Any]:
        from ..exporters.parity import _label_numbers

        return _label_numbers(ref, out, targets, label_range)

    def parity_thresholds(self) -> dict[str, dict[str, float]]:
        from ..exporters.parity import LABEL_THRESHOLDS

        return LABEL_THRESHOLDS

    def output_layout(self, width: int, label_range: str | None) -> dict[str, Any] | None:
        """``[N, K + 1]`` (a dldl or ranking head): ``{"distribution": {"columns": [0, K]}`` (a
        half-open range, Python's slice) ``, "expectation": {"column": K}, "label_range": ...}``;
        ``[N, 1]`` (one regressed number): the expectation column alone. The prediction is
        always the last column."""
        layout: dict[str, Any] = {}
        if width > 1:
            k = width - 1
            if label_range:
                from ..models.dldl import LabelSet

                size = LabelSet.parse(label_range).size
                if size != k:
                    raise EdgekitError(f"the model outputs {width} columns, but its label range {label_range} has "
                                       f"{size} values (expected {size + 1} columns: distribution + expectation)")
            layout["distribution"] = {"columns": [0, k]}
        layout["expectation"] = {"column": width - 1}
        layout["label_range"] = label_range
        return layout


register_task(LabelDistributionTask)
