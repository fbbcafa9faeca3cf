"""The "2FC" head: a Linear connector before the classifier, so a student's feature has the teacher's size.

When student and teacher feature sizes differ, feature mimicking (Wang, Ge & Wu,
"Distilling Knowledge by Mimicking Features", TPAMI 2021; the "2FC" head) turns the
student's classifier ``Linear(raw, classes)`` into
``Sequential(connector=Linear(raw, D), classifier=Linear(D, classes))``; the mimicked
feature is the connector's output and the connector stays in the deployed model. The
registry applies it from the ``feature_dim=D`` architecture kwarg, so a distilled
checkpoint rebuilds from its definition like any other; it lives with the models, not
with the compression stages, so building a model never imports them.
"""
from __future__ import annotations

from collections import OrderedDict

from torch import nn

from ..errors import EdgekitError
from .layout import attach, declared, layout_of


def _last_linear(model: nn.Module) -> str | None:
    found = None
    for name, mod in model.named_modules():
        if isinstance(mod, nn.Linear):
            found = name
    return found


def add_connector(model: nn.Module, dim: int) -> nn.Module:
    """Replace the classifier ``Linear(raw, k)`` by ``Sequential(connector=Linear(raw, dim), classifier=Linear(dim, k))``.

    The classifier is the model's declared one (its layout), else the last Linear in
    registration order (the classifier in every torchvision architecture; distillation
    checks it with :func:`edgekit.compress.features.find_classifier`). The model's layout
    is updated to the new classifier and feature paths.
    """
    name = declared(model, "classifier") or _last_linear(model)
    fc = model.get_submodule(name) if name else None
    if not isinstance(fc, nn.Linear):
        raise EdgekitError("feature_dim needs a model with a Linear classifier")
    head = nn.Sequential(OrderedDict(connector=nn.Linear(fc.in_features, dim),
                                     classifier=nn.Linear(dim, fc.out_features, bias=fc.bias is not None)))
    parent_name, _, attr = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, attr, head)
    attach(model, layout_of(model).with_connector(name))
    return model
