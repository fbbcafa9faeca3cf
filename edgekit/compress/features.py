"""The penultimate feature of any registry model, found by forward hooks by module path.

Feature mimicking (LSH paper, methods.md 2.1) works on the *penultimate feature*: the
vector that enters the final linear classifier. :func:`find_classifier` finds that
layer for any architecture by running one dummy forward with a pre-hook on every
``nn.Linear`` and keeping the last one called whose output is the model's output
(``fc`` in ResNets, ``classifier.3`` in MobileNetV3, ``classifier`` in compact_cnn,
``heads.head`` in ViT). :class:`FeatureTap` then records, on every forward, that
layer's input (or, with ``layer=PATH``, the output of any module, globally
average-pooled when it is a feature map: the ``--feature-layer`` override).

When student and teacher feature sizes differ, :func:`add_connector` turns the
student's classifier ``Linear(raw, classes)`` into
``Sequential(connector=Linear(raw, D), classifier=Linear(D, classes))`` (the paper's
"2FC" head); the mimicked feature is the connector's output and the connector stays
in the deployed model. The registry applies it from the ``feature_dim=D`` architecture
kwarg, so a distilled checkpoint rebuilds from its definition like any other.

Note: a dropout placed right before the classifier (compact_cnn, MobileNetV3) is
active on the student's feature in training mode, as the classifier sees it.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from ..errors import EdgekitError


def _last_linear_static(model: nn.Module) -> tuple[str, nn.Linear] | None:
    found = None
    for name, mod in model.named_modules():
        if isinstance(mod, nn.Linear):
            found = (name, mod)
    return found


@torch.no_grad()
def find_classifier(model: nn.Module, input_shape: tuple[int, ...]) -> str:
    """Module path of the final ``nn.Linear`` (its output is the model's output).

    Runs one forward of zeros at ``input_shape`` (batch of 2, eval mode, on the model's
    device) with pre-hooks on every Linear. Raises :class:`EdgekitError` if the model
    does not end in a Linear layer (e.g. SqueezeNet's 1x1-conv head).
    """
    calls: list[tuple[str, torch.Tensor]] = []

    def record(name: str):
        def hook(mod: nn.Module, inp: tuple, out: torch.Tensor) -> None:
            calls.append((name, out))
        return hook

    handles = [m.register_forward_hook(record(name)) for name, m in model.named_modules()
               if isinstance(m, nn.Linear)]
    was_training = model.training
    model.eval()
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    try:
        out = model(torch.zeros((2, *input_shape[1:]), device=device))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    if isinstance(out, (tuple, list)):
        out = out[0]
    for name, value in reversed(calls):
        if value.shape == out.shape and torch.equal(value, out):
            return name
    raise EdgekitError("cannot find the final Linear classifier of this model (its output is not a Linear's); "
                       "name the feature module with --feature-layer")


class FeatureTap:
    """Records the penultimate feature of ``model`` on every forward (``tap.feature``).

    ``layer=None``: the input of the classifier found by :func:`find_classifier`;
    ``layer=PATH``: the output of module ``PATH`` (pooled to a vector if 4-D).
    Use as a context manager or call :meth:`close` to remove the hook.
    """

    def __init__(self, model: nn.Module, input_shape: tuple[int, ...], layer: str | None = None) -> None:
        self.feature: torch.Tensor | None = None
        if layer is None:
            self.layer = find_classifier(model, input_shape)
            module = model.get_submodule(self.layer)
            self._handle = module.register_forward_pre_hook(self._pre)
            self.source = "input"
        else:
            try:
                module = model.get_submodule(layer)
            except AttributeError:
                names = [n for n, _ in model.named_modules() if n]
                from ..errors import suggest

                raise suggest(layer, names, "feature layer") from None
            self.layer = layer
            self._handle = module.register_forward_hook(self._post)
            self.source = "output"

    def _pre(self, mod: nn.Module, inp: tuple) -> None:
        self.feature = _vector(inp[0])

    def _post(self, mod: nn.Module, inp: tuple, out: torch.Tensor) -> None:
        self.feature = _vector(out[0] if isinstance(out, (tuple, list)) else out)

    def close(self) -> None:
        self._handle.remove()

    def __enter__(self) -> "FeatureTap":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _vector(t: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> global average pool -> (B, C); (B, ...) -> flatten."""
    if t.dim() == 4:
        t = t.mean(dim=(2, 3))
    return t.flatten(1)


@torch.no_grad()
def feature_dim(model: nn.Module, input_shape: tuple[int, ...], layer: str | None = None) -> int:
    """Size of the penultimate feature (one dummy forward)."""
    was_training = model.training
    model.eval()
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    with FeatureTap(model, input_shape, layer) as tap:
        model(torch.zeros((2, *input_shape[1:]), device=device))
    model.train(was_training)
    assert tap.feature is not None
    return int(tap.feature.shape[1])


def add_connector(model: nn.Module, dim: int) -> nn.Module:
    """Replace the last ``Linear(raw, k)`` by ``Sequential(connector=Linear(raw, dim), classifier=Linear(dim, k))``.

    Called by the registry for the ``feature_dim`` architecture kwarg. Uses the last
    Linear in registration order (the classifier in every registry architecture; the
    distillation stage checks it with :func:`find_classifier`).
    """
    found = _last_linear_static(model)
    if found is None:
        raise EdgekitError("feature_dim needs a model with a Linear classifier")
    name, fc = found
    head = nn.Sequential(OrderedDict(connector=nn.Linear(fc.in_features, dim),
                                     classifier=nn.Linear(dim, fc.out_features, bias=fc.bias is not None)))
    parent_name, _, attr = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, attr, head)
    return model
