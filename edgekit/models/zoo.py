"""Registers edgekit's own architectures under their registry names, with their layouts."""
from __future__ import annotations

from torch import nn

from ..registry import register_model
from .compact import CompactCNN

#: module paths of every CompactCNN (see :class:`edgekit.models.layout.Layout`)
_COMPACT = {"classifier": "classifier", "feature": "dropout", "stem": "features.0"}


@register_model("compact_cnn", default_input=32, **_COMPACT)
def compact_cnn(num_classes: int = 10, width_mult: float = 1.0, **kw) -> nn.Module:
    """Depthwise-separable residual CNN for small inputs (~0.1 M params at width 1)."""
    return CompactCNN(num_classes=num_classes, width_mult=width_mult, **kw)


@register_model("compact_cnn_s", default_input=32, **_COMPACT)
def compact_cnn_s(num_classes: int = 10, **kw) -> nn.Module:
    """Half-width ``compact_cnn``: the default distillation student."""
    return CompactCNN(num_classes=num_classes, width_mult=0.5, **kw)
