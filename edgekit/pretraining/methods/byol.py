"""BYOL (Grill et al., "Bootstrap Your Own Latent", arXiv 2006.07733): an online network
(backbone, projector, predictor) predicts the projection of the other view made by a target
network, the exponential moving average of the online backbone and projector; no negatives.

The loss is the symmetrised normalised MSE ``2 - 2 cos(p, z')`` of both view orders (the
paper's eq. 2), with the target's decay rising from ``tau_base`` to 1 on a cosine over the
run. Projector and predictor: Linear to 4096, BatchNorm, ReLU, Linear to 256 (the paper's).

Defaults: tau_base 0.996 (paper), lr 0.125 at batch 128 (S3L's BYOL script; scaled linearly;
plain SGD where the paper uses LARS), weight decay 1.5e-6 (paper).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import SSLMethod, Settings, cosine_ramp, ema_update, frozen_copy, mlp, register_method


def byol_loss(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """``2 - 2 cos(p, z)`` averaged over the batch (``z`` is the target: no gradient)."""
    return (2 - 2 * F.cosine_similarity(p, z.detach(), dim=1)).mean()


@register_method
class BYOL(SSLMethod):
    name = "byol"
    DEFAULTS = Settings(lr=0.125, ref_batch=128, weight_decay=1.5e-6, momentum_encoder=0.996, proj_dim=256,
                        proj_hidden=4096)
    min_batch = 2
    min_batch_reason = "the projector's BatchNorm needs more than one image"

    def __init__(self, backbone, dim, settings, total_steps) -> None:  # noqa: ANN001 - see SSLMethod
        super().__init__(backbone, dim, settings, total_steps)
        hidden = settings.proj_hidden or dim
        self.projector = mlp(dim, hidden, settings.proj_dim, bn=True)
        self.predictor = mlp(settings.proj_dim, hidden, settings.proj_dim, bn=True)
        self.target_backbone = frozen_copy(backbone)
        self.target_projector = frozen_copy(self.projector)

    def forward(self, views: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        tau = cosine_ramp(float(self.settings.momentum_encoder), self.progress())
        self.step += 1
        n = len(views)
        both = torch.cat([views[:, 0], views[:, 1]])
        p = self.predictor(self.projector(self.backbone(both)))
        with torch.no_grad():
            ema_update(self.target_backbone, self.backbone, tau)
            ema_update(self.target_projector, self.projector, tau)
            z = self.target_projector(self.target_backbone(both))
        loss = byol_loss(p[:n], z[n:]) + byol_loss(p[n:], z[:n])
        return loss, {"tau": tau}
