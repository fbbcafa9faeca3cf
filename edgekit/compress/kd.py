"""Knowledge distillation on logits (Hinton et al., 2015): KL at temperature T, scaled by T^2.

Shared by both compression stages: ``edgekit distill`` (the ``kd`` term, alpha-weighted, see
:mod:`edgekit.compress.distill`) and pruning recovery (the unpruned model teaching its
pruned copy). The T^2 factor keeps gradient magnitudes comparable across temperatures;
T = 4 is the LSH paper's and RepDistiller's ``kd_T`` default.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

DEFAULT_T = 4.0


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, T: float = DEFAULT_T,
            reduction: str = "mean") -> torch.Tensor:
    """``T^2 * KL(softmax(t/T) || softmax(s/T))``, summed over classes.

    ``reduction='mean'`` averages over the batch (``batchmean``); ``'none'`` returns one
    value per sample (for masked averages). The teacher side carries no gradient.
    """
    log_p_s = F.log_softmax(student_logits / T, dim=1)
    log_p_t = F.log_softmax(teacher_logits.detach() / T, dim=1)
    per_sample = (log_p_t.exp() * (log_p_t - log_p_s)).sum(dim=1) * (T * T)
    if reduction == "none":
        return per_sample
    if reduction == "mean":
        return per_sample.mean()
    raise ValueError(f"unknown reduction {reduction!r}")
