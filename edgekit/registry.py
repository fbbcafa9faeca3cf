"""Architecture names -> model factories.

Three sources, one namespace:

* edgekit's own nets, registered with :func:`register_model` (``compact_cnn``);
* every torchvision classification architecture (``resnet18``, ``mobilenet_v2``...);
* user factories given as ``package.module:function``.

``create_model`` never downloads anything: pretrained weights come from a local
file (``weights=PATH``), either a plain state dict or an edgekit checkpoint.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from .errors import EdgekitError, suggest
from .fileio import safe_torch_load

Factory = Callable[..., nn.Module]


@dataclass(frozen=True)
class ModelEntry:
    """A registered architecture: its factory and the input size it is designed for."""

    name: str
    factory: Factory
    default_input: int
    source: str  # "edgekit", "torchvision" or "user"


_EDGEKIT: dict[str, ModelEntry] = {}


def register_model(name: str, default_input: int = 224) -> Callable[[Factory], Factory]:
    """Decorator: make ``factory(num_classes=..., **kwargs)`` available as ``name``."""

    def deco(fn: Factory) -> Factory:
        _EDGEKIT[name] = ModelEntry(name, fn, default_input, "edgekit")
        return fn

    return deco


def _torchvision_names() -> list[str]:
    import torchvision.models as tvm

    return sorted(tvm.list_models(module=tvm))


def list_models() -> list[str]:
    """All registry names: edgekit's own first, then torchvision's classifiers."""
    _load_builtin()
    return sorted(_EDGEKIT) + _torchvision_names()


def get_entry(name: str) -> ModelEntry:
    """Resolve a name (registry name or ``module:function``) to its entry."""
    _load_builtin()
    if name in _EDGEKIT:
        return _EDGEKIT[name]
    if ":" in name:
        mod_name, _, fn_name = name.partition(":")
        try:
            fn = getattr(importlib.import_module(mod_name), fn_name)
        except (ImportError, AttributeError) as exc:
            raise EdgekitError(f"cannot import user factory {name!r}: {exc}") from exc
        return ModelEntry(name, fn, 224, "user")
    if name in _torchvision_names():
        import torchvision.models as tvm

        def tv_factory(num_classes: int = 1000, **kw: Any) -> nn.Module:
            return tvm.get_model(name, weights=None, num_classes=num_classes, **kw)

        return ModelEntry(name, tv_factory, 299 if name == "inception_v3" else 224, "torchvision")
    raise suggest(name, list_models(), "architecture")


def adapt_small_input(model: nn.Module) -> nn.Module:
    """Keep resolution in the stem for small images (CIFAR-style).

    Sets the first convolution's stride to 1 and removes a stem max-pool
    (``model.maxpool``, as in ResNets). A 32x32 image then reaches the last stage at
    4x4 instead of 1x1. Applied only on request (``small_input=True``), and recorded
    in the checkpoint's architecture kwargs so the model rebuilds identically.
    """
    first = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if first is None:
        raise EdgekitError("small_input=True needs a model with a Conv2d stem")
    first.stride = (1, 1)
    if isinstance(getattr(model, "maxpool", None), nn.MaxPool2d):
        model.maxpool = nn.Identity()
    return model


def create_model(name: str, num_classes: int = 1000, weights: str | Path | None = None,
                 small_input: bool = False, feature_dim: int | None = None, **kwargs: Any) -> nn.Module:
    """Build architecture ``name`` with ``num_classes`` outputs.

    ``weights`` is a local file: a state dict or an edgekit checkpoint. Tensors whose
    shape does not match (a classifier for another number of classes) are skipped and
    reported, so ImageNet weights can seed a 10-class model. ``feature_dim=D`` puts a
    Linear connector to D dims before the final classifier (a distilled student whose
    teacher's feature has D dims; see :func:`edgekit.compress.features.add_connector`).
    """
    entry = get_entry(name)
    try:
        model = entry.factory(num_classes=num_classes, **kwargs)
    except TypeError as exc:
        raise EdgekitError(f"cannot build {name} with arguments {kwargs}: {exc}") from exc
    if small_input:
        adapt_small_input(model)
    if feature_dim is not None:
        from .compress.features import add_connector

        add_connector(model, int(feature_dim))
    if weights is not None:
        load_weights(model, weights)
    return model


def load_weights(model: nn.Module, path: str | Path) -> dict[str, list[str]]:
    """Load a local state dict (or an edgekit checkpoint's) into ``model``, never executing code.

    Returns the keys that were skipped because they are missing, unexpected or of another shape.
    """
    path = Path(path)
    obj = safe_torch_load(path, "weights file")
    state = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise EdgekitError(f"{path} holds no state dict of tensors")
    own = model.state_dict()
    fitting = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not fitting:
        raise EdgekitError(f"no tensor of {path} fits this model (is it for another architecture?)")
    model.load_state_dict(fitting, strict=False)
    return {
        "mismatched": sorted(k for k in state if k in own and own[k].shape != state[k].shape),
        "unexpected": sorted(k for k in state if k not in own),
        "missing": sorted(k for k in own if k not in state),
    }


def build_for_shape(name: str, num_classes: int = 1000) -> nn.Module:
    """Build ``name`` without allocating weights where possible (meta device).

    Used to count parameters and MACs cheaply. A few initialisers (RegNet's) copy
    real data and fail on meta; those are built on the CPU instead.
    """
    entry = get_entry(name)
    try:
        with torch.device("meta"):
            return entry.factory(num_classes=num_classes)
    except NotImplementedError:
        return entry.factory(num_classes=num_classes)


def count_params(model: nn.Module) -> int:
    """Number of parameters (trainable or not)."""
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Multiply-accumulates of one forward pass at ``input_shape`` (batch included).

    Uses torch's own FLOP counter (every aten op with a formula: convolutions,
    matmuls, attention) and halves its FLOPs. Runs on the meta device when the
    model lives there, so the zoo costs no real compute.
    """
    from torch.utils.flop_counter import FlopCounterMode

    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    was_training = model.training
    model.eval()
    try:
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(torch.zeros(input_shape, device=device))
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2


def _load_builtin() -> None:
    """Import edgekit's own model modules so their ``register_model`` calls run."""
    if not _EDGEKIT:
        importlib.import_module("edgekit.models.zoo")
