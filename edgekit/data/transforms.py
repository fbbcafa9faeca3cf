"""Preprocessing derived from a checkpoint's input spec.

The input spec is plain data stored in every checkpoint and export manifest::

    {"shape": [3, 32, 32], "layout": "NCHW", "dtype": "float32", "color": "RGB",
     "mean": [...], "std": [...], "resize": 32 | [32, 32], "crop": null | 224}

``resize`` is an int (shorter side, aspect kept, then centre ``crop``) or an
``[H, W]`` pair (direct resize). The eval transform is the exact preprocessing the
model was evaluated with; exporters and benchmarks reuse it so parity and accuracy
are measured on what the model really sees.

A tabular spec (``{"kind": "tabular", "features", "shape": [d], "mean", "std"}``, see
:mod:`edgekit.data.tabular`) has no preprocessing outside the model: its standardisation
is the model's first layer, so both transforms only make the raw row a float32 tensor.

A clip spec (``{"kind": "clip", "frames": T, "shape": [T, 3, H, W], "layout": "NTCHW",
...}``, ``make_input_spec(size, frames=T)``) samples ``T`` frames per clip (TSN segments)
and puts each through the image preprocessing above; see :mod:`edgekit.data.clips`.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from PIL import Image
from torchvision.transforms import v2 as T

from ..errors import EdgekitError
from ..stage_config import AUGMENTS
from .clips import DEFAULT_JITTER, MIN_CROP_SCALE, NO_FLIP, ClipTransform, frame_spec, is_clip, with_frames

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def make_input_spec(size: int, channels: int = 3, mean: Sequence[float] = IMAGENET_MEAN,
                    std: Sequence[float] = IMAGENET_STD, crop_ratio: float | None = None,
                    frames: int | None = None) -> dict[str, Any]:
    """Input spec for square ``size`` inputs.

    ``crop_ratio`` (e.g. 0.875) gives ImageNet-style evaluation: resize the shorter side
    to ``size / crop_ratio`` then centre-crop ``size``; without it images are resized
    straight to ``size x size``. ``frames`` makes it a clip spec of ``frames`` frames per
    sample (:func:`edgekit.data.clips.with_frames`).
    """
    resize: int | list[int] = [size, size] if crop_ratio is None else int(round(size / crop_ratio))
    spec = {"shape": [channels, size, size], "layout": "NCHW", "dtype": "float32",
            "color": "RGB" if channels == 3 else "L", "mean": list(mean), "std": list(std),
            "resize": resize, "crop": None if crop_ratio is None else size}
    return spec if frames is None else with_frames(spec, frames)


def _to_tensor(spec: dict[str, Any]) -> list[Callable]:
    return [T.ToImage(), T.ToDtype(torch.float32, scale=True), T.Normalize(spec["mean"], spec["std"])]


def _color(spec: dict[str, Any]) -> Callable:
    mode = spec.get("color", "RGB")
    # only PIL images carry a colour mode (a tensor's ``.mode`` is torch.mode, a method)
    return lambda img: img.convert(mode) if isinstance(img, Image.Image) and img.mode != mode else img


def is_tabular(spec: dict[str, Any]) -> bool:
    """Whether ``spec`` describes feature vectors rather than images."""
    return spec.get("kind") == "tabular"


def as_features(row: Any) -> torch.Tensor:
    """A raw feature row (tensor, array, list) as a float32 tensor: the tabular transform."""
    return torch.as_tensor(row, dtype=torch.float32)


def preprocessing(spec: dict[str, Any]) -> dict[str, Any]:
    """What an application must do to its raw input before an exported model (a manifest's
    ``preprocessing``): for images the resize, scale and normalisation; for tabular rows
    nothing but putting the features in order, since the model standardises them itself."""
    if is_tabular(spec):
        return {"features": list(spec["features"]), "dtype": spec.get("dtype", "float32"),
                "scale": "none: raw feature values in this order (the model's first layer standardises them)"}
    out = {k: spec.get(k) for k in ("color", "resize", "crop", "mean", "std", "dtype")}
    out["scale"] = "pixel / 255, then (x - mean) / std per channel"
    if spec.get("kind") == "clip":
        out["frames"] = spec["frames"]
        out["sampling"] = "the centre frame of each of `frames` equal segments of the clip, in order"
    return out


def eval_transform(spec: dict[str, Any]) -> Callable:
    """PIL image -> normalised CHW float tensor, exactly as in evaluation (tabular: the raw row)."""
    if is_tabular(spec):
        return as_features
    if is_clip(spec):
        return clip_eval_transform(spec)
    resize = spec["resize"]
    steps: list[Callable] = [_color(spec), T.Resize(resize if isinstance(resize, int) else tuple(resize),
                                                     antialias=True)]
    if spec.get("crop"):
        steps.append(T.CenterCrop(spec["crop"]))
    return T.Compose(steps + _to_tensor(spec))


#: the training augmentation presets of :func:`train_transform`:
#:
#: * ``standard``: padded random crop (<= 64 px) or RandomResizedCrop, plus a horizontal flip;
#: * ``no_flip``: the same without the flip (digits, text: a mirror changes the class);
#: * ``none``: the eval transform, no augmentation;
#: * ``dldl``: the DLDL-v2 recipe (Gao et al., "Learning Expectation of Label Distribution
#:   for Facial Age and Attractiveness Estimation", 2020): flip, random grayscale, random
#:   scale, rotation +-30 degrees, rescale, random crop, colour jitter 0.4/0.4/0.4;
#: * ``dldl_no_flip``: the DLDL-v2 recipe without the flip (data where a mirror changes the label).
#: (the names are :data:`edgekit.stage_config.AUGMENTS`, below data and training and free of torch)


def train_transform(spec: dict[str, Any], augment: str = "standard", min_scale: float = 0.08) -> Callable:
    """Training augmentation matched to the input size (``augment``: one of :data:`AUGMENTS`).

    ``standard``: small inputs (<= 64 px) get padded random crops (CIFAR recipe) plus
    flips; larger ones RandomResizedCrop + flip (ImageNet recipe). ``none``: the eval
    transform. Flips are left out for ``no_flip`` (digits and text are not symmetric).
    ``dldl`` / ``dldl_no_flip``: see :func:`dldl_steps`. Tabular rows are not augmented.
    ``min_scale``: the smallest RandomResizedCrop area. Clip specs get the clip transform
    (:func:`clip_train_transform`: these presets minus the flip).
    """
    if augment not in AUGMENTS:
        raise EdgekitError(f"unknown augmentation {augment!r}; use one of {', '.join(AUGMENTS)}")
    if is_clip(spec):
        return clip_train_transform(spec, augment)
    if augment == "none" or is_tabular(spec):
        return eval_transform(spec)
    h, w = spec["shape"][1:]
    if augment.startswith("dldl"):
        return T.Compose([_color(spec)] + dldl_steps(spec, flip=augment == "dldl") + _to_tensor(spec))
    flip = [] if augment == "no_flip" else [T.RandomHorizontalFlip()]
    if max(h, w) <= 64:
        steps = [_color(spec), T.Resize((h, w), antialias=True), T.RandomCrop((h, w), padding=max(1, h // 8))]
    else:
        steps = [_color(spec), T.RandomResizedCrop((h, w), scale=(min_scale, 1.0), antialias=True)]
    return T.Compose(steps + flip + _to_tensor(spec))


def dldl_steps(spec: dict[str, Any], flip: bool = True) -> list[Callable]:
    """The DLDL-v2 training augmentation, in the paper's order, for ``spec``'s input size.

    Horizontal flip (p 0.5, unless ``flip`` is false), random grayscale (p 0.5), a random
    scale (shorter side uniform between half and all of the input size: the paper's
    112..224 at 224), rotation by up to +-30 degrees, rescale of the shorter side back to the
    input size, a random crop of the input size, and colour jitter (brightness, contrast,
    saturation 0.4). Single-channel inputs skip the grayscale and saturation steps.
    """
    h, w = spec["shape"][1:]
    side = min(h, w)
    rgb = spec.get("color", "RGB") == "RGB"
    return ([T.RandomHorizontalFlip(0.5)] if flip else []) \
        + ([T.RandomGrayscale(0.5)] if rgb else []) \
        + [T.RandomShortestSize(list(range(max(1, side // 2), side + 1)), antialias=True),
           T.RandomRotation(30),
           T.Resize(max(h, w), antialias=True),
           T.RandomCrop((h, w), pad_if_needed=True),
           T.ColorJitter(0.4, 0.4, 0.4 if rgb else 0.0)]


# Clip specs: the image transforms above on every frame of the sampled segments
# (:class:`edgekit.data.clips.ClipTransform`); here, above the clip sampling they use.

def clip_train_transform(spec: dict[str, Any], augment: str = "standard",
                         jitter: float = DEFAULT_JITTER) -> ClipTransform:
    """Training clip transform: random segment offsets, temporal jitter, and the image
    preset ``augment`` without its horizontal flip, applied identically to every frame."""
    frame = train_transform(frame_spec(spec), NO_FLIP.get(augment, augment), min_scale=MIN_CROP_SCALE)
    return ClipTransform(int(spec["frames"]), frame, train=True, jitter=jitter)


def clip_eval_transform(spec: dict[str, Any]) -> ClipTransform:
    """Evaluation clip transform: segment centres, the image eval transform on each frame."""
    return ClipTransform(int(spec["frames"]), eval_transform(frame_spec(spec)), train=False)
