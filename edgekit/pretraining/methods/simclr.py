"""SimCLR (Chen et al., "A Simple Framework for Contrastive Learning of Visual Representations",
arXiv 2002.05709): both views through one encoder and a projection MLP, the NT-Xent loss.

For each of the 2N projected views, the other view of its image is the positive and the
other 2N - 2 views are the negatives: a cross-entropy over cosine similarities / tau (the
softmax of torch's ``cross_entropy``, as the reference implementations write it). Under
``torchrun`` the negatives come from every process (a differentiable all-gather).

Defaults as S3L's SimCLR script (arXiv 2103.13559, code CupidJay/Scaled-down-self-supervised-
learning): tau 0.1, lr 0.5 at batch 512 (scaled linearly), weight decay 1e-4 (SimCLR: 1e-6
with LARS; plain SGD here), a 2-layer projector with BatchNorm to 128 dims (SimCLR v1).
"""
from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F

from .base import SSLMethod, Settings, mlp, register_method


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent of ``N`` pairs ``(z1[i], z2[i])`` (projections, normalised here), gathering the
    negatives of every process under DDP."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    n = len(z1)
    offset = 0
    everyone = z
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        import torch.distributed.nn.functional as dnn

        everyone = torch.cat(dnn.all_gather(z))
        offset = dist.get_rank() * 2 * n
    logits = z @ everyone.T / temperature
    rows = torch.arange(2 * n, device=z.device)
    own = torch.zeros_like(logits, dtype=torch.bool)
    own[rows, rows + offset] = True
    logits = logits.masked_fill(own, float("-inf"))  # a view is not its own negative
    positives = (rows + n) % (2 * n) + offset
    return F.cross_entropy(logits, positives)


@register_method
class SimCLR(SSLMethod):
    name = "simclr"
    DEFAULTS = Settings(lr=0.5, ref_batch=512, weight_decay=1e-4, temperature=0.1, proj_dim=128)
    min_batch = 2
    min_batch_reason = "NT-Xent needs another image in the batch as a negative"

    def __init__(self, backbone, dim, settings, total_steps) -> None:  # noqa: ANN001 - see SSLMethod
        super().__init__(backbone, dim, settings, total_steps)
        self.projector = mlp(dim, settings.proj_hidden or dim, settings.proj_dim, bn=True)

    def forward(self, views: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        self.step += 1
        n = len(views)
        z = self.projector(self.backbone(torch.cat([views[:, 0], views[:, 1]])))
        loss = nt_xent(z[:n], z[n:], float(self.settings.temperature))
        return loss, {}
