"""``compact_cnn``: edgekit's own small CNN for small inputs (8x8 to 64x64 images).

A MobileNetV2-flavoured net sized for phones and for CPU training in minutes:
a 3x3 stem at stride 1, then depthwise-separable blocks (depthwise 3x3 + BN + ReLU,
pointwise 1x1 + BN) with an identity shortcut wherever shape allows, global average
pooling and one linear classifier. Widths scale with ``width_mult``. The residual
adds give structured pruning something real to couple; the forward pass never
hard-codes a width, so a pruned variant rebuilds from its channel plan.
"""
from __future__ import annotations

import torch
from torch import nn

# (out_channels, stride) per block; stride 2 halves the resolution.
_BLOCKS = ((32, 1), (64, 2), (64, 1), (128, 2), (128, 1), (256, 2), (256, 1))


def _scaled(c: int, mult: float) -> int:
    return max(8, int(round(c * mult / 8)) * 8)


class SeparableBlock(nn.Module):
    """Depthwise 3x3 + pointwise 1x1, with an identity shortcut when shapes match."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.dw = nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False)
        self.bn1 = nn.BatchNorm2d(cin)
        self.pw = nn.Conv2d(cin, cout, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.act = nn.ReLU(inplace=True)
        self.use_residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.pw(self.act(self.bn1(self.dw(x)))))
        if self.use_residual:
            out = out + x
        return self.act(out)


class CompactCNN(nn.Module):
    """Small-input classifier; ``features`` -> pooled vector -> ``classifier``."""

    def __init__(self, num_classes: int = 10, width_mult: float = 1.0, in_chans: int = 3,
                 dropout: float = 0.1) -> None:
        super().__init__()
        stem = _scaled(24, width_mult)
        layers: list[nn.Module] = [
            nn.Conv2d(in_chans, stem, 3, 1, 1, bias=False), nn.BatchNorm2d(stem), nn.ReLU(inplace=True)
        ]
        cin = stem
        for cout, stride in _BLOCKS:
            cout = _scaled(cout, width_mult)
            layers.append(SeparableBlock(cin, cout, stride))
            cin = cout
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.features(x)).flatten(1)
        return self.classifier(self.dropout(x))
