"""The label-distribution task: DLDL-v2's targets, its loss and the baselines, and its metrics.

Gao, Liu, Zhou, Wu & Geng, "Learning Expectation of Label Distribution for Facial Age
and Attractiveness Estimation" (arXiv 2007.01771, 2020):

* **target** (section 3.1): a Gaussian around the label ``y`` with the sample's own
  ``sigma`` (ChaLearn's vote std) or a fixed one, normalised over the discrete label set
  ``l_k``; a sigma of 0 is clamped to 1e-10 as in the authors' code (the target becomes
  one-hot on the nearest label). Computed as a softmax of ``-(l_k - y)^2 / (2 sigma^2)`` so
  a tiny sigma never divides 0 by 0.
* **losses** (``--loss``), all on the same ``[N, K + 1]`` model output
  (:mod:`edgekit.models.dldl`):

  ========  ===================================================================
  dldl      ``KL(p || p_hat) + lambda * |y_hat - y|`` (section 3.2; lambda 1)
  kl        ``KL(p || p_hat)`` only (DLDL, the paper's ablation)
  l1        L1 regression on one output (the regression head), computed on
            targets normalised by half the label range, as its read-out is
  ce        cross-entropy on the nearest label, read out by the expectation
  ranking   binary cross-entropy on "y > l_k" for k = 0..K-2 (Ranking-CNN,
            which section 3.4 shows learns a label distribution implicitly)
  ========  ===================================================================

  KL is averaged over the batch (``batchmean``, the formula of the paper; the authors'
  Torch code also divides by K). KL, CE and the ranking BCE use the head's logits (a
  forward hook on its Linear), so ``log_softmax`` stays exact however peaked ``p_hat`` is.

The task's metrics (MAE, RMSE, epsilon-error, Pearson) are in :mod:`edgekit.training.metrics`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import EdgekitError
from ..models.dldl import LabelSet, head_of, prediction
from ..numbers import non_negative_float, optional
from ..stage_config import LABEL_LOSSES, choice
from .step import StepLoss, StepOutput

MIN_SIGMA = 1e-10
#: the fixed sigma, in label steps, when neither ``--sigma`` nor the data gives one (DLDL's
#: age experiments used 2 years on a 1-year grid)
DEFAULT_SIGMA_STEPS = 2.0


@dataclass
class LabelTask:
    """What a label-distribution checkpoint records about its task (``Checkpoint.extra``)."""

    label_range: str
    loss: str = "dldl"
    lam: float = 1.0
    sigma: float | None = None  # fixed sigma; None: the data's per-sample sigma, else 2 steps
    flip_test: bool = True  # average the prediction of the image and its horizontal flip

    KEY = "label_distribution"

    def __post_init__(self) -> None:
        self.label_range = LabelSet.parse(self.label_range).text()
        self.loss = choice("loss", self.loss, LABEL_LOSSES)
        self.lam = non_negative_float("lambda", self.lam)
        self.sigma = optional(non_negative_float, "sigma", self.sigma)

    @property
    def labels(self) -> LabelSet:
        return LabelSet.parse(self.label_range)

    @property
    def head(self) -> str:
        """The head this loss trains: ``dldl``, ``ranking`` or ``regression`` (one number, l1)."""
        return {"l1": "regression", "ranking": "ranking"}.get(self.loss, "dldl")

    @property
    def has_distribution(self) -> bool:
        """Whether the model outputs a label distribution (every loss but l1)."""
        return self.loss != "l1"

    def arch_kwargs(self) -> dict[str, Any]:
        """Registry kwargs of a model for this task."""
        classes = self.labels.size if self.has_distribution else 1
        return {"num_classes": classes, "head": self.head, "label_range": self.label_range}

    def record(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items()}

    @classmethod
    def of(cls, extra: dict[str, Any] | None) -> "LabelTask | None":
        """The task recorded in a checkpoint's ``extra`` (``None`` if it is not this task)."""
        rec = (extra or {}).get(cls.KEY)
        return cls(**rec) if rec else None

    def fixed_sigma(self) -> float:
        """The sigma used where a sample has none: ``--sigma``, else 2 label steps."""
        return self.sigma if self.sigma is not None else DEFAULT_SIGMA_STEPS * self.labels.step


def split_target(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(label [N], sigma [N] or None)`` from a ``[N]`` or ``[N, 2]`` target tensor."""
    y = y.float()
    if y.dim() == 1:
        return y, None
    return y[:, 0], (y[:, 1] if y.shape[1] > 1 else None)


def gaussian_target(y: torch.Tensor, sigma: torch.Tensor | float, values: torch.Tensor) -> torch.Tensor:
    """``p_k`` proportional to ``exp(-(l_k - y)^2 / (2 sigma^2))``, normalised over the label set."""
    sigma_t = torch.as_tensor(sigma, dtype=torch.float32, device=y.device).expand_as(y).clamp_min(MIN_SIGMA)
    d = values.to(y.device).view(1, -1) - y.view(-1, 1)
    return torch.softmax(-(d * d) / (2 * sigma_t.view(-1, 1) ** 2), dim=1)


def nearest_bin(y: torch.Tensor, labels: LabelSet) -> torch.Tensor:
    """Index of the label value nearest to each ``y`` (labels outside the set go to its ends)."""
    return ((y - labels.lo) / labels.step).round().clamp(0, labels.size - 1).long()


def rank_targets(y: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Ranking-CNN's binary targets ``[y > l_k]`` for ``k = 0..K-2``, as floats ``[N, K - 1]``."""
    return (y.view(-1, 1) > values[:-1].to(y.device).view(1, -1)).float()


def _forward(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The model output and its label head's logits (``None`` for a one-output model)."""
    head = head_of(model)
    if head is None:
        return model(x), None
    seen: list[torch.Tensor] = []
    hook = head.classifier.register_forward_hook(lambda _m, _i, out: seen.append(out))
    try:
        out = model(x)
    finally:
        hook.remove()
    return out, seen[-1]


def label_loss(task: LabelTask) -> StepLoss:
    """The training step of ``task.loss`` (see the module docstring)."""
    labels = task.labels
    values = labels.values()
    fixed = task.fixed_sigma()
    half_span = (labels.hi - labels.lo) / 2

    def step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epoch: int) -> StepOutput:
        target, sigma = split_target(y)
        if task.sigma is not None or sigma is None:
            sigma = torch.full_like(target, fixed)
        out, logits = _forward(model, x)
        y_hat = prediction(out)
        l1 = (y_hat - target).abs().mean()
        if task.loss == "l1":  # on targets normalised by the half range, the scale the regression head reads out
            return StepOutput(l1 / half_span, {"l1": float(l1.detach())})
        if logits is None:
            raise EdgekitError(f"--loss {task.loss} needs a label-distribution head (head='dldl' or 'ranking')")
        terms: dict[str, float] = {"l1": float(l1.detach())}
        if task.loss == "ranking":
            loss = F.binary_cross_entropy_with_logits(logits, rank_targets(target, values))
            terms["bce"] = float(loss.detach())
        elif task.loss == "ce":
            loss = F.cross_entropy(logits, nearest_bin(target, labels))
            terms["ce"] = float(loss.detach())
        else:
            kl = F.kl_div(F.log_softmax(logits, dim=1), gaussian_target(target, sigma, values), reduction="batchmean")
            terms["kl"] = float(kl.detach())
            loss = kl + task.lam * l1 if task.loss == "dldl" else kl
        return StepOutput(loss, terms)

    return step
