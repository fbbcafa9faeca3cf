"""The labelled part of a training split: a stratified, seeded fraction of its samples.

``edgekit train --labeled-fraction F`` trains on the labels of a fraction ``F`` of the
training split (the small-data setting of semi-supervised and self-supervised learning: S3L,
arXiv 2103.13559, fine-tunes on 1 % and 10 % of the labels). The fraction and its seed are
recorded in the checkpoint's data record (:attr:`edgekit.data.DataBundle.record`), so every
later stage opening the data through :meth:`edgekit.checkpoint.Checkpoint.load_data` sees the
same labelled samples; the rest of the training split is the unlabelled pool a
semi-supervised trainer draws from. The validation split is never touched.

Per class (classification targets) ``round(n_c * F)`` samples are drawn from a permutation
seeded by ``seed``: :func:`edgekit.data.datasets.seeded_split`'s draw of its held-out part, so a
fraction selects the samples ``DataBundle.subset_train`` (prune's ``--train-fraction``) selects.
A fraction that leaves a class without one labelled sample is refused, naming the class and the
smallest fraction that labels every class (``seeded_split`` would keep one anyway, and the
fraction would not be the share trained on); numeric targets (regression) are drawn unstratified.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from ..errors import EdgekitError
from ..numbers import fraction as check_fraction
from .datasets import seeded_split

#: significant digits of the smallest working fraction a refusal suggests
SUGGEST_DIGITS = 3


def labeled_indices(targets: Sequence[Any], fraction: float, seed: int, *, stratify: bool = True,
                    labels: Sequence[str] = (), what: str = "labeled fraction") -> tuple[list[int], list[int]]:
    """``(labelled, unlabelled)`` positions into ``targets`` (both sorted; together all of them).

    ``fraction`` must be in (0, 1] (0, negative, NaN and above 1 are one line); at 1 every sample
    is labelled. ``stratify`` draws per class when the targets are class indices (``labels``
    name them in a refusal; ``what`` names the fraction)."""
    fraction = check_fraction(what, fraction)
    n = len(targets)
    if n == 0:
        raise EdgekitError(f"{what} {fraction:g} of an empty training split")
    if fraction == 1:
        return list(range(n)), []
    stratified = stratify and all(isinstance(t, (int, np.integer)) for t in targets)
    classes, sizes = np.unique(np.asarray(targets, dtype=np.int64), return_counts=True) if stratified else \
        (np.array([], dtype=np.int64), np.array([n]))
    # seeded_split keeps a class of one sample whole: only the whole split (F = 1) labels it
    if any(round(int(size) * fraction) == 0 or (stratified and size == 1) for size in sizes):
        # the smallest group is the one to name: the fraction that labels it labels every group
        size = int(sizes.min())
        least = 1.0 if stratified and size == 1 else smallest_fraction(size)
        short = (f"class {_name(int(classes[sizes.argmin()]), labels)!r} ({size} training sample{'s' * (size != 1)})"
                 if stratified else f"the training split ({size} sample{'s' * (size != 1)})")
        raise EdgekitError(f"{what} {fraction:g} leaves {short} without a labelled sample; the smallest "
                           f"fraction that labels {'every class' if stratified else 'one sample'} is "
                           f"{least:g}")
    # every group keeps round(n_c * F) >= 1 samples: exactly seeded_split's draw of its held-out part
    rest, keep = seeded_split(n, fraction, seed, targets if stratified else None)
    return keep, rest


def smallest_fraction(n: int) -> float:
    """The smallest fraction, to :data:`SUGGEST_DIGITS` significant digits, whose share of ``n``
    samples rounds to at least one (Python's ``round``: half to even, so 0.5 is not enough)."""
    x = 0.5 / n
    exponent = math.floor(math.log10(x)) - SUGGEST_DIGITS + 1
    mantissa = math.ceil(x / 10.0 ** exponent)
    while True:
        f = float(f"{mantissa}e{exponent}")  # a short decimal, exactly what the message prints
        if f >= 1 or round(n * f) >= 1:
            return min(1.0, f)
        mantissa += 1


def _name(index: int, labels: Sequence[str]) -> str:
    return str(labels[index]) if 0 <= index < len(labels) else str(index)
