"""The NFL / NRS layer: random feature subspaces learned by grouped 3x3 convolutions.

Cao, Wu, Wang & Lasenby, "Neural Forest Learning" (arXiv 1911.07845, 2019; journal
version "Neural Random Subspace", Pattern Recognition 112:107801, 2021), section 3:
a d-dim vector ``x`` (tabular features, or a CNN's globally pooled feature) is expanded
by a fixed index ``mask``, the concatenation of ``dH*dW*nMul`` independent random
permutations of ``range(d)``, and reshaped to ``(d*nMul) x dH x dW``: each of the
``d*nMul`` channels holds a random ``dH x dW`` arrangement of feature values, and every
feature appears exactly ``dH*dW*nMul`` times. A grouped 3x3 convolution without padding
(``nPer`` channels per group) + BN + ReLU then learns on these random subspaces (a second
identical one when ``dH > 3``) and the result is flattened for the head.

The index is built once from a seed and registered as a buffer, so it is saved in the
state dict and in every checkpoint; a model rebuilt from its definition and loaded from
its state has the same subspaces. The gather is ``index_select`` on the feature axis,
which lowers to ONNX ``Gather`` and TFLite ``GATHER``.

:class:`NFLHead` is the layer plus its head: ``Linear(classes)`` (the CNN configuration,
which replaces the classifier after global pooling) or, with ``n_fc``, the tabular
dense head ``Linear(nFC)-BN-ReLU-Linear(nFC)-BN-ReLU-Linear(classes)``.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from ..errors import EdgekitError
from ..numbers import non_negative_int, positive_int

#: the paper's CNN configuration (ResNet-50 on CUB-200: nMul = 2, dH = dW = 3, 64 conv groups)
CNN_MUL, CNN_DH, CNN_GROUPS = 2, 3, 64


def permutation_mask(d: int, dh: int, n_mul: int, seed: int = 0) -> torch.Tensor:
    """``dh*dh*n_mul`` independent permutations of ``range(d)``, concatenated (int64, length d*n_mul*dh*dh)."""
    gen = torch.Generator().manual_seed(seed)
    return torch.cat([torch.randperm(d, generator=gen) for _ in range(dh * dh * n_mul)])


def default_n_per(d: int, n_mul: int = CNN_MUL, groups: int = CNN_GROUPS) -> int:
    """Channels per conv group for a CNN head: the paper's 64 groups where ``d*n_mul`` allows.

    The largest divisor of ``d*n_mul`` not above ``d*n_mul/groups`` (at least 1, i.e.
    depthwise), so ``groups`` always divides: 512-d ResNet-18 -> 16, 1280-d MobileNetV2 -> 40.
    """
    channels = d * n_mul
    n = max(1, channels // groups)
    while channels % n:
        n -= 1
    return n


def _out_side(dh: int) -> int:
    """Spatial side after the valid 3x3 convolutions (one when dh == 3, two when dh > 3)."""
    return dh - 2 if dh <= 3 else dh - 4


class NFLLayer(nn.Module):
    """``(N, d) -> (N, d*n_mul*s*s)``: random-subspace gather, grouped 3x3 conv(s) + BN + ReLU, flatten.

    ``s`` is ``dh - 2`` for ``dh == 3`` (one conv) and ``dh - 4`` for ``dh >= 5`` (two).
    """

    def __init__(self, d: int, n_mul: int = CNN_MUL, n_per: int = 1, dh: int = CNN_DH, seed: int = 0) -> None:
        super().__init__()
        d, n_mul, n_per = positive_int("nfl d", d), positive_int("nfl_mul", n_mul), positive_int("nfl_per", n_per)
        dh, seed = positive_int("nfl_dh", dh), non_negative_int("nfl_seed", seed)
        channels = d * n_mul
        if channels % n_per:
            raise EdgekitError(f"nfl_per={n_per} must divide d*nfl_mul={channels} (the grouped conv's channels)")
        if dh < 3 or dh == 4:
            raise EdgekitError(f"nfl_dh must be 3 or >= 5 (valid 3x3 convolutions leave a map), got {dh}")
        self.d, self.n_mul, self.n_per, self.dh, self.seed = d, n_mul, n_per, dh, seed
        self.register_buffer("mask", permutation_mask(d, dh, n_mul, seed))
        self.conv1, self.bn1 = self._block(channels, channels // n_per)
        if dh > 3:
            self.conv2, self.bn2 = self._block(channels, channels // n_per)
        self.relu = nn.ReLU()
        self.out_features = channels * _out_side(dh) ** 2

    @staticmethod
    def _block(channels: int, groups: int) -> tuple[nn.Conv2d, nn.BatchNorm2d]:
        return nn.Conv2d(channels, channels, 3, padding=0, groups=groups), nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1).index_select(1, self.mask)
        x = x.reshape(x.shape[0], self.d * self.n_mul, self.dh, self.dh)
        x = self.relu(self.bn1(self.conv1(x)))
        if self.dh > 3:
            x = self.relu(self.bn2(self.conv2(x)))
        return x.flatten(1)

    def extra_repr(self) -> str:
        return f"d={self.d}, n_mul={self.n_mul}, n_per={self.n_per}, dh={self.dh}, seed={self.seed}"


class NFLHead(nn.Sequential):
    """The NFL layer and its head: children ``nfl``, ``mlp`` (only with ``n_fc``) and ``classifier``.

    ``classifier`` is the final Linear (the logits) and the module before it (``mlp`` or
    ``nfl``) outputs exactly its input, the penultimate feature.
    """

    def __init__(self, d: int, num_classes: int, n_mul: int = CNN_MUL, n_per: int | None = None,
                 dh: int = CNN_DH, n_fc: int | None = None, seed: int = 0) -> None:
        num_classes = positive_int("num_classes", num_classes)
        nfl = NFLLayer(d, n_mul, default_n_per(d, n_mul) if n_per is None else n_per, dh, seed)
        parts: OrderedDict[str, nn.Module] = OrderedDict(nfl=nfl)
        width = nfl.out_features
        if n_fc is not None:
            n_fc = positive_int("nfl_fc", n_fc)
            parts["mlp"] = nn.Sequential(nn.Linear(width, n_fc), nn.BatchNorm1d(n_fc), nn.ReLU(),
                                         nn.Linear(n_fc, n_fc), nn.BatchNorm1d(n_fc), nn.ReLU())
            width = n_fc
        parts["classifier"] = nn.Linear(width, num_classes)
        super().__init__(parts)

    @property
    def feature_name(self) -> str:
        """Name of the child whose output is the classifier's input."""
        return "mlp" if "mlp" in self._modules else "nfl"


def add_nfl_head(model: nn.Module, n_mul: int = CNN_MUL, n_per: int | None = None, dh: int = CNN_DH,
                 seed: int = 0) -> nn.Module:
    """Replace a CNN's classifier ``Linear(d, k)`` (after global pooling, which stays) by ``NFLHead(d, k)``.

    The paper's CNN plug-in (ResNet-50 -> GAP -> NRS layer -> Linear(d*nMul -> classes)),
    section 4 / Model/ResNetModel.py of the authors' code. Defaults scale its CUB
    configuration to small models: nMul = 2, dH = dW = 3, and ``nPer`` from
    :func:`default_n_per` (64 conv groups where d*nMul allows). The layout's classifier
    becomes ``<head>.classifier`` and its feature ``<head>.nfl``.
    """
    from .connector import classifier_linear, replace_head

    name, fc = classifier_linear(model, "head='nfl'")
    head = NFLHead(fc.in_features, fc.out_features, n_mul, n_per, dh, seed=seed)
    return replace_head(model, name, head, head.feature_name)
