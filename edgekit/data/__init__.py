"""Datasets by spec string, the same in every command.

Each scheme is a registered data source (:mod:`edgekit.data.sources`: its loader, kind, flip
invariance, default input size...); the built-in ones, registered below next to their loaders:

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
from functools import partial
from pathlib import Path
from typing import Any, Callable

import numpy as np
from torch.utils.data import DataLoader, Dataset

from ..errors import EdgekitError
from ..numbers import fraction as check_fraction
from ..numbers import non_negative_float, non_negative_int, positive_int
from ..tasks import get_task
from . import builtin, gestures, tabular
from .clips import DEFAULT_FRAMES, ArrayClips, open_videofolder, with_frames
from .datasets import (IMAGE_EXTENSIONS, ArrayImages, ImageList, Subset, Transformed, readable_images,
                       seeded_split)
from .folders import files_by_class, open_class_folders
from .jester import open_jester
from .labeled import labeled_indices
from .ordinal import label_range
from .sources import SOURCES, DataSource, SourceRequest, get_source, register_source, usages
from .transforms import eval_transform, make_input_spec, train_transform

log = logging.getLogger("edgekit.data")

__all__ = ["DataBundle", "DataSource", "SOURCES", "load_data", "load_recorded", "parse_spec", "register_source",
           "make_input_spec", "eval_transform", "train_transform", "with_frames"]


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
        instead of val/seed when the source has its own train/val or split column), plus
        ``labeled_fraction`` and ``labeled_seed`` when training saw only part of its labels
        (:meth:`labeled`). :func:`load_recorded` opens the same data from it."""
        return {"spec": self.spec, **self.split}

    @property
    def flip_invariant(self) -> bool:
        """Whether a horizontal mirror keeps the label (``info["flip_invariant"]``, set from the
        data source by :func:`load_data`; true when nothing says otherwise)."""
        return bool(self.info.get("flip_invariant", True))

    def labeled_split(self, fraction: float, seed: int = 0) -> tuple[Dataset, Dataset]:
        """``(labelled, unlabelled)``: a stratified, seeded ``fraction`` of the training split and
        the rest of it, the pool a semi-supervised trainer reads without its labels (see
        :mod:`edgekit.data.labeled`; a fraction leaving a class unlabelled is one line)."""
        keep, rest = labeled_indices(self.train.targets, fraction, seed,  # type: ignore[attr-defined]
                                     stratify=get_task(self.task).class_labels, labels=self.labels)
        return Subset(self.train, keep), Subset(self.train, rest)

    def labeled(self, fraction: float, seed: int = 0) -> "DataBundle":
        """This bundle training on the labelled part of its training split only, with ``fraction``
        and ``seed`` written into :attr:`record` (``labeled_fraction``, ``labeled_seed``), so that a
        checkpoint trained on it hands the same labelled samples to every later stage
        (:meth:`edgekit.checkpoint.Checkpoint.load_data`). At 1 it is the bundle itself, recording
        nothing; a bundle already reduced to its labelled part is not reduced again."""
        fraction = check_fraction("labeled fraction", fraction)
        if fraction == 1:
            return self
        if "labeled_fraction" in self.split:
            raise EdgekitError(f"{self.spec}: the training split is already the labelled fraction "
                               f"{self.split['labeled_fraction']:g} (seed {self.split.get('labeled_seed')}); "
                               "a labelled fraction is taken of the whole training split once")
        train, _ = self.labeled_split(fraction, seed)
        return replace(self, train=train, split={**self.split, "labeled_fraction": fraction, "labeled_seed": seed})

    def subset_train(self, fraction: float, seed: int = 0) -> "DataBundle":
        """The same bundle with only ``fraction`` of the training split (stratified, seeded; at least
        one sample of every class with two or more), its record unchanged: prune's
        ``--train-fraction``, a simulation of limited data on top of whatever the checkpoint trained
        on. The same draw as :meth:`labeled_split`; :meth:`labeled` is the recorded, strict form
        training uses."""
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
    """``kind:rest?k=v&k=v`` or ``kind:k=v,k=v`` -> (kind, path, options).

    The one check of a data spec every stage runs (through :func:`load_data`, or up front
    where the data is opened later, as bench's ``data``): the scheme must be a registered
    source (:mod:`edgekit.data.sources`), else one line lists them; whether the rest is a
    path is the source's."""
    if not spec or not isinstance(spec, str):
        raise EdgekitError(f"empty data spec; use {usages()}")
    kind, _, rest = spec.partition(":")
    opts: dict[str, str] = {}
    if get_source(kind, spec).path:
        path, _, option_text = rest.partition("?")
    else:
        path, option_text = "", rest
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
    ``val=`` options written in the spec win over them. The spec's scheme picks the
    registered source (:mod:`edgekit.data.sources`) that opens it; its flip invariance is
    recorded in ``info["flip_invariant"]`` unless the loader says otherwise.
    """
    kind, path, opts = parse_spec(spec)
    source = get_source(kind)
    try:
        val = float(opts.pop("val", DEFAULT_VAL if val is None else val))
        split_seed = int(opts.pop("seed", seed if seed is not None else 0))
        if not 0 < val < 1:  # NaN fails too
            raise ValueError(f"val must be a fraction in (0, 1), got {val}")
        make = partial(DataBundle, spec, default_input=source.default_input or 0)
        bundle = source.load(SourceRequest(spec, path, opts, val, split_seed, make))
    except ValueError as exc:
        raise EdgekitError(f"bad option in data spec {spec!r}: {exc}") from exc
    if opts:
        raise EdgekitError(f"unknown option(s) {', '.join(sorted(opts))} in data spec {spec!r}")
    if len(bundle.train) == 0 or len(bundle.val) == 0:
        raise EdgekitError(f"data spec {spec!r} gives an empty train or validation split")
    if not bundle.split:
        bundle.split = {"val": val, "seed": split_seed}
    bundle.info.setdefault("flip_invariant", source.flip_invariant)
    return bundle


def load_recorded(record: dict[str, Any], spec: str | None = None) -> DataBundle:
    """The data a checkpoint's data record (:attr:`DataBundle.record`) describes, split as its
    training split it: ``spec`` (default: the recorded one) opened with the recorded validation
    fraction and split seed (``seed=``/``val=`` written in the spec win), its training split then
    reduced to the recorded labelled fraction (:meth:`DataBundle.labeled`), the validation split
    untouched. The labelled fraction holds for a ``spec`` other than the recorded one too: a model
    trained on part of the labels keeps to that share in every later stage."""
    spec = spec or record.get("spec")
    if not spec:
        raise EdgekitError("this checkpoint records no dataset; pass a data spec (e.g. --data digits or "
                           "imagefolder:PATH)")
    bundle = load_data(spec, seed=record.get("seed"), val=record.get("val"))
    if record.get("labeled_fraction") is not None:
        bundle = bundle.labeled(record["labeled_fraction"], int(record.get("labeled_seed") or 0))
    return bundle


# ---------------------------------------------------------------- the built-in sources, registered
# Each loader takes a :class:`~edgekit.data.sources.SourceRequest` and returns ``req.bundle(...)``
# (the source's default input size unless it passes one); its registration follows it.

def _arrays(req: SourceRequest, images: np.ndarray, targets: list[int], labels: list[str],
            **kw: Any) -> DataBundle:
    base = ArrayImages(images, targets)
    tr, va = seeded_split(len(base), req.val, req.seed, targets)
    return req.bundle(Subset(base, tr), Subset(base, va), labels, task="classify", **kw)


def _digits(req: SourceRequest) -> DataBundle:
    return _arrays(req, *builtin.digits())


register_source(DataSource("digits", _digits, kind="images", default_input=32, flip_invariant=False, expansion="digits",
                           help="scikit-learn's real 8x8 digits (10 classes; a mirrored digit is none)"))


def _synthetic(req: SourceRequest) -> DataBundle:
    spec, opts = req.spec, req.options
    size = int(opts.pop("size", 32))
    images, targets, labels = builtin.synthetic(int(opts.pop("classes", 4)), int(opts.pop("n", 400)),
                                                size, int(opts.pop("gen_seed", 0)),
                                                non_negative_int(f"clutter in {spec!r}", opts.pop("clutter", 0)))
    return _arrays(req, images, targets, labels, default_input=size)


register_source(DataSource("synthetic", _synthetic, kind="images", default_input=32, expansion="shapes",
                           usage="synthetic[:k=v,...]",
                           help="generated shapes (options classes, n, size, gen_seed, clutter)"))


def _class_folder(root: Path) -> tuple[list[Path], list[int], list[str], int]:
    files, targets, classes = files_by_class(root, IMAGE_EXTENSIONS, "image")
    good, bad = readable_images(files)
    good_set = set(good)
    keep = [(f, t) for f, t in zip(files, targets) if f in good_set]
    return [f for f, _ in keep], [t for _, t in keep], classes, len(bad)


def _imagefolder(req: SourceRequest) -> DataBundle:
    train, valid, labels, skipped, split = open_class_folders(Path(req.path), _class_folder, ImageList, req.val,
                                                              req.seed, "image")
    return req.bundle(train, valid, labels, task="classify", skipped=skipped, split=split)


register_source(DataSource("imagefolder", _imagefolder, kind="images", path=True,
                           help="a folder per class; train/ + val/ if present"))


def _ordinal(req: SourceRequest) -> DataBundle:
    """The built-in ordinal images (:mod:`edgekit.data.ordinal`) as a label-distribution bundle:
    targets ``(label, sigma)``, a suggested label set and the flip invariance recorded in ``info``."""
    spec, opts, val, seed = req.spec, req.options, req.val, req.seed
    size = positive_int(f"size in {spec!r}", opts.pop("size", 64))
    data = builtin.ordinal(positive_int(f"n in {spec!r}", opts.pop("n", 2000)), size,
                           non_negative_int(f"gen_seed in {spec!r}", opts.pop("gen_seed", 0)),
                           float(opts.pop("lo", 0.0)), float(opts.pop("hi", 100.0)))
    base = ArrayImages(data.images, data.targets)
    tr, va = seeded_split(len(base), val, seed)  # continuous targets: no stratification
    info = {"label_range": label_range(data.lo, data.hi), "flip_invariant": True}
    return req.bundle(Subset(base, tr), Subset(base, va), [], task="label_distribution", default_input=size,
                      info=info)


register_source(DataSource("ordinal", _ordinal, kind="images", default_input=64, labels=False, expansion="ordinal",
                           usage="ordinal[:k=v,...]", help="generated ordinal images, a disk's size as the label "
                           "(options n, size, gen_seed, lo, hi)"))


#: the suggested input size of clips from disk (Jester's frames are 100 px high)
CLIP_INPUT = 112


def _gestures(req: SourceRequest) -> DataBundle:
    """The built-in gesture clips (:mod:`edgekit.data.gestures`) as a ``clip_classify``
    bundle; ``info["clip_length"]`` is the stored frames per clip, ``info["frames"]`` the
    suggested number sampled per clip."""
    spec, opts, val, seed = req.spec, req.options, req.val, req.seed
    size = positive_int(f"size in {spec!r}", opts.pop("size", 32))
    length = positive_int(f"frames in {spec!r}", opts.pop("frames", 16))
    data = gestures.gestures(opts.pop("classes", None), positive_int(f"n in {spec!r}", opts.pop("n", 2200)), size,
                             length, non_negative_int(f"gen_seed in {spec!r}", opts.pop("gen_seed", 0)))
    base = ArrayClips(data.clips, data.targets)
    tr, va = seeded_split(len(base), val, seed, data.targets)
    return req.bundle(Subset(base, tr), Subset(base, va), data.labels, task="clip_classify", default_input=size,
                      info={"clip_length": length, "frames": min(DEFAULT_FRAMES, length), "pairs": [
                          list(p) for p in gestures.PAIRS if set(p) <= set(data.labels)]})


register_source(DataSource("gestures", _gestures, kind="clips", default_input=32, flip_invariant=False,
                           usage="gestures[:k=v,...]", help="generated gesture clips whose classes need temporal "
                           "order (options classes, n, size, frames, gen_seed)"))


def _jester(req: SourceRequest) -> DataBundle:
    train, valid, labels, skipped, record, info = open_jester(Path(req.path))
    return req.bundle(train, valid, labels, task="clip_classify", skipped=skipped,
                      info={**info, "frames": DEFAULT_FRAMES}, split=record)


register_source(DataSource("jester", _jester, kind="clips", default_input=CLIP_INPUT, flip_invariant=False,
                           path=True, help="20BN-Jester v1 frame folders and CSVs (their split)"))


def _videofolder(req: SourceRequest) -> DataBundle:
    train, valid, labels, skipped, record = open_videofolder(Path(req.path), req.val, req.seed)
    return req.bundle(train, valid, labels, task="clip_classify", skipped=skipped,
                      info={"frames": DEFAULT_FRAMES}, split=record)


register_source(DataSource("videofolder", _videofolder, kind="clips", default_input=CLIP_INPUT, path=True,
                           help="a folder per class of video files (mp4, avi, webm); train/ + val/ if present"))


CSV_SPLITS = ("", "train", "val")


def _csv_regression(req: SourceRequest) -> DataBundle:
    """``csv:PATH``: a ``path`` column, the label in ``label`` (or ``target``), optional
    per-sample ``sigma`` (finite, >= 0: the annotators' spread) and ``split`` (train/val).

    With sigma the task is ``label_distribution`` and targets are ``(label, sigma)``, else
    ``regression`` with a float target. ``info["label_range"]`` suggests a label set covering
    the labels (see :func:`edgekit.data.ordinal.label_range`)."""
    path, val, seed = Path(req.path), req.val, req.seed
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
    return req.bundle(Subset(base, tr), Subset(base, va), [], task=task, skipped=len(bad), split=split_record,
                      info={"label_range": label_range(min(labels), max(labels),
                                                       integer=all(float(y).is_integer() for y in labels))})


register_source(DataSource("csv", _csv_regression, kind="images", path=True, labels=False, expansion="natural",
                           help="path,label[,sigma][,split] rows: regression, or label distribution with sigma"))


def _tabular(req: SourceRequest) -> DataBundle:
    train, valid, labels, in_spec, info, record = tabular.open_csv(
        Path(req.path), req.options.pop("target", None), req.options.pop("encode", "onehot"), req.val, req.seed)
    return req.bundle(train, valid, labels, task="classify", default_input=in_spec["shape"][0], info=info,
                      split=record, input_spec=in_spec)


register_source(DataSource("tabular", _tabular, kind="table", default_input=None, path=True,
                           usage="tabular:PATH.csv", help="feature columns + a class column (?target=COL)"))


def _sklearn(req: SourceRequest) -> DataBundle:
    train, valid, labels, in_spec, info = tabular.open_sklearn(req.path, req.val, req.seed)
    return req.bundle(train, valid, labels, task="classify", default_input=in_spec["shape"][0], info=info,
                      input_spec=in_spec)


register_source(DataSource("sklearn", _sklearn, kind="table", default_input=None, path=True, usage="sklearn:NAME",
                           help=f"scikit-learn's shipped tables: {', '.join(tabular.SKLEARN_SETS)}"))
