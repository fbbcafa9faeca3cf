"""Video classifiers over a 2D backbone: TSN, TSM (offline) and the streaming, online TSM.

Three registry families, each over a 2D image architecture ``<backbone>`` of the registry
(``mobilenet_v2``, the backbone of the TSM paper's online demo, is the default choice;
``resnet18``, the other ResNets and ``compact_cnn`` work too):

* ``tsn_<backbone>`` (Wang et al., "Temporal Segment Networks", ECCV 2016): the backbone on
  each of T frames, logits averaged over time. Blind to frame order: the baseline a
  direction-bearing gesture cannot be recognised with.
* ``tsm_<backbone>`` (Lin, Gan & Han, "TSM: Temporal Shift Module for Efficient Video
  Understanding", ICCV 2019, sections 3-4): the same, with a temporal shift
  (:mod:`edgekit.models.shift`) at the input of every residual branch, before its first
  convolution; the shortcut keeps the unshifted input ("residual shift", the paper's
  choice over an in-place shift). ``shift="bidirectional"`` (the default: the offline
  model of the paper, best for clip accuracy) reads one frame back and one ahead;
  ``shift="causal"`` reads only the past, the model to train for streaming.
* ``tsm_online_<backbone>``: a causal TSM run on **one frame per call**, in the real-time
  setting of Zhang, Liu & Wu ("Towards Real-Time Action Recognition on Mobile Devices Using
  Deep Models", arXiv 1906.07052, 2019) and of the TSM paper's online demo. Same modules,
  same state-dict keys as ``tsm_<backbone>``: a causal TSM checkpoint loads into it
  strictly. ``forward(frame, *states) -> (logits, *new_states)``: each shifted block keeps
  the first 1/8 of its input channels of the previous frame as one 4-D state tensor
  ``(N, C/8, H, W)`` (phone GPU delegates mishandle 5-D tensors), in depth order.

Where the shift goes, per backbone: every ``BasicBlock`` / ``Bottleneck`` of a ResNet;
the stride-1 inverted-residual blocks of MobileNetV2 whose input and output widths match
(those with a residual add: 10 blocks, as in the TSM online demo); the separable blocks
of ``compact_cnn`` with an identity shortcut (3 blocks). Other backbones serve TSN only.

**Layout.** A clip model takes ``(N, T, C, H, W)`` (frames in time order) and returns
the time-averaged logits ``(N, classes)``, what training uses; ``frame_logits`` returns
the per-frame logits ``(N, T, classes)``, the ones the online model reproduces frame by
frame. ``frames`` is the clip length the model is trained on (the data's segment count);
the forward accepts any T. The backbone is the ``backbone`` child, so the registry layout
(classifier, penultimate feature, stem) is the backbone's under ``backbone.``; the
feature and the classifier run per frame (``(N*T, D)``), averaging comes after the
classifier (TSN's consensus on scores). ``weights=PATH`` given to ``create_model`` loads
a 2D image checkpoint or torchvision state dict into the backbone (keys without the
``backbone.`` prefix are moved under it), or a clip checkpoint as it is; ``weights="imagenet"``
(or a torchvision weights name) loads the backbone's torchvision weights the same way
(:mod:`edgekit.pretrained`): the real-time paper reports (abstract) that ImageNet
initialisation improves accuracy in this setting.

**When to reset the state** of an online model: at the start of every stream (zeros:
:meth:`OnlineTSM.initial_states`, or call it without states), and whenever frames stop
arriving in order (the camera paused, idle frames not processed, frames dropped for more
than a moment, a scene cut): the state is the previous processed frame's features and
must be the frame just before this one. A stale state is forgotten by itself after
:attr:`OnlineTSM.receptive_frames` ``- 1`` frames (each shifted block reaches one frame
back), so the output at frame t depends on frames ``t - len(states) .. t`` only.

Forwards hold no branch on tensor values (loops over the fixed module list only), and
states go in and out as plain tensors, so the online model can be exported.
"""
from __future__ import annotations

import copy
import functools
from typing import Any, Callable

import torch
from torch import nn
from torch.func import functional_call

from ..errors import EdgekitError
from ..numbers import positive_int
from .entries import ModelEntry
from .layout import Layout, attach, layout_of
from .shift import check_mode, shift_step, temporal_shift

#: registry name prefixes, longest first (``tsm_online_`` before ``tsm_``)
PREFIXES = ("tsm_online_", "tsm_", "tsn_")
NOT_CAUSAL = "a bidirectional TSM reads the next frame and cannot stream; train with shift='causal'"


# ---------------------------------------------------------------- shifted residual blocks

class ShiftedResidual(nn.Module):
    """A residual block whose branch sees the temporally shifted input; the shortcut does not.

    Built from the block itself: its children (and plain attributes) are adopted under their
    own names, so the state-dict keys stay those of the 2D backbone. Subclasses say how
    branch and shortcut combine (:meth:`residual`). ``forward(x, frames)`` shifts a whole clip ``(N*T, C, H, W)``;
    :meth:`step` runs one frame with the causal state.
    """

    def __init__(self, block: nn.Module, mode: str, fold_div: int) -> None:
        super().__init__()
        for name, child in block.named_children():
            self.add_module(name, child)
        for name, value in vars(block).items():  # plain attributes: ``downsample = None``, ``use_res_connect``...
            if not name.startswith("_") and name != "training":
                setattr(self, name, value)
        self.mode = check_mode(mode)
        self.fold_div = fold_div

    def residual(self, branch_in: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        return self.residual(temporal_shift(x, frames, self.mode, self.fold_div), x)

    def step(self, x: torch.Tensor, state: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """One frame ``(N, C, H, W)`` and the previous frame's state -> (output, new state)."""
        shifted, new_state = shift_step(x, state, self.fold_div)
        return self.residual(shifted, x), new_state


class ShiftedBasicBlock(ShiftedResidual):
    """torchvision's ResNet ``BasicBlock``."""

    def residual(self, b: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(b)))))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class ShiftedBottleneck(ShiftedResidual):
    """torchvision's ResNet ``Bottleneck``."""

    def residual(self, b: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(b)))
        out = self.bn3(self.conv3(self.relu(self.bn2(self.conv2(out)))))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class ShiftedInvertedResidual(ShiftedResidual):
    """torchvision's MobileNetV2 ``InvertedResidual`` with its residual add."""

    def residual(self, b: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(b)


class ShiftedSeparableBlock(ShiftedResidual):
    """``compact_cnn``'s ``SeparableBlock`` with its identity shortcut."""

    def residual(self, b: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn2(self.pw(self.act(self.bn1(self.dw(b))))) + x)


def _shifted_class(block: nn.Module) -> type[ShiftedResidual] | None:
    """The shifted form of ``block``, or ``None`` where it has no residual branch to shift."""
    from torchvision.models.mobilenetv2 import InvertedResidual
    from torchvision.models.resnet import BasicBlock, Bottleneck

    from .compact import SeparableBlock

    if isinstance(block, BasicBlock):
        return ShiftedBasicBlock
    if isinstance(block, Bottleneck):
        return ShiftedBottleneck
    if isinstance(block, InvertedResidual) and block.use_res_connect:
        return ShiftedInvertedResidual
    if isinstance(block, SeparableBlock) and block.use_residual:
        return ShiftedSeparableBlock
    return None


# ---------------------------------------------------------------- backbones as trunk + head

SUPPORTED = "ResNets (torchvision), mobilenet_v2, compact_cnn"


def trunk(backbone: nn.Module) -> list[nn.Module]:
    """The backbone's modules up to global pooling, in the order its forward runs them, each
    residual block on its own (so shifted blocks can be given the clip length or a state)."""
    from torchvision.models import MobileNetV2, ResNet

    from .compact import CompactCNN

    if isinstance(backbone, ResNet):
        b = backbone
        return [b.conv1, b.bn1, b.relu, b.maxpool, *b.layer1, *b.layer2, *b.layer3, *b.layer4]
    if isinstance(backbone, (MobileNetV2, CompactCNN)):
        return list(backbone.features)
    raise EdgekitError(f"the temporal shift supports {SUPPORTED} as backbones, not {type(backbone).__name__}; "
                       "use tsn_<backbone> for others")


def head(backbone: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The rest of the backbone's forward after :func:`trunk`: global pooling and classifier."""
    from torchvision.models import ResNet

    from .compact import CompactCNN

    if isinstance(backbone, ResNet):
        return backbone.fc(torch.flatten(backbone.avgpool(x), 1))
    if isinstance(backbone, CompactCNN):
        return backbone.classifier(backbone.dropout(torch.flatten(backbone.pool(x), 1)))
    return backbone.classifier(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))  # MobileNetV2


def insert_shifts(backbone: nn.Module, mode: str, fold_div: int) -> int:
    """Put a temporal shift in every residual branch of ``backbone`` (in place); returns how many.

    Blocks already shifted are kept if their mode is ``mode`` (a causal TSM's backbone
    becomes an online one's as it is).
    """
    count = 0
    for module in trunk(backbone):
        if isinstance(module, ShiftedResidual):
            if module.mode != mode:
                raise EdgekitError(f"this backbone's shift is {module.mode}, not {mode}: {NOT_CAUSAL}")
            count += 1
            continue
        cls = _shifted_class(module)
        if cls is None:
            continue
        path = next(name for name, m in backbone.named_modules() if m is module)
        parent, _, attr = path.rpartition(".")
        setattr(backbone.get_submodule(parent) if parent else backbone, attr, cls(module, mode, fold_div))
        count += 1
    if not count:
        raise EdgekitError(f"{type(backbone).__name__} has no residual block to shift")
    return count


def _shifted(backbone: nn.Module) -> list[ShiftedResidual]:
    return [m for m in trunk(backbone) if isinstance(m, ShiftedResidual)]


class _Temporal(nn.Module):
    """Common part: the ``backbone`` child (state-dict keys ``backbone.*``) and how 2D weights load."""

    backbone: nn.Module

    def adapt_weights(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A state dict to load into this model: a 2D backbone's (no key under ``backbone.``)
        is moved under ``backbone.``; a clip model's is returned as it is. Called by
        :func:`edgekit.registry.load_weights`."""
        if any(k.startswith("backbone.") for k in state):
            return state
        return {f"backbone.{k}": v for k, v in state.items()}


# ---------------------------------------------------------------- offline clip models

class ClipNet(_Temporal):
    """TSN (``shift=None``) or offline TSM over ``backbone``: ``(N, T, C, H, W)`` -> ``(N, classes)``."""

    def __init__(self, backbone: nn.Module, frames: int = 8, shift: str | None = None, fold_div: int = 8) -> None:
        super().__init__()
        self.frames = positive_int("frames", frames)
        self.fold_div = positive_int("fold_div", fold_div)
        self.shift = None if shift is None else check_mode(shift)
        self.backbone = backbone
        if self.shift is not None:
            insert_shifts(backbone, self.shift, self.fold_div)

    def frame_logits(self, clip: torch.Tensor) -> torch.Tensor:
        """Per-frame logits ``(N, T, classes)`` of a clip ``(N, T, C, H, W)``."""
        if clip.dim() != 5:
            raise EdgekitError(f"a clip model takes (N, T, C, H, W) clips, got shape {tuple(clip.shape)}")
        n, t = clip.shape[:2]
        x = clip.flatten(0, 1)
        if self.shift is None:
            out = self.backbone(x)
        else:
            for module in trunk(self.backbone):
                x = module(x, t) if isinstance(module, ShiftedResidual) else module(x)
            out = head(self.backbone, x)
        return out.reshape(n, t, *out.shape[1:])

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        """Time-averaged logits ``(N, classes)``: what training and clip evaluation use."""
        return self.frame_logits(clip).mean(1)


# ---------------------------------------------------------------- online TSM

class OnlineTSM(_Temporal):
    """A causal TSM run one frame per call: ``forward(frame, *states) -> (logits, *new_states)``.

    ``frame`` is ``(N, C, H, W)``; ``states`` are the previous call's new states (none, or
    :meth:`initial_states`, at the start of a stream: zeros). ``frames`` (the training clip
    length) is kept for information only.
    """

    def __init__(self, backbone: nn.Module, frames: int = 8, fold_div: int = 8) -> None:
        super().__init__()
        self.frames = positive_int("frames", frames)
        self.fold_div = positive_int("fold_div", fold_div)
        self.shift = "causal"
        self.backbone = backbone
        insert_shifts(backbone, "causal", self.fold_div)

    @property
    def num_states(self) -> int:
        return len(_shifted(self.backbone))

    @property
    def receptive_frames(self) -> int:
        """How many frames (this one included) an output depends on: one more than the states."""
        return self.num_states + 1

    def forward(self, frame: torch.Tensor, *states: torch.Tensor) -> tuple[torch.Tensor, ...]:
        modules = trunk(self.backbone)
        n_states = sum(isinstance(m, ShiftedResidual) for m in modules)
        if states and len(states) != n_states:
            raise EdgekitError(f"this online model takes {n_states} state tensors, got {len(states)}")
        x, new_states = frame, []
        for module in modules:
            if isinstance(module, ShiftedResidual):
                x, state = module.step(x, states[len(new_states)] if states else None)
                new_states.append(state)
            else:
                x = module(x)
        return (head(self.backbone, x), *new_states)

    def state_shapes(self, height: int, width: int, batch: int = 1) -> list[tuple[int, ...]]:
        """Shapes ``(batch, C/8, H', W')`` of the states for ``height x width`` frames, in depth order
        (found on the meta device: no compute, no allocation)."""
        stem = next(m for m in self.backbone.modules() if isinstance(m, nn.Conv2d))
        meta = {k: torch.empty_like(v, device="meta")
                for k, v in [*self.named_parameters(), *self.named_buffers()]}
        frame = torch.empty(batch, stem.in_channels, height, width, device="meta")
        with torch.no_grad():
            out = functional_call(self, meta, (frame,))
        return [tuple(s.shape) for s in out[1:]]

    def initial_states(self, batch: int, height: int, width: int, device: torch.device | str | None = None,
                       dtype: torch.dtype | None = None) -> list[torch.Tensor]:
        """Zero states for a new stream of ``batch x height x width`` frames (reset: see the module doc)."""
        ref = next(self.parameters())
        return [torch.zeros(shape, device=device or ref.device, dtype=dtype or ref.dtype)
                for shape in self.state_shapes(height, width, batch)]


def to_online(model: ClipNet) -> OnlineTSM:
    """The online model of a causal offline TSM: a copy with the same weights and layout."""
    if not isinstance(model, ClipNet) or model.shift is None:
        raise EdgekitError("only a causal TSM (shift='causal') streams frame by frame")
    if model.shift != "causal":
        raise EdgekitError(NOT_CAUSAL)
    online = OnlineTSM(copy.deepcopy(model.backbone), frames=model.frames, fold_div=model.fold_div)
    return attach(online, layout_of(model))


def is_clip_arch(arch: str) -> bool:
    """Whether registry name ``arch`` is a clip architecture (``tsn_``, ``tsm_``, ``tsm_online_``)."""
    return arch.startswith(PREFIXES)


def online_arch(arch: str) -> str:
    """Registry name of the online model of clip architecture ``arch`` (``tsm_x`` -> ``tsm_online_x``)."""
    if arch.startswith("tsm_online_"):
        return arch
    if arch.startswith("tsm_"):
        return "tsm_online_" + arch[len("tsm_"):]
    raise EdgekitError(f"{arch} does not stream frame by frame; only a causal tsm_<backbone> does")


# ---------------------------------------------------------------- registry factories

# ``build`` is the registry's ``create_model``, handed in by :func:`resolve`'s caller (the registry):
# this module sits below the registry and does not import it.

def tsn(backbone: str, build: Callable[..., nn.Module], num_classes: int = 1000, frames: int = 8,
        shift: str | None = None, **kwargs: Any) -> nn.Module:
    """TSN over registry architecture ``backbone`` (extra kwargs go to the backbone)."""
    if shift is not None:
        raise EdgekitError(f"TSN has no temporal shift (got shift={shift!r}); use tsm_{backbone}")
    return ClipNet(build(backbone, num_classes=num_classes, **kwargs), frames=frames)


def tsm(backbone: str, build: Callable[..., nn.Module], num_classes: int = 1000, frames: int = 8,
        shift: str = "bidirectional", fold_div: int = 8, **kwargs: Any) -> nn.Module:
    """Offline TSM (``shift`` bidirectional or causal) over ``backbone``."""
    check_mode(shift)
    return ClipNet(build(backbone, num_classes=num_classes, **kwargs), frames=frames, shift=shift,
                   fold_div=fold_div)


def tsm_online(backbone: str, build: Callable[..., nn.Module], num_classes: int = 1000, frames: int = 8,
               shift: str = "causal", fold_div: int = 8, **kwargs: Any) -> nn.Module:
    """Online TSM over ``backbone``; takes a causal TSM's architecture kwargs as they are."""
    if check_mode(shift) != "causal":
        raise EdgekitError(NOT_CAUSAL)
    return OnlineTSM(build(backbone, num_classes=num_classes, **kwargs), frames=frames, fold_div=fold_div)


_BUILDERS: dict[str, Callable[..., nn.Module]] = {"tsm_online_": tsm_online, "tsm_": tsm, "tsn_": tsn}


def _prefixed(layout: Layout) -> Layout:
    return Layout(*(None if p is None else f"backbone.{p}"
                    for p in (layout.classifier, layout.feature, layout.stem, layout.stem_pool)))


def resolve(name: str, get_entry: Callable[[str], ModelEntry], create_model: Callable[..., nn.Module]) -> ModelEntry:
    """The registry entry of ``tsn_<b>``, ``tsm_<b>`` or ``tsm_online_<b>`` for registry name ``<b>``:
    the backbone's default input and its layout under ``backbone.``. ``get_entry`` and
    ``create_model`` are the registry's (it passes them: see :mod:`edgekit.models.entries`)."""
    from .tabular import takes_features

    prefix = next(p for p in PREFIXES if name.startswith(p))
    backbone = name[len(prefix):]
    if not backbone or backbone.startswith(PREFIXES):
        raise EdgekitError(f"{name}: expected {prefix}<backbone> with a 2D image architecture, e.g. "
                           f"{prefix}mobilenet_v2")
    inner = get_entry(backbone)
    if takes_features(inner.factory):
        raise EdgekitError(f"{name}: {backbone} takes feature vectors, not images")
    factory = functools.partial(_BUILDERS[prefix], backbone, create_model)
    return ModelEntry(name, factory, inner.default_input, "edgekit", _prefixed(inner.layout),
                      weights_arch=inner.weights_arch)  # the backbone's torchvision weights (adapt_weights)
