"""A per-sample table of label logits learnt by gradient descent: Deep Decipher (D2).

Wang & Wu's D2 (R2-D2, "Repetitive Reprediction Deep Decipher for Semi-Supervised Learning",
arXiv 1908.04345; code DoctorKey/R2D2.pytorch, ``src/model/DeepDecipher.py``) treats each
training image's label as free logits ``Z_i``. They enter the loss like a target; the
backward pass then moves the rows of the batch by plain SGD on their own gradient,
``Z_i <- Z_i - label_lr * dL/dZ_i``, and only the writable rows (the unlabelled images;
labelled rows stay fixed at their one-hot logits) are written back. Two stages use it:

* R2-D2's semi-supervised training (:mod:`edgekit.training.semi.r2d2`): the pseudo-labels of
  the unlabelled pool, repredicted from the network at the start of every cycle;
* CURL's label refinement (:mod:`edgekit.compress.recovery`): the teacher's logits on the
  expanded set, refined while the pruned student learns from them.

Because ``label_lr`` multiplies the gradient of a *batch-mean* loss, a row moves by
``label_lr * weight / batch`` times its own gradient: :func:`effective_step` is that number,
which runs record (it is what stays comparable across batch sizes).
"""
from __future__ import annotations

import torch
import torch.distributed as dist


def effective_step(label_lr: float, weight: float, batch: int) -> float:
    """How far one visit moves a row, per unit of its own per-sample gradient."""
    return label_lr * weight / max(1, batch)


class LabelTable:
    """``N x K`` logits on the CPU; rows are read per batch and updated after its backward pass.
    A float32 CPU ``rows`` tensor is used in place (the caller sees the updates)."""

    def __init__(self, rows: torch.Tensor, writable: torch.Tensor | None = None) -> None:
        self.rows = rows.detach().to("cpu", torch.float32)
        #: which rows a step may change (None: all)
        self.writable = None if writable is None else writable.bool().cpu()

    def __len__(self) -> int:
        return len(self.rows)

    def batch(self, idx: torch.Tensor, device: torch.device | str, grad: bool) -> torch.Tensor:
        """The rows ``idx`` as a fresh leaf tensor on ``device`` (requiring grad when they will be stepped)."""
        return self.rows[idx.cpu()].to(device).requires_grad_(grad)

    @torch.no_grad()
    def step(self, idx: torch.Tensor, grad: torch.Tensor, label_lr: float) -> None:
        """``Z[idx] -= label_lr * grad`` on the writable rows; under DDP every process applies every
        process's rows, so the tables stay identical."""
        idx = idx.detach().cpu()
        new = self.rows[idx] - label_lr * grad.detach().float().cpu()
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            idx, new = _gather(idx), _gather(new)
        keep = torch.ones(len(idx), dtype=torch.bool) if self.writable is None else self.writable[idx]
        self.rows[idx[keep]] = new[keep]

    @torch.no_grad()
    def assign(self, idx: torch.Tensor, logits: torch.Tensor) -> None:
        """Overwrite rows ``idx`` (reprediction: the network's logits become the pseudo-labels)."""
        self.rows[idx.detach().cpu()] = logits.detach().float().cpu()

    def labels(self) -> torch.Tensor:
        """The hard label of every row (argmax)."""
        return self.rows.argmax(1)


def _gather(x: torch.Tensor) -> torch.Tensor:
    parts = [torch.zeros_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather_object(parts, x) if x.dtype == torch.long else dist.all_gather(parts, x)
    return torch.cat(parts)
