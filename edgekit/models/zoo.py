"""Registers edgekit's own architectures under their registry names, with their layouts."""
from __future__ import annotations

from torch import nn

from ..registry import register_model
from . import tabular
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


# Tabular nets take raw feature rows (N, d); see edgekit.models.tabular. Their factories name
# ``in_features`` (the trainer passes it, with the standardisation, from the data's input spec).
@register_model("nfl_tabular", default_input=0, classifier="head.classifier", feature="head.mlp")
def nfl_tabular(num_classes: int = 2, in_features: int = 0, **kw) -> nn.Module:
    """NFL / NRS random-subspace layer + dense head for feature vectors (paper's tabular setup)."""
    return tabular.nfl_tabular(num_classes=num_classes, in_features=in_features, **kw)


@register_model("mlp_tabular", default_input=0, classifier="classifier", feature="body")
def mlp_tabular(num_classes: int = 2, in_features: int = 0, **kw) -> nn.Module:
    """Three-hidden-layer MLP with as many parameters as ``nfl_tabular`` (its neural baseline)."""
    return tabular.mlp_tabular(num_classes=num_classes, in_features=in_features, **kw)
