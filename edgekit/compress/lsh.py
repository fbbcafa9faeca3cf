"""LSH feature mimicking (Wang, Ge & Wu, "Distilling Knowledge by Mimicking Features", TPAMI 2021).

The student's penultimate feature ``f_S`` is pushed towards the teacher's ``f_T`` through
N random hyperplanes (docs/methods.md section 2.2; the authors' code, ``distiller_zoo/LSH.py``
of github.com/DoctorKey/LSHFM.singleclassification):

* projection ``h(f) = W f + b`` with ``W ~ N(0, std^2)`` of shape (N, D), **frozen**
  (a buffer, never a parameter); ``std`` is the std of the teacher classifier's weights;
  N defaults to 4 D (ImageNet / detection setting; CIFAR used 32 D);
* ``b`` is frozen too: ``-median`` over the training set of the teacher's projections,
  per hash function, so each bit is balanced (CIFAR default), or ``-mean``, or 0
  (ImageNet / detection). The median is torch's lower median, estimated on at most
  ``max_samples`` training images (a bias estimate, the exact median is not needed);
* targets are the teacher's sign bits ``1[W f_T + b > 0]``; the loss is BCE-with-logits
  of the student's projections against them, mean over the N bits;
* ``LSHL2`` adds the MSE between the features (mean over D), unweighted;
* the ``_S`` variant (the authors' default, edgekit's too) averages the per-sample loss
  only over samples the teacher classifies correctly.

The per-sample functions here are the golden-tested core; :class:`LSHProjector` holds
the frozen hyperplanes. The plain ``L2`` baseline is :func:`feature_mse`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def lsh_bce(student_proj: torch.Tensor, teacher_proj: torch.Tensor) -> torch.Tensor:
    """Per-sample mean over hash bits of ``BCEWithLogits(student_proj, 1[teacher_proj > 0])``."""
    target = (teacher_proj > 0).to(student_proj.dtype)
    return F.binary_cross_entropy_with_logits(student_proj, target, reduction="none").mean(dim=1)


def feature_mse(student_feat: torch.Tensor, teacher_feat: torch.Tensor) -> torch.Tensor:
    """Per-sample mean squared error over feature dimensions (the L2 mimicking loss)."""
    return (student_feat - teacher_feat.to(student_feat.dtype)).pow(2).mean(dim=1)


def masked_mean(per_sample: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of ``per_sample`` over samples where ``mask`` is true (all when None); 0 if none are."""
    if mask is None:
        return per_sample.mean()
    w = mask.to(per_sample.dtype)
    return (per_sample * w).sum() / w.sum().clamp_min(1.0)


class LSHProjector(nn.Module):
    """Frozen random hyperplanes ``W f + b`` (W: (N, D) ~ N(0, std^2), b: (N,)), saved as buffers."""

    def __init__(self, dim: int, hash_num: int | None = None, std: float = 1.0, seed: int = 0) -> None:
        super().__init__()
        n = 4 * dim if hash_num is None else int(hash_num)
        if n < 1 or dim < 1:
            raise ValueError("hash_num and dim must be positive")
        gen = torch.Generator().manual_seed(seed)
        self.register_buffer("weight", torch.randn(n, dim, generator=gen) * float(std))
        self.register_buffer("bias", torch.zeros(n))

    @property
    def hash_num(self) -> int:
        return int(self.weight.shape[0])

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        return F.linear(feat, self.weight.to(feat.dtype), self.bias.to(feat.dtype))

    @torch.no_grad()
    def fit_bias(self, teacher_feats: torch.Tensor, mode: str = "median") -> torch.Tensor:
        """Set ``b`` from the teacher's features over the training set: -median, -mean or 0.

        The modes are the choices of :data:`edgekit.compress.distill_config.BIAS_MODES`, which
        the config checks; this module stays below the config and does not import it."""
        if mode == "0":
            self.bias.zero_()
            return self.bias
        if mode not in ("median", "mean"):
            raise ValueError(f"unknown LSH bias {mode!r}; expected median, mean or 0")
        proj = F.linear(teacher_feats.float().to(self.weight.device), self.weight)
        self.bias.copy_(-(proj.median(dim=0).values if mode == "median" else proj.mean(dim=0)))
        return self.bias

    def loss(self, student_feat: torch.Tensor, teacher_feat: torch.Tensor) -> torch.Tensor:
        """Per-sample LSH loss (see :func:`lsh_bce`)."""
        with torch.no_grad():
            t = self(teacher_feat.to(student_feat.dtype))
        return lsh_bce(self(student_feat), t)
