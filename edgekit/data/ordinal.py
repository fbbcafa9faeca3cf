"""``ordinal``: a seeded image set whose target is a continuous visual property.

Label-distribution learning (Gao et al., "Learning Expectation of Label Distribution for
Facial Age and Attractiveness Estimation", 2020) is about targets that are ordered,
continuous and noisily annotated: apparent age is the mean of several people's guesses,
and ChaLearn ships the standard deviation of those guesses with every image. Tests and
benchmarks need such data without a face set on disk, so this module renders it:

* each image holds one **main disk** whose radius is linear in the true value
  ``t`` in ``[lo, hi]`` (default 0..100, an "age"), among cluttered distractors (small
  squares, thin bars, thin rings) on a noisy background of random colour;
* the property is **invariant to a horizontal flip** (a mirrored disk has the same
  radius), as age is, so evaluation may average an image and its flip;
* every sample carries its own **sigma**, uniform in 1..4 units of a 0..100 range
  (scaled to ``hi - lo``), and the recorded **label** is ``t`` plus Gaussian noise of
  that sigma, clipped to the range: the mean of the annotators' votes, not the truth.
  Harder images (more pixel noise) get the larger sigmas, as annotators disagree more
  on them;
* rendering is vectorised with NumPy and anti-aliased (sub-pixel radii are visible), so
  thousands of 64 px images take about a second, and a small CNN learns the radius on
  CPU in seconds.

Everything is a pure function of ``seed``. :func:`label_range` suggests the discrete
label set ``lo:hi:step`` a label-distribution head would use for labels in a range.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: radius of the main disk as a fraction of the image side, at ``lo`` and at ``hi``
RADIUS = (0.10, 0.32)
#: per-sample annotation sigma, in units of a 0..100 range
SIGMA = (1.0, 4.0)
#: distractors per image (inclusive bounds)
DISTRACTORS = (3, 6)
_CHUNK = 256


@dataclass(frozen=True)
class OrdinalSet:
    """Rendered images and their targets (all arrays of length ``n``)."""

    images: np.ndarray   # uint8 (n, size, size, 3)
    labels: np.ndarray   # recorded label: truth + N(0, sigma), clipped to [lo, hi]
    sigmas: np.ndarray   # per-sample annotation sigma (> 0), in label units
    truth: np.ndarray    # the value the disk's radius encodes
    radius: np.ndarray   # the disk's radius in pixels
    lo: float
    hi: float

    @property
    def targets(self) -> list[tuple[float, float]]:
        """``(label, sigma)`` pairs, the targets of a ``label_distribution`` bundle."""
        return [(float(y), float(s)) for y, s in zip(self.labels, self.sigmas)]


def ordinal(n: int = 2000, size: int = 64, seed: int = 0, lo: float = 0.0, hi: float = 100.0,
            clutter: bool = True) -> OrdinalSet:
    """Render ``n`` RGB ``size`` x ``size`` images (see the module docstring).

    ``clutter=False`` draws the disk alone on a flat background (no distractors, no pixel
    noise): the same labels, for measuring the property from the pixels.
    """
    if n < 1:
        raise ValueError(f"n must be a positive integer, got {n}")
    if size < 16:
        raise ValueError(f"size must be at least 16 pixels, got {size}")
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"need finite lo < hi, got lo={lo}, hi={hi}")
    rng = np.random.default_rng(seed)
    u = rng.uniform(0.0, 1.0, n)
    truth = lo + u * (hi - lo)
    sigma_units = rng.uniform(*SIGMA, n)
    sigmas = sigma_units * (hi - lo) / 100.0
    labels = np.clip(truth + rng.normal(0.0, 1.0, n) * sigmas, lo, hi)
    radius = size * (RADIUS[0] + u * (RADIUS[1] - RADIUS[0]))
    # noise grows with sigma: 12 grey levels at the easiest, 36 at the hardest
    noise = 12.0 + 24.0 * (sigma_units - SIGMA[0]) / (SIGMA[1] - SIGMA[0])
    images = np.empty((n, size, size, 3), np.uint8)
    for start in range(0, n, _CHUNK):
        stop = min(n, start + _CHUNK)
        images[start:stop] = _render(rng, size, radius[start:stop], noise[start:stop] if clutter else None)
    return OrdinalSet(images, labels, sigmas, truth, radius, float(lo), float(hi))


def _render(rng: np.random.Generator, size: int, radius: np.ndarray, noise: np.ndarray | None) -> np.ndarray:
    """One chunk: background, distractors (when ``noise`` is given), the disk, pixel noise."""
    b = len(radius)
    grid = np.arange(size, dtype=np.float32) + 0.5  # pixel centres
    xx, yy = grid[None, None, :], grid[None, :, None]
    canvas = np.broadcast_to(rng.uniform(0, 80, (b, 1, 1, 3)).astype(np.float32), (b, size, size, 3)).copy()

    def paint(alpha: np.ndarray, colour: np.ndarray) -> None:
        diff = colour[:, None, None, :] - canvas
        diff *= alpha[..., None]
        np.add(canvas, diff, out=canvas)

    def column(v: np.ndarray) -> np.ndarray:
        return v.astype(np.float32)[:, None, None]

    if noise is not None:
        count = rng.integers(DISTRACTORS[0], DISTRACTORS[1] + 1, b)
        for k in range(DISTRACTORS[1]):
            kind = rng.integers(0, 3, b)
            cx, cy = (column(rng.uniform(0.05, 0.95, b) * size) for _ in range(2))
            extent = column(rng.uniform(0.03, 0.08, b) * size)    # half side / ring radius
            length = column(rng.uniform(0.10, 0.22, b) * size)    # half length of a bar
            thick = column(rng.uniform(0.5, 1.0, b) + size / 64)   # half width of a bar / ring
            vertical = column(rng.integers(0, 2, b).astype(bool))
            square = _box(xx - cx, yy - cy, extent, extent)
            bar = np.where(vertical, _box(xx - cx, yy - cy, thick, length), _box(xx - cx, yy - cy, length, thick))
            ring = np.clip(thick - np.abs(np.hypot(xx - cx, yy - cy) - 1.6 * extent) + 0.5, 0, 1)
            alpha = np.select([column(kind) == 0, column(kind) == 1], [square, bar], ring)
            alpha *= column(k < count)
            paint(alpha, rng.uniform(100, 256, (b, 3)).astype(np.float32))
    r = column(radius)
    cx, cy = (column(rng.uniform(0, 1, b) * (size - 2 * radius - 2) + radius + 1) for _ in range(2))
    paint(np.clip(r - np.hypot(xx - cx, yy - cy) + 0.5, 0, 1), rng.uniform(140, 256, (b, 3)).astype(np.float32))
    if noise is not None:
        canvas += rng.standard_normal(canvas.shape, dtype=np.float32) * column(noise)[..., None]
    return np.clip(canvas, 0, 255).round().astype(np.uint8)


def _box(dx: np.ndarray, dy: np.ndarray, half_w: np.ndarray, half_h: np.ndarray) -> np.ndarray:
    """Anti-aliased coverage of an axis-aligned box centred at offset (0, 0)."""
    return np.clip(half_w - np.abs(dx) + 0.5, 0, 1) * np.clip(half_h - np.abs(dy) + 0.5, 0, 1)


def label_range(lo: float, hi: float, integer: bool = False) -> str:
    """A discrete label set ``lo:hi:step`` covering ``[lo, hi]``, as a default for a head.

    ``integer`` labels (ages given in whole years) get step 1 and ends ``floor(lo)``,
    ``ceil(hi)``. Continuous labels get the power of ten nearest to a 50th of the span
    (0..100 -> ``0:100:1``, attractiveness 1..5 -> ``1.0:5.0:0.1``), ends widened to
    multiples of it.
    """
    span = hi - lo
    exponent = 0 if integer or span <= 0 else round(math.log10(span / 50))
    step = 10.0 ** exponent
    digits = max(0, -exponent)
    start = math.floor(round(lo / step, 6)) * step
    stop = math.ceil(round(hi / step, 6)) * step
    if stop <= start:
        stop = start + step
    return f"{start:.{digits}f}:{stop:.{digits}f}:{step:.{digits}f}"
