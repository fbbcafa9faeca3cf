"""Looking at a trained model: ``edgekit eval`` (:mod:`.scores`: a checkpoint scored on its own
held-out split), ``eval --streaming`` (:mod:`.streaming`, with the smoother of :mod:`.smoothing`),
``edgekit info`` and ``zoo`` (:mod:`.inspect`), and their options (:mod:`.config`).

Importing the package stays light (the CLI reads :mod:`.config` at start-up); ``evaluate`` and
``check_labels`` are loaded on first use.
"""
from __future__ import annotations

from typing import Any

__all__ = ["evaluate", "check_labels"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import scores

        return getattr(scores, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
