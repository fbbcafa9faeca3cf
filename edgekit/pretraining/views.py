"""Two augmented views of one image: the input of every self-supervised method here.

The augmentation is S3L's (Cao & Wu, arXiv 2103.13559; their code's MoCo v2 "aug-plus",
itself MoCo v2's, Chen et al. arXiv 2003.04297): RandomResizedCrop(scale 0.2-1), colour
jitter 0.4/0.4/0.4/0.1 applied with p 0.8, greyscale p 0.2, Gaussian blur (sigma 0.1-2)
p 0.5, horizontal flip, then the input spec's scaling and normalisation, built from
``torchvision.transforms.v2``. The flip is left out for data that a mirror changes
(digits, gestures: :attr:`~edgekit.data.DataBundle.flip_invariant`). The blur kernel is
10 % of the side, odd, at least 3 (SimCLR's choice; the PIL blur of the authors' code takes
no kernel size).

Clip data gives one random frame of each clip per sample (both views come from that frame),
so a 2D backbone pretrains on the frames of a video dataset.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import v2 as T

from ..data.transforms import _color, _to_tensor

#: S3L / MoCo v2 "aug-plus" settings
CROP_SCALE = (0.2, 1.0)
JITTER = (0.4, 0.4, 0.4, 0.1)
JITTER_P = 0.8
GREY_P = 0.2
BLUR_SIGMA = (0.1, 2.0)
BLUR_P = 0.5


def view_transform(spec: dict[str, Any], flip: bool = True) -> Callable:
    """One random view of a PIL image at the spec's input size, normalised like the spec."""
    h, w = spec["shape"][-2:]
    kernel = max(3, int(0.1 * min(h, w)) // 2 * 2 + 1)
    steps = [_color(spec), T.RandomResizedCrop((h, w), scale=CROP_SCALE, antialias=True),
             T.RandomApply([T.ColorJitter(*JITTER)], p=JITTER_P), T.RandomGrayscale(p=GREY_P),
             T.RandomApply([T.GaussianBlur(kernel, sigma=BLUR_SIGMA)], p=BLUR_P)]
    if flip:
        steps.append(T.RandomHorizontalFlip())
    return T.Compose(steps + _to_tensor(spec))


class TwoViews:
    """``sample -> (2, C, H, W)``: two independent draws of ``view`` of one image (or of one
    random frame of a clip)."""

    def __init__(self, view: Callable) -> None:
        self.view = view

    def __call__(self, sample: Any) -> torch.Tensor:
        img = random_frame(sample) if hasattr(sample, "read") else sample
        return torch.stack([self.view(img).as_subclass(torch.Tensor), self.view(img).as_subclass(torch.Tensor)])


def random_frame(clip: Any) -> Image.Image:
    """A uniformly drawn frame of a lazy clip (anything with ``len`` and ``read(indices)``)."""
    i = int(torch.randint(len(clip), (1,)))
    return Image.fromarray(np.asarray(clip.read([i])[0], dtype=np.uint8)).convert("RGB")


def centre_frame(clip: Any) -> Image.Image:
    """The middle frame of a lazy clip: what the k-NN probe sees of a clip."""
    return Image.fromarray(np.asarray(clip.read([len(clip) // 2])[0], dtype=np.uint8)).convert("RGB")


class FrameOrImage:
    """Apply an image ``transform`` to an image, or to the centre frame of a clip."""

    def __init__(self, transform: Callable) -> None:
        self.transform = transform

    def __call__(self, sample: Any) -> torch.Tensor:
        return self.transform(centre_frame(sample) if hasattr(sample, "read") else sample)
