"""One folder per class: the layout ``imagefolder:PATH`` and ``videofolder:PATH`` share.

``PATH/<class>/<file>`` with classes in sorted folder order; ``PATH/train`` and ``PATH/val``
(both present) are the source's own split, else the files are split seeded and stratified.
Unreadable files are dropped by the caller's scan and counted.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

from torch.utils.data import Dataset

from ..errors import EdgekitError
from .datasets import Subset, seeded_split

__all__ = ["files_by_class", "open_class_folders"]

#: scan(root) -> (items, targets, class names, unreadable count)
Scan = Callable[[Path], "tuple[list[Any], list[int], list[str], int]"]


def files_by_class(root: Path, extensions: Sequence[str], what: str) -> tuple[list[Path], list[int], list[str]]:
    """The files with ``extensions`` under each class folder of ``root``: (files, targets, classes)."""
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise EdgekitError(f"{root} has no class sub-folders (expected {root}/<class>/<{what}>)")
    files, targets = [], []
    for i, c in enumerate(classes):
        found = sorted(p for p in (root / c).rglob("*") if p.suffix.lower() in extensions)
        files += found
        targets += [i] * len(found)
    return files, targets, classes


def open_class_folders(root: Path, scan: Scan, make: Callable[[list[Any], list[int]], Dataset], val: float,
                       seed: int, what: str) -> tuple[Dataset, Dataset, list[str], int, dict[str, Any]]:
    """(train, val, labels, skipped, split record) of a class-folder tree of ``what`` files
    ("image", "video"); ``make(items, targets)`` builds the dataset of the scanned items."""
    if not root.is_dir():
        raise EdgekitError(f"{what} folder not found: {root}")
    if (root / "train").is_dir() and (root / "val").is_dir():
        tr_items, tr_t, labels, bad1 = scan(root / "train")
        va_items, va_t, va_labels, bad2 = scan(root / "val")
        if va_labels != labels:
            raise EdgekitError(f"{root}/train and {root}/val have different class folders")
        train, valid, skipped = make(tr_items, tr_t), make(va_items, va_t), bad1 + bad2
        record: dict[str, Any] = {"folders": True}
    else:
        items, targets, labels, skipped = scan(root)
        base = make(items, targets)
        tr, va = seeded_split(len(base), val, seed, targets)
        train, valid, record = Subset(base, tr), Subset(base, va), {}
    if len(train) == 0:
        raise EdgekitError(f"no readable {what}s under {root} ({skipped} unreadable)")
    return train, valid, labels, skipped, record
