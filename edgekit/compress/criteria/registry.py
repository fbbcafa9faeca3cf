"""The registry of pruning criteria (see :mod:`edgekit.compress.criteria`): the only place that names them."""
from __future__ import annotations

from typing import Any

from ...errors import EdgekitError, suggest
from .base import Criterion


#: name -> criterion class, in registration order (the built-ins first).
CRITERIA: dict[str, type[Criterion]] = {}


def register_criterion(cls: type[Criterion]) -> type[Criterion]:
    """Register a :class:`Criterion` subclass under its ``name`` (unique); usable as a class decorator."""
    if not (isinstance(cls, type) and issubclass(cls, Criterion)):
        raise EdgekitError(f"a pruning criterion must be a Criterion subclass, got {cls!r}")
    name = cls.name
    if not isinstance(name, str) or not name or name != name.strip():
        raise EdgekitError(f"a pruning criterion needs a name, got {name!r}")
    if name in CRITERIA:
        raise EdgekitError(f"pruning criterion {name!r} is already registered")
    CRITERIA[name] = cls
    return cls


def criterion_names(lacking: str | None = None) -> tuple[str, ...]:
    """The registered names; with ``lacking``, only criteria whose (default) :class:`Needs` lack that
    field (``lacking="distribution"``: those that score a model without an output distribution)."""
    if lacking is None:
        return tuple(CRITERIA)
    return tuple(n for n, cls in CRITERIA.items() if not getattr(cls().needs, lacking))


def get_criterion(name: str) -> type[Criterion]:
    """The criterion class registered as ``name``; an unknown name is one line listing the known ones."""
    cls = CRITERIA.get(name) if isinstance(name, str) else None
    if cls is None:
        exc = suggest(str(name), CRITERIA, "pruning method")
        raise EdgekitError(f"{exc} (known: {', '.join(CRITERIA)})")
    return cls


def build_criterion(name: str, **options: Any) -> Criterion:
    """The criterion ``name`` with those of ``options`` it owns (others are ignored; missing ones
    take :class:`~edgekit.compress.prune_config.PruneConfig`'s defaults)."""
    cls = get_criterion(name)
    return cls(**{k: v for k, v in options.items() if k in cls.options})


def criterion_for(cfg: Any) -> Criterion:
    """The criterion a :class:`~edgekit.compress.prune_config.PruneConfig` names, with its owned options."""
    return get_criterion(cfg.method).from_config(cfg)


def help_text() -> str:
    """``--method``'s help: every registered criterion with its one-line summary."""
    return "Importance criterion: " + "; ".join(f"{c.name} ({c.summary})" if c.summary else c.name
                                                for c in CRITERIA.values()) + "."
