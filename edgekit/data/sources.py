"""The data-source registry: every spec scheme (``digits``, ``imagefolder``, ``tabular``...) with
what the rest of edgekit needs to know about it.

A source is one :class:`DataSource`, registered once with :func:`register_source` next to its
loader. :func:`edgekit.data.load_data` dispatches through this registry,
:func:`edgekit.data.parse_spec` reads from it whether the rest of a spec is a path, and
error messages and the CLI's help list it, so no stage names a scheme. A new source is one
module with a loader plus one registration::

    from edgekit.data.sources import DataSource, SourceRequest, register_source

    def load_mine(req: SourceRequest):
        train, val, labels = ...            # from req.path, req.options (pop what you read)
        return req.bundle(train, val, labels, task="classify", default_input=32)

    register_source(DataSource("mine", load_mine, kind="images", usage="mine:PATH",
                               help="my images", path=True))

This module imports neither torch nor the loaders, so it sits below every one of them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from ..errors import EdgekitError

#: what a source yields: still images, clips (frame sequences) or table rows (feature vectors)
KINDS = ("images", "clips", "table")


@dataclass
class SourceRequest:
    """What a loader gets: the spec, its path part, its options and the split to make.

    The loader pops the options it reads from ``options`` (what is left over is an unknown
    option, refused by :func:`~edgekit.data.load_data`) and returns ``bundle(train, val,
    labels, ...)``: :class:`~edgekit.data.DataBundle` with the spec filled in (its other
    fields are keywords). ``val`` and ``seed`` are the validation fraction and split seed.
    """

    spec: str
    path: str
    options: dict[str, str]
    val: float
    seed: int
    bundle: Callable[..., Any]


@dataclass(frozen=True)
class DataSource:
    """One spec scheme and its properties.

    ``load(request) -> DataBundle`` opens the data (see :class:`SourceRequest`). ``kind``: one of
    :data:`KINDS`. ``flip_invariant``: a horizontal mirror keeps the label (false for digits,
    whose mirror is no digit); augmentation and flip test-time averaging read it from
    :attr:`DataBundle.flip_invariant`. ``default_input``: the suggested input size (``None``:
    fixed by the data itself, feature rows). ``path``: the rest of the spec is a path with
    options after ``?`` (``imagefolder:data/?val=0.1``), else it is options after ``:``
    (``digits:val=0.25``). ``labels``: samples carry class labels (false for numeric targets).
    ``boxes``: samples carry bounding boxes. ``expansion``: the preset of label-preserving
    versions the limited-data recipe expands it with (a name of
    :data:`edgekit.compress.expansion.PRESETS`). ``usage``: the spec's form for help and errors
    (``imagefolder:PATH``), ``help``: one line on what it is.
    """

    scheme: str
    load: Callable[[SourceRequest], Any] = field(repr=False)
    kind: str = "images"
    usage: str = ""
    help: str = ""
    flip_invariant: bool = True
    default_input: int | None = 224
    path: bool = False
    labels: bool = True
    boxes: bool = False
    expansion: str = "paper"

    def __post_init__(self) -> None:
        if not self.scheme or not self.scheme.isidentifier():
            raise EdgekitError(f"a data source scheme must be a plain name, got {self.scheme!r}")
        if self.kind not in KINDS:
            raise EdgekitError(f"data source {self.scheme!r}: kind must be one of {', '.join(KINDS)}, "
                               f"got {self.kind!r}")
        if not self.usage:
            object.__setattr__(self, "usage", f"{self.scheme}:PATH" if self.path else self.scheme)


SOURCES: dict[str, DataSource] = {}


def register_source(source: DataSource) -> DataSource:
    """Make ``source.scheme`` a data spec scheme; a scheme already taken raises."""
    if source.scheme in SOURCES:
        raise EdgekitError(f"data source {source.scheme!r} is already registered")
    SOURCES[source.scheme] = source
    return source


def unregister_source(scheme: str) -> None:
    """Remove a registered scheme (tests, plugins replacing a source)."""
    SOURCES.pop(scheme, None)


def usages() -> str:
    """The registered specs' forms, comma-separated, for help and error text."""
    return ", ".join(s.usage for s in SOURCES.values())


def get_source(scheme: str, spec: str | None = None) -> DataSource:
    """The source registered as ``scheme``; an unknown one is a one-line error listing them all."""
    try:
        return SOURCES[scheme]
    except KeyError:
        where = f" in {spec!r}" if spec is not None else ""
        raise EdgekitError(f"unknown data source {scheme!r}{where}; use {usages()}") from None
