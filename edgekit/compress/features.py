"""The penultimate feature of any model: read from its layout, else found by forward hooks.

Feature mimicking (Wang, Ge & Wu, "Distilling Knowledge by Mimicking Features", TPAMI
2021) works on the *penultimate feature*: the vector that enters the final classifier.
Registry models declare where it is (:class:`edgekit.models.layout.Layout`: ``feature``
and ``classifier``, attached by :func:`edgekit.registry.create_model`); only models
without a declaration (user factories) are searched: :func:`find_classifier` runs one
dummy forward with a hook on every ``nn.Linear`` and keeps the last one called whose
output is the model's output. :class:`FeatureTap` then records, on every forward, the
declared feature module's output or the classifier's input (or, with ``layer=PATH``,
the output of any module, globally average-pooled when it is a feature map: the
``--feature-layer`` override).

When student and teacher feature sizes differ, the student gets a Linear connector
before its classifier (:func:`edgekit.models.connector.add_connector`, re-exported
here).

Note: a dropout placed right before the classifier (compact_cnn, MobileNetV3) is
active on the student's feature in training mode, as the classifier sees it.

**Clip models** (TSN, TSM: :mod:`edgekit.models.temporal`) run their feature and classifier
per frame, ``(N*T, D)``, and average the logits over time. Their tapped feature is the
**clip's**: the per-frame features averaged over the ``T`` frames, ``(N, D)``. Since the
classifier is linear, the clip logits are exactly the classifier applied to that average,
so it is the penultimate feature of the clip prediction, as the paper's is of an image's;
it is what a TSN or a larger TSM teacher and a TSM student can both be asked to agree on.
Matching frame by frame instead would ask a TSM student, whose frames see their
neighbours through the shift, to reproduce a teacher's frame features that do not (a TSN
teacher's are order-blind), and would weigh a clip T times against the clip-level
"teacher correct" mask. One clip gives one feature vector, as one image does.
"""
from __future__ import annotations

import torch
from torch import nn

from ..errors import EdgekitError
from ..models.connector import add_connector
from ..models.layout import declared

__all__ = ["FeatureTap", "add_connector", "feature_dim", "find_classifier"]


@torch.no_grad()
def find_classifier(model: nn.Module, input_shape: tuple[int, ...]) -> str:
    """Module path of the classifier: the model's declared one, else the final ``nn.Linear``
    (whose output is the model's output).

    The search runs one forward of zeros at ``input_shape`` (batch of 2, eval mode, on the
    model's device) with hooks on every Linear. Raises :class:`EdgekitError` if an
    undeclared model does not end in a Linear layer.
    """
    path = declared(model, "classifier")
    if path is not None:
        return path
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

    ``layer=None``: the model's declared feature module, else the input of its classifier
    (:func:`find_classifier`); ``layer=PATH``: the output of module ``PATH`` (pooled to a
    vector if 4-D). Use as a context manager or call :meth:`close` to remove the hook.
    """

    def __init__(self, model: nn.Module, input_shape: tuple[int, ...], layer: str | None = None) -> None:
        from .temporal import is_clip_model

        self.feature: torch.Tensor | None = None
        self._clips: int | None = None  # a clip model's batch of the current forward (N clips of T frames)
        self._root = model.register_forward_pre_hook(self._batch) if is_clip_model(model) else None
        if layer is None:
            layer = declared(model, "feature")
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

    def _batch(self, mod: nn.Module, inp: tuple) -> None:
        self._clips = inp[0].shape[0]

    def _pre(self, mod: nn.Module, inp: tuple) -> None:
        self.feature = self._per_sample(_vector(inp[0]))

    def _post(self, mod: nn.Module, inp: tuple, out: torch.Tensor) -> None:
        self.feature = self._per_sample(_vector(out[0] if isinstance(out, (tuple, list)) else out))

    def _per_sample(self, feature: torch.Tensor) -> torch.Tensor:
        """A clip model's per-frame features ``(N*T, D)`` -> the clips' ``(N, D)`` (mean over T; module doc)."""
        if self._clips is None or feature.shape[0] == self._clips:
            return feature
        return feature.reshape(self._clips, -1, feature.shape[-1]).mean(1)

    def close(self) -> None:
        self._handle.remove()
        if self._root is not None:
            self._root.remove()

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

