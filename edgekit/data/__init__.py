"""Datasets by spec string, the same in every command.

=========================  ===================================================
``digits``                 scikit-learn's real 8x8 digits (10 classes)
``synthetic[:k=v,...]``    generated shapes; options classes, n, size, gen_seed,
                           clutter (distractors; the label is the largest)
``ordinal[:k=v,...]``      generated ordinal images (a disk's size as the label,
                           per-sample sigma); options n, size, gen_seed, lo, hi
``imagefolder:PATH``       a folder per class; ``train/`` + ``val/`` if present
``csv:PATH``               ``path,label[,sigma][,split]`` rows (``target`` also
                           names the label column): regression, or
                           label_distribution when sigma is given
``tabular:PATH.csv``       feature columns + a class column (``?target=COL``)
``sklearn:NAME``           scikit-learn's shipped tables: breast_cancer, wine,
                           iris, digits (64 features)
``gestures[:k=v,...]``     generated gesture clips whose classes need temporal
                           order (task ``clip_classify``); options classes
                           (a count or names joined by ``+``), n, size, frames
                           (stored per clip), gen_seed
``jester:PATH``            20BN-Jester v1 frame folders and CSVs (their split)
``videofolder:PATH``       a folder per class of video files (mp4, avi, webm;
                           PyAV); ``train/`` + ``val/`` if present
=========================  ===================================================

Clip sources (task ``clip_classify``) yield lazy clips that the clip transform samples to
``(T, C, H, W)`` tensors; ``T`` is the input spec's ``frames`` (see :mod:`edgekit.data.clips`).

Tabular samples are float32 feature vectors; the bundle's ``input_spec`` (kind
``tabular``) carries the feature names and the training split's standardisation (see
:mod:`edgekit.data.tabular`).

Every spec takes ``val=FRACTION`` and ``seed=N`` options after a ``?`` for
folder-like sources (``imagefolder:data/?val=0.1``) or after ``:`` for built-ins
(``digits:val=0.25``). Splits are seeded and stratified. The split is a property of a
checkpoint: training records the spec, fraction and seed it used (:attr:`DataBundle.record`),
and every later stage opens the data through :meth:`edgekit.checkpoint.Checkpoint.load_data`,
which reuses them, so evaluation, parity, calibration and accuracy never score images the
model was trained on. Options written in a spec still win.
"""
from __future__ import annotations

import csv as _csv
import logging
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
from torch.utils.data import DataLoader, Dataset

from ..errors import EdgekitError
from ..numbers import non_negative_float, non_negative_int, positive_int
from ..tasks import get_task
from . import builtin, gestures, tabular
from .clips import DEFAULT_FRAMES, ArrayClips, open_videofolder, with_frames
from .datasets import (IMAGE_EXTENSIONS, ArrayImages, ImageList, Subset, Transformed, readable_images,
                       seeded_split)
from .folders import files_by_class, open_class_folders
from .ordinal import label_range
from .transforms import eval_transform, make_input_spec, train_transform

log = logging.getLogger("edgekit.data")

__all__ = ["DataBundle", "load_data", "parse_spec", "make_input_spec", "eval_transform",
           "train_transform", "with_frames"]


@dataclass
class DataBundle:
    """Train and validation splits of one source, with what a checkpoint needs to know about it."""

    spec: str
    train: Dataset
    val: Dataset
    labels: list[str]
    task: str = "classify"
    default_input: int = 32
    skipped: int = 0
    info: dict[str, Any] = field(default_factory=dict)
    split: dict[str, Any] = field(default_factory=dict)
    #: the input spec the data itself fixes (tabular features); ``None`` for images, whose
    #: spec the trainer chooses (input size)
    input_spec: dict[str, Any] | None = None

    @property
    def record(self) -> dict[str, Any]:
        """What a checkpoint stores about its data: ``{"spec", "val", "seed"}`` (``folders``
        instead of val/seed when the source has its own train/val or split column)."""
        return {"spec": self.spec, **self.split}

    def subset_train(self, fraction: float, seed: int = 0) -> "DataBundle":
        """The same bundle with only ``fraction`` of the training split (stratified, seeded)."""
        if not 0 < fraction <= 1:
            raise EdgekitError(f"training fraction must be in (0, 1], got {fraction}")
        if fraction == 1:
            return self
        targets = self.train.targets  # type: ignore[attr-defined]
        _, keep = seeded_split(len(targets), fraction, seed, targets if get_task(self.task).class_labels else None)
        return replace(self, train=Subset(self.train, keep), info={**self.info, "train_fraction": fraction})

    def loader(self, split: str, transform: Callable, batch_size: int, shuffle: bool = False,
               workers: int = 0, sampler: Any = None, drop_last: bool = False) -> DataLoader:
        """A DataLoader over ``split`` ('train' or 'val') with ``transform`` applied."""
        base = {"train": self.train, "val": self.val}[split]
        return DataLoader(Transformed(base, transform, get_task(self.task).target_transform()), batch_size=batch_size,
                          shuffle=shuffle and sampler is None, sampler=sampler, num_workers=workers,
                          drop_last=drop_last, persistent_workers=workers > 0)


def parse_spec(spec: str) -> tuple[str, str, dict[str, str]]:
    """``kind:rest?k=v&k=v`` or ``kind:k=v,k=v`` -> (kind, path, options)."""
    if not spec or not isinstance(spec, str):
        raise EdgekitError("empty data spec; use digits, synthetic, imagefolder:PATH or csv:PATH")
    kind, _, rest = spec.partition(":")
    opts: dict[str, str] = {}
    path = rest
    if kind in ("digits", "synthetic", "ordinal", "gestures"):
        path, option_text = "", rest
    else:
        path, _, option_text = rest.partition("?")
    for item in filter(None, option_text.replace("&", ",").split(",")):
        key, eq, value = item.partition("=")
        if not eq:
            raise EdgekitError(f"malformed option {item!r} in data spec {spec!r}; expected key=value")
        opts[key.strip()] = value.strip()
    return kind, path, opts


DEFAULT_VAL = 0.2


def load_data(spec: str, seed: int | None = None, val: float | None = None) -> DataBundle:
    """Open the dataset named by ``spec`` and split it (see module docstring).

    ``seed`` and ``val`` are the split's defaults (seed 0, 20 % validation); ``seed=`` and
    ``val=`` options written in the spec win over them.
    """
    kind, path, opts = parse_spec(spec)
    try:
        val = float(opts.pop("val", DEFAULT_VAL if val is None else val))
        split_seed = int(opts.pop("seed", seed if seed is not None else 0))
        if not 0 < val < 1:  # NaN fails too
            raise ValueError(f"val must be a fraction in (0, 1), got {val}")
        if kind == "digits":
            bundle = _arrays(spec, *builtin.digits(), val, split_seed, default_input=32)
        elif kind == "synthetic":
            size = int(opts.pop("size", 32))
            images, targets, labels = builtin.synthetic(int(opts.pop("classes", 4)), int(opts.pop("n", 400)),
                                                        size, int(opts.pop("gen_seed", 0)),
                                                        non_negative_int(f"clutter in {spec!r}", opts.pop("clutter", 0)))
            bundle = _arrays(spec, images, targets, labels, val, split_seed, default_input=size)
        elif kind == "ordinal":
            bundle = _ordinal(spec, opts, val, split_seed)
        elif kind == "gestures":
            bundle = _gestures(spec, opts, val, split_seed)
        elif kind == "jester":
            from .jester import open_jester

            train, valid, labels, skipped, record, info = open_jester(Path(path))
            bundle = DataBundle(spec, train, valid, labels, "clip_classify", CLIP_INPUT, skipped,
                                info={**info, "frames": DEFAULT_FRAMES}, split=record)
        elif kind == "videofolder":
            train, valid, labels, skipped, record = open_videofolder(Path(path), val, split_seed)
            bundle = DataBundle(spec, train, valid, labels, "clip_classify", CLIP_INPUT, skipped,
                                info={"frames": DEFAULT_FRAMES}, split=record)
        elif kind == "imagefolder":
            bundle = _imagefolder(spec, Path(path), val, split_seed)
        elif kind == "csv":
            bundle = _csv_regression(spec, Path(path), val, split_seed)
        elif kind == "tabular":
            train, valid, labels, in_spec, info, record = tabular.open_csv(
                Path(path), opts.pop("target", None), opts.pop("encode", "onehot"), val, split_seed)
            bundle = DataBundle(spec, train, valid, labels, "classify", in_spec["shape"][0], info=info,
                                split=record, input_spec=in_spec)
        elif kind == "sklearn":
            train, valid, labels, in_spec, info = tabular.open_sklearn(path, val, split_seed)
            bundle = DataBundle(spec, train, valid, labels, "classify", in_spec["shape"][0], info=info,
                                input_spec=in_spec)
        else:
            raise EdgekitError(f"unknown data source {kind!r} in {spec!r}; "
                               "use digits, synthetic, ordinal, gestures, imagefolder:PATH, csv:PATH, "
                               "tabular:PATH.csv, sklearn:NAME, jester:PATH or videofolder:PATH")
    except ValueError as exc:
        raise EdgekitError(f"bad option in data spec {spec!r}: {exc}") from exc
    if opts:
        raise EdgekitError(f"unknown option(s) {', '.join(sorted(opts))} in data spec {spec!r}")
    if len(bundle.train) == 0 or len(bundle.val) == 0:
        raise EdgekitError(f"data spec {spec!r} gives an empty train or validation split")
    if not bundle.split:
        bundle.split = {"val": val, "seed": split_seed}
    return bundle


def _arrays(spec: str, images: np.ndarray, targets: list[int], labels: list[str], val: float, seed: int,
            default_input: int) -> DataBundle:
    base = ArrayImages(images, targets)
    tr, va = seeded_split(len(base), val, seed, targets)
    return DataBundle(spec, Subset(base, tr), Subset(base, va), labels, "classify", default_input)


def _class_folder(root: Path) -> tuple[list[Path], list[int], list[str], int]:
    files, targets, classes = files_by_class(root, IMAGE_EXTENSIONS, "image")
    good, bad = readable_images(files)
    good_set = set(good)
    keep = [(f, t) for f, t in zip(files, targets) if f in good_set]
    return [f for f, _ in keep], [t for _, t in keep], classes, len(bad)


def _imagefolder(spec: str, root: Path, val: float, seed: int) -> DataBundle:
    train, valid, labels, skipped, split = open_class_folders(root, _class_folder, ImageList, val, seed, "image")
    return DataBundle(spec, train, valid, labels, "classify", 224, skipped, split=split)


def _ordinal(spec: str, opts: dict[str, str], val: float, seed: int) -> DataBundle:
    """The built-in ordinal images (:mod:`edgekit.data.ordinal`) as a label-distribution bundle:
    targets ``(label, sigma)``, a suggested label set and the flip invariance recorded in ``info``."""
    size = positive_int(f"size in {spec!r}", opts.pop("size", 64))
    data = builtin.ordinal(positive_int(f"n in {spec!r}", opts.pop("n", 2000)), size,
                           non_negative_int(f"gen_seed in {spec!r}", opts.pop("gen_seed", 0)),
                           float(opts.pop("lo", 0.0)), float(opts.pop("hi", 100.0)))
    base = ArrayImages(data.images, data.targets)
    tr, va = seeded_split(len(base), val, seed)  # continuous targets: no stratification
    info = {"label_range": label_range(data.lo, data.hi), "flip_invariant": True}
    return DataBundle(spec, Subset(base, tr), Subset(base, va), [], "label_distribution", size, info=info)


#: the suggested input size of clips from disk (Jester's frames are 100 px high)
CLIP_INPUT = 112


def _gestures(spec: str, opts: dict[str, str], val: float, seed: int) -> DataBundle:
    """The built-in gesture clips (:mod:`edgekit.data.gestures`) as a ``clip_classify``
    bundle; ``info["clip_length"]`` is the stored frames per clip, ``info["frames"]`` the
    suggested number sampled per clip."""
    size = positive_int(f"size in {spec!r}", opts.pop("size", 32))
    length = positive_int(f"frames in {spec!r}", opts.pop("frames", 16))
    data = gestures.gestures(opts.pop("classes", None), positive_int(f"n in {spec!r}", opts.pop("n", 2200)), size,
                             length, non_negative_int(f"gen_seed in {spec!r}", opts.pop("gen_seed", 0)))
    base = ArrayClips(data.clips, data.targets)
    tr, va = seeded_split(len(base), val, seed, data.targets)
    return DataBundle(spec, Subset(base, tr), Subset(base, va), data.labels, "clip_classify", size,
                      info={"clip_length": length, "frames": min(DEFAULT_FRAMES, length), "pairs": [
                          list(p) for p in gestures.PAIRS if set(p) <= set(data.labels)]})


CSV_SPLITS = ("", "train", "val")


def _csv_regression(spec: str, path: Path, val: float, seed: int) -> DataBundle:
    """``csv:PATH``: a ``path`` column, the label in ``label`` (or ``target``), optional
    per-sample ``sigma`` (finite, >= 0: the annotators' spread) and ``split`` (train/val).

    With sigma the task is ``label_distribution`` and targets are ``(label, sigma)``, else
    ``regression`` with a float target. ``info["label_range"]`` suggests a label set covering
    the labels (see :func:`edgekit.data.ordinal.label_range`)."""
    if not path.is_file():
        raise EdgekitError(f"CSV file not found: {path}")
    with open(path, newline="") as fh:
        reader = _csv.DictReader(fh)
        reader.fieldnames = [c.strip() for c in reader.fieldnames or []]
        columns, rows = reader.fieldnames, list(reader)
    label_cols = [c for c in ("label", "target") if c in columns]
    if "path" not in columns or not label_cols:
        raise EdgekitError(f"{path} needs a header with a 'path' column and a 'label' (or 'target') column; "
                           f"it has {', '.join(columns) or 'none'}")
    if len(label_cols) > 1:
        raise EdgekitError(f"{path} has both 'label' and 'target' columns; keep the one holding the label")
    label_col, has_sigma = label_cols[0], "sigma" in columns
    files, targets, splits = [], [], []
    for n, row in enumerate(rows, start=2):
        raw = row[label_col]
        try:
            y = float(raw)
        except (TypeError, ValueError):
            raise EdgekitError(f"{path}:{n}: {label_col} is not a number: {raw!r}") from None
        if not math.isfinite(y):
            raise EdgekitError(f"{path}:{n}: {label_col} must be a finite number, got {raw!r}")
        target = (y, non_negative_float(f"{path}:{n}: sigma", row["sigma"])) if has_sigma else y
        split = (row.get("split") or "").strip().lower()
        if split not in CSV_SPLITS:
            raise EdgekitError(f"{path}:{n}: split must be train or val (or empty), got {row['split']!r}")
        files.append((path.parent / (row["path"] or "").strip()).resolve())
        targets.append(target)
        splits.append(split)
    if not files:
        raise EdgekitError(f"{path} lists no images")
    good, bad = readable_images(files)
    good_set = set(good)
    keep = [i for i, f in enumerate(files) if f in good_set]
    if not keep:
        raise EdgekitError(f"no readable images listed in {path}")
    base = ImageList([files[i] for i in keep], [targets[i] for i in keep])
    kept_splits = [splits[i] for i in keep]
    if any(kept_splits):
        tr = [i for i, s in enumerate(kept_splits) if s != "val"]
        va = [i for i, s in enumerate(kept_splits) if s == "val"]
        split_record = {"folders": True}
    else:
        split_record = {}
        tr, va = seeded_split(len(base), val, seed)
    labels = [t[0] if has_sigma else t for t in base.targets]
    task = "label_distribution" if has_sigma else "regression"
    return DataBundle(spec, Subset(base, tr), Subset(base, va), [], task, 224, len(bad), split=split_record,
                      info={"label_range": label_range(min(labels), max(labels),
                                                       integer=all(float(y).is_integer() for y in labels))})
