"""Hinton knowledge distillation: the soft-target KL term, scaled by T^2.

``kd_loss(student, teacher, T) = T^2 * KL(softmax(teacher/T) || softmax(student/T))``,
averaged over the batch (Hinton, Vinyals & Dean 2015). The T^2 factor keeps the
gradient magnitude of the soft term independent of the temperature, so it can be
mixed with cross-entropy at fixed weights (CURL's recovery uses T=2 with weights
0.7 soft / 0.3 hard, docs/methods.md section 1.3).

Shared module: pruning recovery (:mod:`edgekit.compress.recovery`), CURL's importance
(:mod:`edgekit.compress.curl`) and the distillation stage (:mod:`edgekit.compress.distill`)
all import it; do not copy it.

**Teachers without a softmax.** A label-distribution model (DLDL-v2: Gao, Liu, Zhou, Wu &
Geng, "Learning Expectation of Label Distribution for Facial Age and Attractiveness
Estimation", 2020) outputs ``[N, K + 1]``: its distribution ``p_hat`` over the K label
values, then the expectation. What KD and CURL treat as its logits is ``log p_hat``
(:func:`soft_logits`): ``softmax(log p_hat) = p_hat``, so every formula here applies to the
distribution itself, and ``softmax(log p_hat / T)`` is its temperature-scaled version
(``p_hat^(1/T)`` renormalised). The expectation column never enters a KL. A model
regressing one number (the L1 baseline) has no distribution and no logits.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from ..training.label_distribution import LabelTask


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 4.0) -> torch.Tensor:
    """``T^2 * KL(p_teacher^T || p_student^T)``, mean over the batch (teacher is not back-propagated)."""
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    t = float(temperature)
    log_p_s = F.log_softmax(student_logits / t, dim=1)
    log_p_t = F.log_softmax(teacher_logits.detach() / t, dim=1)
    return F.kl_div(log_p_s, log_p_t, reduction="batchmean", log_target=True) * (t * t)


def kl_divergence(p_logits: torch.Tensor, q_logits: torch.Tensor) -> torch.Tensor:
    """Per-sample ``KL(softmax(p) || softmax(q)) = sum_k p_k (log p_k - log q_k)`` at T=1 (no reduction).

    The direction matters: CURL's importance uses KL(masked || original) and its label
    refinement KL(student || stored logits); both put the first argument's distribution first.
    """
    log_p = F.log_softmax(p_logits, dim=-1)
    log_q = F.log_softmax(q_logits, dim=-1)
    return (log_p.exp() * (log_p - log_q)).sum(-1)


def soft_logits(task: str, label_task: "LabelTask | None" = None) -> Callable[[torch.Tensor], torch.Tensor]:
    """What KD and CURL treat as a model's logits, as a function of its output.

    ``task`` and ``label_task`` are a checkpoint's (``Checkpoint.task`` and
    :meth:`~edgekit.training.label_distribution.LabelTask.of` its ``extra``): a classifier's
    output as it is; a label-distribution model's ``log p_hat`` (see the module docstring).
    A one-output model raises a one-line :class:`EdgekitError` (callers name the command)."""
    from ..tasks import get_task

    return get_task(task).soft_logits(label_task)
