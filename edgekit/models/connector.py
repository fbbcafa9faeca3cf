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


def classifier_linear(model: nn.Module, what: str) -> tuple[str, nn.Linear]:
    """(path, module) of ``model``'s classifier Linear: its declared one (its layout), else the last
    Linear in registration order (the classifier in every torchvision architecture). ``what`` names
    the option that needs it, for the one-line error."""
    name = declared(model, "classifier") or _last_linear(model)
    fc = model.get_submodule(name) if name else None
    if not isinstance(fc, nn.Linear):
        raise EdgekitError(f"{what} needs a model with a Linear classifier")
    return name, fc


def replace_head(model: nn.Module, name: str, head: nn.Module, feature: str) -> nn.Module:
    """Put ``head`` at path ``name`` and record its ``classifier`` child and ``feature`` child in the layout."""
    parent_name, _, attr = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, attr, head)
    attach(model, layout_of(model).with_head(name, feature))
    return model


def add_connector(model: nn.Module, dim: int) -> nn.Module:
    """Replace the classifier ``Linear(raw, k)`` by ``Sequential(connector=Linear(raw, dim), classifier=Linear(dim, k))``.

    The classifier is the model's declared one (its layout), else the last Linear in
    registration order (distillation checks it with
    :func:`edgekit.compress.features.find_classifier`). The model's layout is updated to
    the new classifier and feature paths.
    """
    name, fc = classifier_linear(model, "feature_dim")
    head = nn.Sequential(OrderedDict(connector=nn.Linear(fc.in_features, dim),
                                     classifier=nn.Linear(dim, fc.out_features, bias=fc.bias is not None)))
    return replace_head(model, name, head, "connector")
