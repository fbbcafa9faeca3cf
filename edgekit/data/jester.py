"""``jester:PATH``: the 20BN-Jester v1 gesture dataset as users download it.

Two layouts are read:

* **the original**: ``;``-separated CSVs without a header in ``PATH``:
  ``jester-v1-labels.csv`` (one class name per line, which fixes the label order),
  ``jester-v1-train.csv`` and ``jester-v1-validation.csv`` (``<video_id>;<Label Name>``;
  names contain spaces). The frames are ``<video_id>/00001.jpg ...`` in
  ``PATH/20bn-jester-v1`` or in ``PATH`` itself;
* **re-hosted copies**: ``Train.csv`` and ``Validation.csv`` with a header row naming an
  id column (``video_id`` or ``id``) and a label column (``label``), comma- or
  ``;``-separated. Label order: a ``label_id`` column if there is one, else
  ``jester-v1-labels.csv`` if present, else the names sorted. Frames are looked for in
  ``PATH/Train`` (``PATH/Validation``), ``PATH/20bn-jester-v1`` and ``PATH``.

The train/validation split is the CSVs' own (recorded as ``{"folders": True, "source_split":
"csv"}`` in the bundle's record, so a checkpoint reopens exactly the same split); the
unlabelled test list is not read. Listed videos whose frame folder is missing or empty are
skipped, counted and logged, like unreadable images.
"""
from __future__ import annotations

import csv
import logging
import os
from pathlib import Path
from typing import Any

from ..errors import EdgekitError
from .clips import ClipList, FrameFiles
from .datasets import IMAGE_EXTENSIONS

log = logging.getLogger("edgekit.data")

__all__ = ["open_jester"]

LABELS_FILE = "jester-v1-labels.csv"
SPLIT_FILES = ("jester-v1-train.csv", "jester-v1-validation.csv")
REHOSTED_FILES = ("Train.csv", "Validation.csv")
FRAMES_DIR = "20bn-jester-v1"
ID_COLUMNS = ("video_id", "id", "video")
LABEL_COLUMNS = ("label", "label_name", "gesture")


def _find(root: Path, name: str) -> Path | None:
    """``root/name``, matched case-insensitively (re-hosts vary the case)."""
    if (root / name).is_file():
        return root / name
    return next((p for p in root.iterdir() if p.is_file() and p.name.lower() == name.lower()), None)


def _read_labels(path: Path) -> list[str]:
    with open(path, newline="", encoding="utf-8") as fh:
        labels = [line.strip() for line in fh if line.strip()]
    if not labels:
        raise EdgekitError(f"{path} lists no class names")
    if len(set(labels)) != len(labels):
        raise EdgekitError(f"{path} lists a class name twice")
    return labels


def _read_plain(path: Path) -> list[tuple[str, str, int]]:
    """``id;Label Name`` rows without a header -> (id, label, line number)."""
    rows = []
    with open(path, newline="", encoding="utf-8") as fh:
        for n, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            vid, sep, label = line.rstrip("\r\n").partition(";")
            if not sep or not vid.strip() or not label.strip():
                raise EdgekitError(f"{path}:{n}: expected '<video_id>;<Label Name>', got {line.strip()!r}")
            rows.append((vid.strip(), label.strip(), n))
    return rows


def _read_headed(path: Path) -> tuple[list[tuple[str, str, int]], dict[str, int]]:
    """A re-hosted CSV with a header -> (rows (id, label, line), label -> label_id if given)."""
    with open(path, newline="", encoding="utf-8") as fh:
        text = fh.read()
    first = text.splitlines()[0] if text.strip() else ""
    delimiter = ";" if first.count(";") > first.count(",") else ("\t" if "\t" in first else ",")
    reader = csv.reader(text.splitlines(), delimiter=delimiter)
    header = [c.strip().lower() for c in next(reader, [])]
    id_col = next((header.index(c) for c in ID_COLUMNS if c in header), None)
    label_col = next((header.index(c) for c in LABEL_COLUMNS if c in header), None)
    if id_col is None or label_col is None:
        raise EdgekitError(f"{path} needs a header with an id column ({' or '.join(ID_COLUMNS[:2])}) and a "
                           f"'label' column; it has {', '.join(header) or 'none'}")
    label_id_col = header.index("label_id") if "label_id" in header else None
    rows, ids = [], {}
    for n, row in enumerate(reader, start=2):
        if not any(c.strip() for c in row):
            continue
        if len(row) <= max(id_col, label_col):
            raise EdgekitError(f"{path}:{n}: expected {len(header)} columns, got {len(row)}")
        vid, label = row[id_col].strip(), row[label_col].strip()
        rows.append((vid, label, n))
        if label_id_col is not None and len(row) > label_id_col:
            try:
                ids.setdefault(label, int(float(row[label_id_col])))
            except ValueError:
                raise EdgekitError(f"{path}:{n}: label_id is not a number: {row[label_id_col]!r}") from None
    return rows, ids


def _frames_root(candidates: list[Path], rows: list[tuple[str, str, int]], csv_path: Path) -> Path:
    """The first candidate folder that holds the frame folders of the CSV's first videos."""
    probe = [vid for vid, _, _ in rows[:20]]
    for root in candidates:
        if root.is_dir() and any((root / vid).is_dir() for vid in probe):
            return root
    raise EdgekitError(f"no frame folders for the videos in {csv_path.name} "
                       f"(looked in {', '.join(str(c) for c in candidates)})")


def _frame_files(folder: Path) -> list[Path]:
    try:
        with os.scandir(folder) as it:
            names = sorted(e.name for e in it if e.is_file() and os.path.splitext(e.name)[1].lower()
                           in IMAGE_EXTENSIONS)
    except OSError:
        return []
    return [folder / name for name in names]


def _clips(rows: list[tuple[str, str, int]], labels: list[str], frames_root: Path, csv_path: Path
           ) -> tuple[ClipList, list[str]]:
    index = {name: i for i, name in enumerate(labels)}
    clips, targets, missing = [], [], []
    for vid, label, n in rows:
        if label not in index:
            raise EdgekitError(f"{csv_path}:{n}: label {label!r} is not a known class "
                               f"({len(labels)} classes, e.g. {labels[0]!r})")
        files = _frame_files(frames_root / vid)
        if files:
            clips.append(FrameFiles(files))
            targets.append(index[label])
        else:
            missing.append(vid)
    return ClipList(clips, targets), missing


def open_jester(root: Path) -> tuple[ClipList, ClipList, list[str], int, dict[str, Any], dict[str, Any]]:
    """Open a Jester tree: (train, val, labels, skipped, split record, info)."""
    if not root.is_dir():
        raise EdgekitError(f"Jester folder not found: {root}")
    plain = [_find(root, name) for name in SPLIT_FILES]
    headed = [_find(root, name) for name in REHOSTED_FILES]
    labels_path = _find(root, LABELS_FILE)
    if all(plain):
        if labels_path is None:
            raise EdgekitError(f"{root} has {SPLIT_FILES[0]} but no {LABELS_FILE} (it fixes the class order)")
        labels = _read_labels(labels_path)
        rows = [_read_plain(p) for p in plain]  # type: ignore[arg-type]
        csvs = plain
    elif all(headed):
        parsed = [_read_headed(p) for p in headed]  # type: ignore[arg-type]
        rows = [r for r, _ in parsed]
        ids = {**parsed[1][1], **parsed[0][1]}
        if ids:
            if len(set(ids.values())) != len(ids):
                raise EdgekitError(f"{root}: label_id does not name each class once")
            labels = sorted(ids, key=ids.get)  # type: ignore[arg-type]
        elif labels_path is not None:
            labels = _read_labels(labels_path)
        else:
            labels = sorted({label for split in rows for _, label, _ in split})
        csvs = headed
    else:
        raise EdgekitError(f"no Jester annotations in {root}: expected {', '.join(SPLIT_FILES)} and "
                           f"{LABELS_FILE}, or {' and '.join(REHOSTED_FILES)}")
    splits, skipped = [], 0
    for split_rows, csv_path in zip(rows, csvs):
        if not split_rows:
            raise EdgekitError(f"{csv_path} lists no videos")
        own = [] if csvs is plain else [root / csv_path.stem, root / csv_path.stem.lower()]
        frames_root = _frames_root(own + [root / FRAMES_DIR, root], split_rows, csv_path)
        clips, missing = _clips(split_rows, labels, frames_root, csv_path)
        if missing:
            log.warning("skipped %d video(s) listed in %s with no frames, e.g. %s", len(missing), csv_path.name,
                        frames_root / missing[0])
        splits.append(clips)
        skipped += len(missing)
    train, valid = splits
    if len(train) == 0 or len(valid) == 0:
        raise EdgekitError(f"no frames found for the Jester videos under {root} ({skipped} listed videos missing)")
    record = {"folders": True, "source_split": "csv"}
    return train, valid, labels, skipped, record, {"layout": "jester-v1" if all(plain) else "rehosted"}
