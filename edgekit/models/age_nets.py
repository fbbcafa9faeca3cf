"""ThinAgeNet and TinyAgeNet: the compact DLDL-v2 backbones.

Gao, Liu, Zhou, Wu & Geng, "Learning Expectation of Label Distribution for Facial Age
and Attractiveness Estimation" (arXiv 2007.01771, 2020), section 3.3 and the authors'
``hp_scratch`` model: the VGG-16 ("D") layout with BatchNorm after every 3x3 conv, all
fully-connected layers removed and every width scaled by a compression rate (1/2 for
ThinAgeNet, about 3.7 M parameters; 1/4 for TinyAgeNet, about 0.9 M). The net ends in
**hybrid pooling**: the last 2x2 max-pool followed by a global average pool (7x7 at the
224 px input), then one Linear head. The paper's head is the label-distribution one
(:mod:`edgekit.models.dldl`), which the registry puts in place of the Linear when a model
is built with ``head="dldl"``.

Five stride-2 max-pools divide the input by 32, so the input side must be a multiple of 32
(224 by default; 64 in the built-in benchmarks).
"""
from __future__ import annotations

import torch
from torch import nn

from ..errors import EdgekitError

#: VGG-16 configuration "D": conv widths, "M" a 2x2 max-pool (the last one is half of hybrid pooling)
VGG16 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


class AgeNet(nn.Module):
    """VGG-16 layout at ``width`` x the channels, BN after every conv, hybrid pooling, Linear head."""

    def __init__(self, num_classes: int = 101, width: float = 0.5, in_chans: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = in_chans
        for item in VGG16:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
                continue
            cout = max(8, int(round(int(item) * width)))
            layers += [nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
            cin = cout
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)  # with the last max-pool: the paper's hybrid pooling
        self.classifier = nn.Linear(cin, num_classes)
        nn.init.zeros_(self.classifier.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % 32 or x.shape[-2] % 32:
            raise EdgekitError(f"ThinAgeNet/TinyAgeNet take inputs whose sides are multiples of 32, "
                               f"got {list(x.shape[-2:])}")
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))
