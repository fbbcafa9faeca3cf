"""Networks for tabular rows: ``nfl_tabular`` (the NFL/NRS layer) and ``mlp_tabular`` (its baseline).

Both take **raw** feature vectors ``(N, d)``: their first layer, :class:`Standardize`, holds
the training split's per-feature mean and std as buffers (from the checkpoint's input spec,
see :mod:`edgekit.data.tabular`), so a checkpoint or an exported artifact needs no
preprocessing outside the model.

``nfl_tabular`` follows the tabular configuration of Cao, Wu, Wang & Lasenby, "Neural
Forest Learning" (arXiv 1911.07845; "Neural Random Subspace", Pattern Recognition 2021),
as the authors' code configures it for the UCI ``letter`` set: dH = dW = 3, nPer = 1
(depthwise), the dense head Linear(nFC)-BN-ReLU-Linear(nFC)-BN-ReLU-Linear(classes) with
nFC = 256, and nMul = 100 for its 16 features, i.e. 1600 subspace channels.
:func:`default_n_mul` keeps that channel count for other feature counts (nMul = 1600 / d,
between 5, the code's default, and 100). ``mlp_tabular`` is the paper's "UciFCNet"
baseline, three hidden Linear-BN-ReLU layers, whose width :func:`matched_width` chooses so
that it has as many parameters as ``nfl_tabular`` for the same d and classes.
"""
from __future__ import annotations

import inspect
import math
from collections import OrderedDict
from typing import Any, Callable, Sequence

import torch
from torch import nn

from ..errors import EdgekitError
from ..numbers import positive_int
from .nfl import NFLHead

#: the subspace channels (d * nMul) of the paper's letter configuration (d = 16, nMul = 100)
NFL_CHANNELS = 1600
NFL_FC = 256
MLP_DEPTH = 3


class Standardize(nn.Module):
    """``(x - mean) / std`` per feature, with the training split's statistics as buffers."""

    def __init__(self, in_features: int, mean: Sequence[float] | None = None,
                 std: Sequence[float] | None = None) -> None:
        super().__init__()
        mean = [0.0] * in_features if mean is None else [float(v) for v in mean]
        std = [1.0] * in_features if std is None else [float(v) for v in std]
        if len(mean) != in_features or len(std) != in_features:
            raise EdgekitError(f"mean and std need {in_features} values each (one per feature), got "
                               f"{len(mean)} and {len(std)}")
        if not all(s > 0 and math.isfinite(s) for s in std) or not all(math.isfinite(m) for m in mean):
            raise EdgekitError("every feature's mean must be finite and its std positive")
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def default_n_mul(d: int) -> int:
    """nMul giving about :data:`NFL_CHANNELS` subspace channels for ``d`` features (5 to 100)."""
    return max(5, min(100, round(NFL_CHANNELS / positive_int("in_features", d))))


def nfl_tabular(num_classes: int = 2, in_features: int = 0, mean: Sequence[float] | None = None,
                std: Sequence[float] | None = None, n_mul: int | None = None, n_per: int = 1, dh: int = 3,
                n_fc: int = NFL_FC, seed: int = 0) -> nn.Sequential:
    """Standardize -> NFL layer (``d*n_mul`` channels, ``dh x dh``) -> dense head -> logits."""
    d = positive_int("in_features", in_features)
    head = NFLHead(d, num_classes, default_n_mul(d) if n_mul is None else n_mul, n_per, dh, n_fc, seed)
    return nn.Sequential(OrderedDict(standardize=Standardize(d, mean, std), head=head))


def _mlp_params(d: int, classes: int, width: int) -> int:
    """Parameters of :func:`mlp_tabular` (Linear weights + biases, BN affine)."""
    hidden = (d + 3) * width + (MLP_DEPTH - 1) * (width + 3) * width
    return hidden + (width + 1) * classes


def matched_width(in_features: int, num_classes: int, **nfl_kwargs: Any) -> int:
    """The hidden width at which ``mlp_tabular`` has (at least) as many parameters as ``nfl_tabular``."""
    with torch.device("meta"):
        target = sum(p.numel() for p in nfl_tabular(num_classes, in_features, **nfl_kwargs).parameters())
    # (depth-1) w^2 + (d + 3 + 3(depth-1) + classes) w + classes = target
    a, b = MLP_DEPTH - 1, in_features + 3 + 3 * (MLP_DEPTH - 1) + num_classes
    width = max(1, math.floor((-b + math.sqrt(b * b + 4 * a * (target - num_classes))) / (2 * a)))
    while _mlp_params(in_features, num_classes, width) < target:
        width += 1
    return width


def mlp_tabular(num_classes: int = 2, in_features: int = 0, mean: Sequence[float] | None = None,
                std: Sequence[float] | None = None, width: int | None = None) -> nn.Sequential:
    """Standardize -> 3 x (Linear-BN-ReLU) -> Linear; ``width`` defaults to :func:`matched_width`."""
    d = positive_int("in_features", in_features)
    num_classes = positive_int("num_classes", num_classes)
    w = matched_width(d, num_classes) if width is None else positive_int("width", width)
    layers: list[nn.Module] = []
    for i in range(MLP_DEPTH):
        layers += [nn.Linear(d if i == 0 else w, w), nn.BatchNorm1d(w), nn.ReLU()]
    return nn.Sequential(OrderedDict(standardize=Standardize(d, mean, std), body=nn.Sequential(*layers),
                                     classifier=nn.Linear(w, num_classes)))


def takes_features(factory: Callable[..., nn.Module]) -> bool:
    """Whether a model factory builds a tabular network (it takes ``in_features``)."""
    try:
        return "in_features" in inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False
