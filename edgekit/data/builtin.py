"""Built-in datasets that need no network.

* ``digits``: scikit-learn's real 8x8 handwritten digits (1,797 images, 10 classes),
  shipped inside the package and upscaled by the transform to the model's input.
* ``synthetic``: a seeded generator of shape images (circle, square, triangle, cross,
  bars...) on noisy backgrounds, for tests that need an image set of any size.
* ``ordinal``: a seeded generator of images whose label is a continuous, flip-invariant
  visual property (a disk's size among clutter) with per-sample label noise and sigma,
  for label-distribution learning (:mod:`edgekit.data.ordinal`).
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from .ordinal import OrdinalSet, ordinal

__all__ = ["SHAPES", "OrdinalSet", "digits", "ordinal", "synthetic"]

SHAPES = ("circle", "square", "triangle", "cross", "hbar", "vbar", "ring", "diamond")


def digits() -> tuple[np.ndarray, list[int], list[str]]:
    """(uint8 images (N, 8, 8), targets, labels) from scikit-learn's digits."""
    from sklearn.datasets import load_digits

    d = load_digits()
    images = np.clip(d.images * (255.0 / 16.0), 0, 255).round().astype(np.uint8)
    return images, [int(t) for t in d.target], [str(i) for i in range(10)]


def _draw(draw: ImageDraw.ImageDraw, shape: str, box: tuple[int, int, int, int], color: tuple[int, ...]) -> None:
    x0, y0, x1, y1 = box
    cx, cy, w = (x0 + x1) / 2, (y0 + y1) / 2, max(2, (x1 - x0) // 5)
    if shape == "circle":
        draw.ellipse(box, fill=color)
    elif shape == "square":
        draw.rectangle(box, fill=color)
    elif shape == "triangle":
        draw.polygon([(cx, y0), (x1, y1), (x0, y1)], fill=color)
    elif shape == "cross":
        draw.rectangle((cx - w / 2, y0, cx + w / 2, y1), fill=color)
        draw.rectangle((x0, cy - w / 2, x1, cy + w / 2), fill=color)
    elif shape == "hbar":
        draw.rectangle((x0, cy - w, x1, cy + w), fill=color)
    elif shape == "vbar":
        draw.rectangle((cx - w, y0, cx + w, y1), fill=color)
    elif shape == "ring":
        draw.ellipse(box, outline=color, width=w)
    elif shape == "diamond":
        draw.polygon([(cx, y0), (x1, cy), (cx, y1), (x0, cy)], fill=color)


def synthetic(classes: int = 4, n: int = 400, size: int = 32, seed: int = 0, clutter: int = 0
              ) -> tuple[np.ndarray, list[int], list[str]]:
    """``n`` RGB images (N, size, size, 3) of ``classes`` shapes at random places, sizes and colours.

    ``clutter=K`` draws ``K`` distractor shapes of any class, each under a fifth of the image
    wide, then the labelled shape on top at a quarter to half of it, so the label is the
    largest shape (strictly, from 12 px up): the task of cluttered MNIST (Mnih et al. 2014,
    "Recurrent Models of Visual Attention"), small objects among look-alike fragments. It
    is a harder set on which compressed models separate; every image is drawn
    independently, so no two images share a source and a seeded split cannot leak.
    """
    if not 2 <= classes <= len(SHAPES):
        raise ValueError(f"synthetic supports 2..{len(SHAPES)} classes")
    if clutter < 0:
        raise ValueError(f"clutter must be a count of distractors >= 0, got {clutter}")
    rng = np.random.default_rng(seed)
    images = np.empty((n, size, size, 3), np.uint8)
    targets = [i % classes for i in range(n)]
    low, high = (size // 4, size // 2) if clutter else (size // 3, size * 3 // 4)
    for i, t in enumerate(targets):
        bg = rng.integers(0, 90, size=3)
        noise = rng.integers(0, 40, size=(size, size, 3))
        img = Image.fromarray(np.clip(bg + noise, 0, 255).astype(np.uint8))
        draw = ImageDraw.Draw(img)
        for _ in range(clutter):
            d = int(rng.integers(max(2, size // 8), max(3, size // 5)))
            dx, dy = (int(v) for v in rng.integers(0, size - d, size=2))
            _draw(draw, SHAPES[int(rng.integers(0, len(SHAPES)))], (dx, dy, dx + d, dy + d),
                  tuple(int(c) for c in rng.integers(100, 256, size=3)))
        s = int(rng.integers(low, high))
        x0, y0 = (int(v) for v in rng.integers(0, size - s, size=2))
        color = tuple(int(c) for c in rng.integers(140, 256, size=3))
        _draw(draw, SHAPES[t], (x0, y0, x0 + s, y0 + s), color)
        images[i] = np.asarray(img)
    return images, targets, list(SHAPES[:classes])
