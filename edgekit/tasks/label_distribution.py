"""Label distribution (DLDL-v2, Gao et al., arXiv 2007.01771): a distribution over a label
range plus its expectation (the prediction, last column), or one regressed number.

Its settings (label range, loss, flip test) live in the checkpoint's ``extra`` under
``label_distribution`` (:class:`~edgekit.training.label_distribution.LabelTask`)."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from ..errors import EdgekitError
from .base import cosines, register_task
from .regression import RegressionTask

#: the parity gate's limits for this task: the distribution's cosine and max abs error
#: (probabilities), the expectation's worst error and the MAE gap as fractions of the label
#: range (the reasoning and measurements: :mod:`edgekit.exporters.parity`, which re-exports it)
LABEL_THRESHOLDS: dict[str, dict[str, float]] = {
    "fp32": {"min_dist_cosine": 0.9999, "max_dist_abs_err": 1e-3, "max_exp_err": 1e-4, "max_mae_gap": 1e-4},
    "fp16": {"min_dist_cosine": 0.999, "max_exp_err": 1e-2, "max_mae_gap": 5e-3},
    "int8": {"min_dist_cosine": 0.95, "max_exp_mean_err": 0.03, "max_mae_gap": 0.02},
}


def label_values(targets: list[Any]) -> np.ndarray:
    """The label of each target: a number, or the first entry of a ``(label, sigma)`` pair."""
    try:
        return np.asarray([float(np.asarray(t, dtype=np.float64).reshape(-1)[0]) for t in targets])
    except (TypeError, ValueError, IndexError) as exc:
        raise EdgekitError(f"label-distribution targets must be numbers or (label, sigma) pairs: {exc}") from None


def label_range_span(label_range: str | None) -> float | None:
    """``hi - lo`` of a ``lo:hi:step`` label range (``None`` when not given)."""
    if not label_range:
        return None
    from ..models.dldl import LabelSet

    ls = LabelSet.parse(label_range)
    return ls.hi - ls.lo


def _label_numbers(ref: np.ndarray, out: np.ndarray, targets: list[Any] | None,
                   label_range: str | None) -> dict[str, Any]:
    """The distribution and the expectation (last column) compared on their own; MAE of both."""
    nums: dict[str, Any] = {}
    if ref.shape[1] > 1:
        cos = cosines(ref[:, :-1], out[:, :-1])
        nums.update(dist_cosine=float(cos.mean()), dist_min_cosine=float(cos.min()),
                    dist_max_abs_err=float(np.abs(out[:, :-1] - ref[:, :-1]).max()))
    err = np.abs(out[:, -1] - ref[:, -1])
    y = label_values(targets) if targets is not None and len(targets) == len(ref) else None
    span = label_range_span(label_range)
    if span is None:  # no recorded range: the labels' (else the predictions') spread
        basis = y if y is not None else ref[:, -1]
        span = float(basis.max() - basis.min())
    span = max(span, 1e-12)
    nums.update(exp_max_abs_err=float(err.max()), exp_mean_abs_err=float(err.mean()),
                exp_max_err=float(err.max() / span), exp_mean_err=float(err.mean() / span), label_span=float(span))
    if y is not None:
        torch_mae, art_mae = float(np.abs(ref[:, -1] - y).mean()), float(np.abs(out[:, -1] - y).mean())
        nums.update(torch_mae=torch_mae, artifact_mae=art_mae, mae_gap=abs(art_mae - torch_mae),
                    mae_gap_rel=abs(art_mae - torch_mae) / span)
    return nums


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
        from ..training.evaluators import label_metrics

        target = target.float()
        y = target[:, 0] if target.dim() > 1 else target
        sigma = target[:, 1] if target.dim() > 1 and target.shape[1] > 1 else None
        return label_metrics(self.readout(out).float(), y, sigma)

    def evaluate(self, model: nn.Module, loader: Any, device: str | torch.device = "cpu",
                 flip: bool = False) -> dict[str, Any]:
        from ..training.evaluators import evaluate_label_model

        return evaluate_label_model(model, loader, device, flip)

    def soft_logits(self, label_task: Any = None) -> Callable[[torch.Tensor], torch.Tensor]:
        """``log p_hat``; a one-output (L1) model raises a one-line error (callers name the command)."""
        from ..models.dldl import log_distribution

        if label_task is not None and not label_task.has_distribution:
            raise EdgekitError("it regresses one number (--loss l1): there is no label distribution")
        return log_distribution

    def parity_numbers(self, ref: Any, out: Any, targets: list[Any] | None = None,
                       label_range: str | None = None) -> dict[str, Any]:
        return _label_numbers(ref, out, targets, label_range)

    def parity_thresholds(self) -> dict[str, dict[str, float]]:
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
