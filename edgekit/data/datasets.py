"""Datasets that yield ``(PIL.Image, target)`` pairs, before any transform.

Keeping samples as images until the transform runs means training, evaluation,
calibration for int8 export and parity checks all preprocess through the same
checkpoint-defined transform.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from ..errors import EdgekitError

log = logging.getLogger("edgekit.data")

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff", ".ppm", ".pgm")


class ImageList(Dataset):
    """Images from files on disk with their targets; unreadable files were dropped at scan time."""

    def __init__(self, paths: Sequence[Path], targets: Sequence[Any]) -> None:
        self.paths = list(paths)
        self.targets = list(targets)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[Image.Image, Any]:
        with Image.open(self.paths[i]) as img:
            return img.convert("RGB"), self.targets[i]


class ArrayImages(Dataset):
    """In-memory uint8 images (N, H, W) or (N, H, W, 3) with targets (built-in sets)."""

    def __init__(self, images: np.ndarray, targets: Sequence[Any]) -> None:
        if images.dtype != np.uint8:
            raise TypeError("ArrayImages expects uint8 images")
        self.images = images
        self.targets = list(targets)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[Image.Image, Any]:
        return Image.fromarray(self.images[i]).convert("RGB"), self.targets[i]


class Subset(Dataset):
    """A view of ``base`` at ``indices`` that keeps ``targets`` addressable."""

    def __init__(self, base: Dataset, indices: Sequence[int]) -> None:
        self.base = base
        self.indices = list(indices)
        self.targets = [base.targets[i] for i in self.indices]  # type: ignore[attr-defined]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[Image.Image, Any]:
        return self.base[self.indices[i]]


class Transformed(Dataset):
    """Apply ``transform`` to the image and ``target_transform`` to the target."""

    def __init__(self, base: Dataset, transform: Callable,
                 target_transform: Callable[[Any], Any] | None = None) -> None:
        self.base = base
        self.transform = transform
        self.target_transform = target_transform

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, Any]:
        img, target = self.base[i]
        if self.target_transform is not None:
            target = self.target_transform(target)
        return self.transform(img), target


def readable_images(paths: Sequence[Path]) -> tuple[list[Path], list[Path]]:
    """Split ``paths`` into (readable, corrupt) by asking PIL to verify each file."""
    good, bad = [], []
    for p in paths:
        try:
            with Image.open(p) as img:
                img.verify()
            good.append(p)
        except Exception:  # PIL raises many types for broken files
            bad.append(p)
    if bad:
        log.warning("skipped %d unreadable image(s), e.g. %s", len(bad), bad[0])
    return good, bad


def seeded_split(n: int, val_fraction: float, seed: int, targets: Sequence[Any] | None = None
                 ) -> tuple[list[int], list[int]]:
    """Deterministic train/val index split; stratified by class when targets are labels."""
    if not 0 < val_fraction < 1:
        raise EdgekitError(f"val fraction must be in (0, 1), got {val_fraction}")
    rng = np.random.default_rng(seed)
    if targets is not None and all(isinstance(t, (int, np.integer)) for t in targets):
        train, val = [], []
        targets_arr = np.asarray(targets)
        for c in np.unique(targets_arr):
            idx = rng.permutation(np.flatnonzero(targets_arr == c))
            k = max(1, int(round(len(idx) * val_fraction))) if len(idx) > 1 else 0
            val.extend(idx[:k].tolist())
            train.extend(idx[k:].tolist())
        return sorted(train), sorted(val)
    perm = rng.permutation(n)
    k = max(1, int(round(n * val_fraction)))
    return sorted(perm[k:].tolist()), sorted(perm[:k].tolist())
