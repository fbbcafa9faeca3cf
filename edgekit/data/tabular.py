"""Tabular data: rows of features to classify (sensor readings, measurements, records).

Two sources, both split like every other spec (seeded, stratified, ``val=``/``seed=``):

* ``tabular:PATH.csv[?target=COL&encode=onehot|ordinal]``: a CSV with a header. The
  target is the column named by ``target=``, else a column called ``target``, else the
  last column; its distinct values are the class labels (sorted, numerically when they
  are all numbers). A column named ``split`` with ``train``/``val`` values fixes the split
  (as in the image CSV) and is not a feature. Every other column is a feature: numeric
  when all its present values parse as numbers, otherwise categorical, encoded one-hot
  (default; one feature per category seen in training, an unseen category is all zeros)
  or as ordinal codes (``encode=ordinal``; one feature, the category's index in training
  order, -1 when unseen).
* ``sklearn:NAME``: the real classification sets that scikit-learn ships on disk (no
  download): ``breast_cancer``, ``wine``, ``iris``, ``digits`` (the 8x8 images as 64
  features).

Everything fitted is fitted on the training split only: the categories, the imputation
(median of a numeric column, most frequent category of a categorical one; missing cells
are the empty string, ``NA``, ``NaN``, ``null``, ``None``, ``?`` and infinite numbers, counted
per column in ``bundle.info["missing"]``; a feature column with no value left in the training
split is refused, naming it) and the standardisation (per-feature mean and std, a constant
feature gets std 1). The standardisation is not applied to the samples: it goes into the
input spec (``{"kind": "tabular", "features", "shape": [d], "mean", "std"}``) and from there
into the model's first layer (:class:`edgekit.models.tabular.Standardize`), so a trained
or exported model takes raw features. Samples are float32 tensors of shape ``[d]``.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import EdgekitError
from .datasets import Subset, seeded_split

MISSING = frozenset({"", "na", "nan", "null", "none", "?"})
ENCODINGS = ("onehot", "ordinal")


def _sklearn_loaders() -> dict[str, Any]:
    from sklearn import datasets

    return {"breast_cancer": datasets.load_breast_cancer, "wine": datasets.load_wine,
            "iris": datasets.load_iris, "digits": datasets.load_digits}


#: the scikit-learn sets ``sklearn:NAME`` opens (every classification set it ships on disk)
SKLEARN_SETS = ("breast_cancer", "wine", "iris", "digits")


class FeatureRows(Dataset):
    """Float32 feature rows ``[N, d]`` with integer class targets; items are ``(tensor[d], int)``."""

    def __init__(self, features: np.ndarray, targets: Sequence[int]) -> None:
        self.features = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))
        self.targets = [int(t) for t in targets]

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.features[i], self.targets[i]


def input_spec(features: Sequence[str], train_rows: np.ndarray) -> dict[str, Any]:
    """The tabular input spec, with the standardisation fitted on ``train_rows`` (missing values imputed).

    A feature with a NaN or infinite value left in ``train_rows`` is refused, naming it: its
    mean and std would be NaN, and so every prediction of the model built on them."""
    bad = [f for f, ok in zip(features, np.isfinite(train_rows).all(axis=0)) if not ok]
    if bad:
        raise EdgekitError(f"feature{'s' if len(bad) > 1 else ''} {', '.join(map(repr, bad[:10]))}"
                           f"{' ...' if len(bad) > 10 else ''} hold NaN or infinite values in the training rows")
    mean = train_rows.mean(axis=0)
    std = train_rows.std(axis=0)
    std = np.where(std > 1e-12, std, 1.0)
    return {"kind": "tabular", "features": list(features), "shape": [len(features)], "dtype": "float32",
            "mean": [float(v) for v in mean], "std": [float(v) for v in std]}


@dataclass
class Table:
    """A classification table before splitting: feature rows, targets and what they are called."""

    rows: np.ndarray  # (N, d) float32, already numeric
    targets: list[int]
    labels: list[str]
    features: list[str]


def split_table(table: Table, train: list[int], val: list[int]) -> tuple[Dataset, Dataset, dict[str, Any]]:
    """Train/val datasets over ``table`` and the input spec fitted on the training rows."""
    base = FeatureRows(table.rows, table.targets)
    return Subset(base, train), Subset(base, val), input_spec(table.features, table.rows[train])


def sklearn_table(name: str) -> Table:
    """One of scikit-learn's shipped classification sets as a :class:`Table`."""
    loaders = _sklearn_loaders()
    if name not in loaders:
        raise EdgekitError(f"unknown scikit-learn set {name!r}; use one of {', '.join(SKLEARN_SETS)}")
    ds = loaders[name]()
    features = [str(f) for f in getattr(ds, "feature_names", [])] or [f"x{i}" for i in range(ds.data.shape[1])]
    labels = [str(t) for t in getattr(ds, "target_names", sorted(set(ds.target.tolist())))]
    return Table(np.asarray(ds.data, dtype=np.float32), [int(t) for t in ds.target], labels, features)


def open_sklearn(name: str, val: float, seed: int) -> tuple[Dataset, Dataset, list[str], dict[str, Any], dict]:
    """``sklearn:NAME`` -> (train, val, labels, input spec, info)."""
    table = sklearn_table(name)
    tr, va = seeded_split(len(table.targets), val, seed, table.targets)
    train, valid, spec = split_table(table, tr, va)
    return train, valid, table.labels, spec, {"source": f"scikit-learn load_{name}", "features": len(table.features)}


# --------------------------------------------------------------------------------------- CSV


def _is_missing(cell: str) -> bool:
    """Empty, a missing-value marker, or a number that is not finite (``inf``, ``-Infinity``)."""
    text = cell.strip().lower()
    if text in MISSING:
        return True
    try:
        return not np.isfinite(float(text))
    except ValueError:
        return False


def _number(cell: str) -> float | None:
    try:
        value = float(cell)
    except ValueError:
        return None
    return value if np.isfinite(value) else None


def _sorted_labels(values: set[str]) -> list[str]:
    numbers = {v: _number(v) for v in values}
    if all(n is not None for n in numbers.values()):
        return sorted(values, key=lambda v: numbers[v])  # type: ignore[arg-type,return-value]
    return sorted(values)


def _read(path: Path) -> tuple[list[str], list[list[str]]]:
    if not path.is_file():
        raise EdgekitError(f"CSV file not found: {path}")
    with open(path, newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        rows = [r for r in reader if any(c.strip() for c in r)]
    if not header or not rows:
        raise EdgekitError(f"{path} needs a header row and at least one data row")
    header = [h.strip() for h in header]
    for n, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise EdgekitError(f"{path}:{n}: {len(row)} cells, the header has {len(header)}")
    return header, rows


def _target_column(header: list[str], target: str | None, path: Path) -> int:
    if target is not None:
        if target not in header:
            raise EdgekitError(f"{path} has no column {target!r} (target=); columns: {', '.join(header)}")
        return header.index(target)
    if "target" in header:
        return header.index("target")
    candidates = [i for i, h in enumerate(header) if h != "split"]
    return candidates[-1]


class ColumnEncoder:
    """One feature column, fitted on training cells: imputation and (categorical) encoding."""

    def __init__(self, name: str, cells: list[str], encode: str) -> None:
        present = [c.strip() for c in cells if not _is_missing(c)]
        self.name = name
        self.numeric = all(_number(c) is not None for c in present)
        if self.numeric:
            self.fill = float(np.median([_number(c) for c in present])) if present else 0.0
            self.categories: list[str] = []
        else:
            values, counts = np.unique(present, return_counts=True)
            self.fill = str(values[np.argmax(counts)])  # most frequent training category
            self.categories = sorted(set(present))
        self.onehot = not self.numeric and encode == "onehot"

    @property
    def names(self) -> list[str]:
        return [f"{self.name}={c}" for c in self.categories] if self.onehot else [self.name]

    def encode(self, cells: list[str]) -> np.ndarray:
        """``(N, width)`` float32 codes of ``cells``, missing ones imputed."""
        if self.numeric:
            out = [self.fill if _is_missing(c) else _number(c.strip()) for c in cells]
            if any(v is None for v in out):
                bad = next(c for c, v in zip(cells, out) if v is None)
                raise EdgekitError(f"column {self.name!r} is numeric in training but has {bad!r}")
            return np.asarray(out, dtype=np.float32)[:, None]
        index = {c: i for i, c in enumerate(self.categories)}
        codes = [index.get(self.fill if _is_missing(c) else c.strip(), -1) for c in cells]
        if not self.onehot:
            return np.asarray(codes, dtype=np.float32)[:, None]
        out = np.zeros((len(cells), len(self.categories)), dtype=np.float32)
        for row, code in enumerate(codes):
            if code >= 0:
                out[row, code] = 1.0
        return out


def open_csv(path: Path, target: str | None, encode: str, val: float, seed: int
             ) -> tuple[Dataset, Dataset, list[str], dict[str, Any], dict[str, Any], dict[str, Any]]:
    """``tabular:PATH.csv`` -> (train, val, labels, input spec, info, split record)."""
    if encode not in ENCODINGS:
        raise EdgekitError(f"encode must be one of {', '.join(ENCODINGS)}, got {encode!r}")
    header, rows = _read(path)
    t = _target_column(header, target, path)
    has_split = "split" in header and header[t] != "split"
    s = header.index("split") if has_split else -1
    feature_cols = [i for i in range(len(header)) if i not in (t, s)]
    if not feature_cols:
        raise EdgekitError(f"{path} has no feature columns besides the target {header[t]!r}")
    keep = [r for r in rows if not _is_missing(r[t])]
    if not keep:
        raise EdgekitError(f"{path}: every row misses its target {header[t]!r}")
    labels = _sorted_labels({r[t].strip() for r in keep})
    if len(labels) < 2:
        raise EdgekitError(f"{path}: target {header[t]!r} has a single class ({labels[0]!r}); nothing to classify")
    index = {c: i for i, c in enumerate(labels)}
    targets = [index[r[t].strip()] for r in keep]
    if has_split:
        tags = [r[s].strip().lower() for r in keep]
        tr = [i for i, tag in enumerate(tags) if tag != "val"]
        va = [i for i, tag in enumerate(tags) if tag == "val"]
        record: dict[str, Any] = {"folders": True}
    else:
        tr, va = seeded_split(len(keep), val, seed, targets)
        record = {}
    columns = {c: [r[c] for r in keep] for c in feature_cols}
    empty = [header[c] for c in feature_cols if all(_is_missing(columns[c][i]) for i in tr)]
    if empty:
        names = ", ".join(map(repr, empty[:10])) + (" ..." if len(empty) > 10 else "")
        what = (f"every feature column ({names}) has" if len(empty) == len(feature_cols) else
                f"feature column{'s' if len(empty) > 1 else ''} {names} {'have' if len(empty) > 1 else 'has'}")
        raise EdgekitError(f"{path}: {what} no value in the training rows (all missing, NaN or infinite); "
                           "drop or fill in such columns")
    encoders = [ColumnEncoder(header[c], [columns[c][i] for i in tr], encode) for c in feature_cols]
    rows_np = np.concatenate([e.encode(columns[c]) for e, c in zip(encoders, feature_cols)], axis=1)
    features = [n for e in encoders for n in e.names]
    missing = {header[c]: sum(_is_missing(v) for v in columns[c]) for c in feature_cols}
    missing = {k: v for k, v in missing.items() if v}
    train, valid, spec = split_table(Table(rows_np, targets, labels, features), tr, va)
    info = {"source": str(path), "target": header[t], "features": len(features),
            "categorical": [e.name for e in encoders if not e.numeric], "encode": encode,
            "missing": missing, "missing_total": sum(missing.values()),
            "dropped_rows_without_target": len(rows) - len(keep)}
    return train, valid, labels, spec, info, record
