"""Declares edgekit's own architectures under their registry names, with their layouts
(:mod:`edgekit.models.entries`; the registry imports this module and adopts them)."""
from __future__ import annotations

from torch import nn

from . import tabular, temporal
from .age_nets import AgeNet
from .compact import CompactCNN
from .entries import builtin, builtin_family

#: module paths of every CompactCNN (see :class:`edgekit.models.layout.Layout`)
_COMPACT = {"classifier": "classifier", "feature": "dropout", "stem": "features.0"}


@builtin("compact_cnn", default_input=32, **_COMPACT)
def compact_cnn(num_classes: int = 10, width_mult: float = 1.0, **kw) -> nn.Module:
    """Depthwise-separable residual CNN for small inputs (~0.1 M params at width 1)."""
    return CompactCNN(num_classes=num_classes, width_mult=width_mult, **kw)


@builtin("compact_cnn_s", default_input=32, **_COMPACT)
def compact_cnn_s(num_classes: int = 10, **kw) -> nn.Module:
    """Half-width ``compact_cnn``: the default distillation student."""
    return CompactCNN(num_classes=num_classes, width_mult=0.5, **kw)


# Tabular nets take raw feature rows (N, d); see edgekit.models.tabular. Their factories name
# ``in_features`` (the trainer passes it, with the standardisation, from the data's input spec).
@builtin("nfl_tabular", default_input=0, classifier="head.classifier", feature="head.mlp")
def nfl_tabular(num_classes: int = 2, in_features: int = 0, **kw) -> nn.Module:
    """NFL / NRS random-subspace layer + dense head for feature vectors (paper's tabular setup)."""
    return tabular.nfl_tabular(num_classes=num_classes, in_features=in_features, **kw)


@builtin("mlp_tabular", default_input=0, classifier="classifier", feature="body")
def mlp_tabular(num_classes: int = 2, in_features: int = 0, **kw) -> nn.Module:
    """Three-hidden-layer MLP with as many parameters as ``nfl_tabular`` (its neural baseline)."""
    return tabular.mlp_tabular(num_classes=num_classes, in_features=in_features, **kw)


# DLDL-v2's compact backbones (edgekit.models.age_nets); ``head="dldl"`` puts the
# label-distribution head in place of ``classifier``.
_AGE = {"classifier": "classifier", "feature": "pool", "stem": "features.0"}


@builtin("thin_age_net", default_input=224, **_AGE)
def thin_age_net(num_classes: int = 101, **kw) -> nn.Module:
    """DLDL-v2 ThinAgeNet: VGG-16 at 1/2 width, BN, hybrid pooling (~3.7 M params)."""
    return AgeNet(num_classes=num_classes, width=0.5, **kw)


@builtin("tiny_age_net", default_input=224, **_AGE)
def tiny_age_net(num_classes: int = 101, **kw) -> nn.Module:
    """DLDL-v2 TinyAgeNet: VGG-16 at 1/4 width, BN, hybrid pooling (~0.9 M params)."""
    return AgeNet(num_classes=num_classes, width=0.25, **kw)


# Video nets over any 2D registry name (edgekit.models.temporal): tsn_<b>, tsm_<b>, tsm_online_<b>.
for _prefix in temporal.PREFIXES:
    builtin_family(_prefix, temporal.resolve)
