"""Embedding nets: a registry architecture without its classifier, for self-supervised pretraining.

``create_model(arch, head="embedding")`` builds ``arch`` and replaces the module at its
layout's ``classifier`` by ``nn.Identity``, so the network outputs its penultimate feature
(the pooled vector the classifier would have read: 512 numbers for a ResNet-18). That is
the backbone SimCLR, MoCo v2 and BYOL train (:mod:`edgekit.pretraining`), and what an
``embedding`` checkpoint holds and exports. Its state dict is the classifier's backbone
tensor for tensor, so ``--weights ssl.ckpt`` loads it into the full classifier.

``drop_last_stage=True`` also removes the last stage of a staged backbone (the layout's
``last_stage``: ResNet's ``layer4``, RegNet's ``block4``): S3L's small-architecture
pretraining (Cao & Wu, "Rethinking Self-Supervised Learning: Small is Beautiful",
arXiv 2103.13559, section 3: the conv5-removed ResNet-50, global pooling on conv4). When
such weights seed a full classifier the stage is missing from them and starts freshly
initialised (``edgekit train --warmup-frozen``).
"""
from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from ..errors import EdgekitError
from .layout import attach, declared, layout_of


def to_embedding(model: nn.Module, name: str, drop_last_stage: bool = False) -> nn.Module:
    """Turn classifier ``model`` (architecture ``name``, its layout attached) into an embedding net."""
    layout = layout_of(model)
    classifier = declared(model, "classifier")
    if classifier is None:
        raise EdgekitError(f"{name} declares no classifier to remove; an embedding needs a registry "
                           "architecture with a known layout")
    _replace(model, classifier, nn.Identity())
    stage = None
    if drop_last_stage:
        stage = declared(model, "last_stage")
        if stage is None:
            raise EdgekitError(f"{name} has no stages to drop; --drop-last-stage takes a staged (ResNet-style) "
                               "backbone: resnet*, resnext*, wide_resnet*, regnet*")
        _replace(model, stage, nn.Identity())
    return attach(model, replace(layout, classifier=None, last_stage=None if stage else layout.last_stage))


def _replace(model: nn.Module, path: str, module: nn.Module) -> None:
    parent, _, attr = path.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, attr, module)


@torch.no_grad()
def embedding_dim(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """The width of ``model``'s output for one input of ``input_shape`` (C, H, W), measured."""
    was = model.training
    model.eval()
    try:
        param = next(model.parameters())
        out = model(torch.zeros((1, *input_shape), device=param.device))
    finally:
        model.train(was)
    return int(out.reshape(1, -1).shape[1])
