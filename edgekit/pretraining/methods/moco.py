"""MoCo v2 (He et al., "Momentum Contrast", arXiv 1911.05722; Chen et al., "Improved Baselines
with Momentum Contrastive Learning", arXiv 2003.04297), as its authors' code
(facebookresearch/moco, ``moco/builder.py``) and S3L's copy of it run it.

The query encoder (backbone + MLP head) sees view 1; a momentum encoder, an exponential
moving average of it (``m``), sees view 2; the loss is InfoNCE: the query's positive is its
key, its negatives the ``K`` keys of a queue of earlier batches, cross-entropy over
similarities / tau. After each step the batch's keys (of every process) replace the
queue's oldest.

Shuffled BatchNorm: the authors shuffle the key batch across GPUs so that BatchNorm cannot
leak which key belongs to which query; that needs several processes. Here the key batch is
shuffled and run through the momentum encoder in ``bn_splits`` separate chunks on every
process ("split-batch BN", as the MoCo authors' one-GPU CIFAR demo does), so the key's
BatchNorm statistics come from other images than its query's; the checkpoint records it.

Defaults as S3L's MoCo v2 on CUB-200 (arXiv 2103.13559, code ``moco/pretrain_cub.sh``):
lr 0.03 at batch 128 (scaled linearly), weight decay 1e-4, tau 0.2, K 4096, m 0.999, a
2-layer MLP head (no BatchNorm) to 128 dims. K is capped at half the training images
(the run records the value used): a queue longer than the data would hold each image's own
earlier key among its negatives.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import SSLMethod, Settings, ema_update, frozen_copy, gather, mlp, register_method

#: how many chunks the key batch is split into for split-batch BN (fewer when the batch is small)
BN_SPLITS = 8
#: the fewest images a split-batch BN chunk holds
MIN_SPLIT = 16


def info_nce(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, temperature: float) -> torch.Tensor:
    """InfoNCE of queries ``q`` against their keys ``k`` (positives) and the ``queue`` rows
    (negatives); all normalised already."""
    positive = (q * k).sum(1, keepdim=True)
    negative = q @ queue.T
    logits = torch.cat([positive, negative], 1) / temperature
    return F.cross_entropy(logits, torch.zeros(len(q), dtype=torch.long, device=q.device))


def bn_splits(batch: int) -> int:
    """The chunks of split-batch BN for a key batch of ``batch`` images (1: no split)."""
    return max(1, min(BN_SPLITS, batch // MIN_SPLIT))


@register_method
class MoCoV2(SSLMethod):
    name = "mocov2"
    DEFAULTS = Settings(lr=0.03, ref_batch=128, weight_decay=1e-4, temperature=0.2, queue=4096,
                        momentum_encoder=0.999, proj_dim=128)
    min_batch = 2
    min_batch_reason = "BatchNorm needs more than one image per key batch"

    def __init__(self, backbone, dim, settings, total_steps) -> None:  # noqa: ANN001 - see SSLMethod
        super().__init__(backbone, dim, settings, total_steps)
        self.projector = mlp(dim, settings.proj_hidden or dim, settings.proj_dim, bn=False)
        self.key_backbone = frozen_copy(backbone)
        self.key_projector = frozen_copy(self.projector)
        self.register_buffer("queue", F.normalize(torch.randn(int(settings.queue), settings.proj_dim), dim=1))
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def keys(self, view: torch.Tensor) -> torch.Tensor:
        """The momentum encoder's normalised keys of ``view``, with split-batch BN."""
        ema_update(self.key_backbone, self.backbone, float(self.settings.momentum_encoder))
        ema_update(self.key_projector, self.projector, float(self.settings.momentum_encoder))
        order = torch.randperm(len(view), device=view.device)
        chunks = [self.key_projector(self.key_backbone(c)) for c in view[order].chunk(bn_splits(len(view)))]
        keys = torch.empty_like(torch.cat(chunks))
        keys[order] = torch.cat(chunks)
        return F.normalize(keys, dim=1)

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        keys = gather(keys)
        size = len(self.queue)
        idx = (int(self.queue_ptr) + torch.arange(len(keys), device=keys.device)) % size
        self.queue[idx[-size:]] = keys[-size:]
        self.queue_ptr.fill_((int(self.queue_ptr) + len(keys)) % size)

    def forward(self, views: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        self.step += 1
        q = F.normalize(self.projector(self.backbone(views[:, 0])), dim=1)
        k = self.keys(views[:, 1])
        loss = info_nce(q, k, self.queue.clone().detach(), float(self.settings.temperature))
        self.enqueue(k)
        return loss, {}

    def train(self, mode: bool = True) -> "MoCoV2":
        super().train(mode)
        # the momentum encoder always normalises its batch with that batch's statistics (as in the
        # authors' code, where it stays in training mode); its running stats are never read
        self.key_backbone.train(mode)
        self.key_projector.train(mode)
        return self
