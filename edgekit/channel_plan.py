"""Channel plans: a pruned model's layer widths as plain data.

A pruned model differs from its architecture's definition only in the sizes of its
layers. The plan records, for every module whose structural attributes changed
(``in_channels``, ``out_features``, ``num_features``...), the new values, plus the
shape of every parameter or buffer that changed. Rebuilding is then: build the
architecture from its definition, :func:`apply_plan`, load the state dict. No
module is ever pickled (Torch-Pruning's own ``tp.state_dict`` pickles modules and
fails ``weights_only`` loading), the same idea as timm's ``_prune.py``.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .errors import EdgekitError

#: Structural attributes per layer type, in the order constructors take them.
_STRUCT_ATTRS: tuple[tuple[type, tuple[str, ...]], ...] = (
    (nn.modules.conv._ConvNd, ("in_channels", "out_channels", "groups")),
    (nn.Linear, ("in_features", "out_features")),
    (nn.modules.batchnorm._NormBase, ("num_features",)),
    (nn.LayerNorm, ("normalized_shape",)),
    (nn.GroupNorm, ("num_groups", "num_channels")),
    (nn.PReLU, ("num_parameters",)),
)


def _attrs(module: nn.Module) -> dict[str, Any]:
    for cls, names in _STRUCT_ATTRS:
        if isinstance(module, cls):
            return {n: list(v) if isinstance(v, tuple) else v for n in names
                    for v in [getattr(module, n)]}
    return {}


def _tensors(model: nn.Module) -> dict[str, list[int]]:
    out = {k: list(v.shape) for k, v in model.named_parameters()}
    out.update({k: list(v.shape) for k, v in model.named_buffers() if v is not None})
    return out


def extract_plan(model: nn.Module, reference: nn.Module) -> dict[str, Any]:
    """The plan that turns ``reference`` (a fresh build) into ``model``'s widths.

    Empty dicts when nothing changed. Raises if the module trees differ, because then
    the model is not a resized instance of the architecture and cannot be rebuilt.
    """
    ref_modules = dict(reference.named_modules())
    modules: dict[str, dict[str, Any]] = {}
    for name, mod in model.named_modules():
        ref = ref_modules.get(name)
        if ref is None or type(ref) is not type(mod):
            raise EdgekitError(
                f"module {name or '<root>'!r} ({type(mod).__name__}) is not in the architecture's "
                "definition; only layer widths may change for a checkpoint to rebuild")
        attrs = _attrs(mod)
        if attrs and attrs != _attrs(ref):
            modules[name] = {"type": type(mod).__name__, **attrs}
    ref_t = _tensors(reference)
    tensors = {k: s for k, s in _tensors(model).items() if ref_t.get(k) != s}
    return {"modules": modules, "tensors": tensors} if (modules or tensors) else {}


def apply_plan(model: nn.Module, plan: dict[str, Any]) -> nn.Module:
    """Resize a freshly built ``model`` in place to the widths in ``plan``.

    Values are placeholders (``torch.empty``) until the state dict is loaded.
    """
    if not plan:
        return model
    for name, attrs in plan.get("modules", {}).items():
        try:
            mod = model.get_submodule(name)
        except AttributeError as exc:
            raise EdgekitError(f"channel plan names unknown layer {name!r}") from exc
        for key, value in attrs.items():
            if key != "type":
                setattr(mod, key, tuple(value) if isinstance(value, list) else value)
    for tname, shape in plan.get("tensors", {}).items():
        owner_name, _, attr = tname.rpartition(".")
        owner = model.get_submodule(owner_name) if owner_name else model
        old = getattr(owner, attr, None)
        if old is None:
            raise EdgekitError(f"channel plan names unknown tensor {tname!r}")
        new = torch.empty(shape, dtype=old.dtype, device=old.device)
        if isinstance(old, nn.Parameter):
            setattr(owner, attr, nn.Parameter(new, requires_grad=old.requires_grad))
        else:
            owner._buffers[attr] = new
    return model


def describe_plan(plan: dict[str, Any]) -> list[str]:
    """Human-readable lines: one per resized layer, e.g. ``layer1.0.conv1: out_channels 64 -> 32``."""
    return [f"{name}: " + ", ".join(f"{k}={v}" for k, v in attrs.items() if k != "type")
            for name, attrs in plan.get("modules", {}).items()]
