"""What one training step returns, and the step losses the built-in tasks own.

A :data:`StepLoss` maps ``(model, x, y, epoch)`` to a :class:`StepOutput` whose named terms
:func:`edgekit.training.loop.fit` logs. This module sits below :mod:`edgekit.tasks` (it
imports only torch and :mod:`edgekit.training.mix`), so a task can hand out its loss
without importing the fit engine, which asks the tasks for metrics; ``edgekit.training.loop``
re-exports every name here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from .mix import Mixer


@dataclass
class StepOutput:
    """One step's loss, its named terms (logged), and logits/targets for running accuracy."""

    loss: torch.Tensor
    terms: dict[str, float] = field(default_factory=dict)
    logits: torch.Tensor | None = None
    targets: torch.Tensor | None = None


StepLoss = Callable[[nn.Module, torch.Tensor, torch.Tensor, int], StepOutput]


def classification_loss(mixer: Mixer | None = None, label_smoothing: float = 0.0,
                        total_epochs: int = 1) -> StepLoss:
    """Cross-entropy with optional mixup/CutMix (per the mixer's schedule)."""
    ce = nn.CrossEntropyLoss(label_smoothing=label_smoothing)

    def step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epoch: int) -> StepOutput:
        if mixer is not None and mixer.should_mix(epoch, total_epochs):
            xm, ya, yb, lam = mixer.mix(x, y)
            out = model(xm)
            loss = lam * ce(out, ya) + (1 - lam) * ce(out, yb)
            return StepOutput(loss, {"ce": float(loss.detach()), "mixed": 1.0}, out, ya if lam >= 0.5 else yb)
        out = model(x)
        loss = ce(out, y)
        return StepOutput(loss, {"ce": float(loss.detach()), "mixed": 0.0}, out, y)

    return step


def regression_loss() -> StepLoss:
    """L1 on a single-output model (MAE is the metric reported)."""

    def step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epoch: int) -> StepOutput:
        target = y[:, 0] if y.dim() > 1 else y
        loss = nn.functional.l1_loss(model(x).reshape(-1), target)
        return StepOutput(loss, {"l1": float(loss.detach())})

    return step
