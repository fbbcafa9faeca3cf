"""Errors that reach the user as one clear line.

Every failure caused by the user's input (a missing file, a corrupt checkpoint, an
impossible target, a missing optional extra) is raised as :class:`EdgekitError`.
The CLI prints its message on one stderr line and exits with status 2; library
callers can catch it like any other exception.
"""
from __future__ import annotations

import difflib
import importlib
from types import ModuleType
from typing import Iterable


class EdgekitError(Exception):
    """A user-facing error: its message is the one line the CLI prints."""


class MissingExtra(EdgekitError):
    """An optional dependency is not installed; the message names the pip extra."""


def require(module: str, extra: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtra` naming ``pip install "edgekit[extra]"``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:  # ModuleNotFoundError and broken native libs alike
        raise MissingExtra(
            f"{module} is not installed ({exc}); install it with: pip install \"edgekit[{extra}]\""
        ) from exc


def suggest(name: str, choices: Iterable[str], what: str) -> EdgekitError:
    """Build an 'unknown X' error that suggests the closest valid names."""
    close = difflib.get_close_matches(name, list(choices), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return EdgekitError(f"unknown {what} {name!r}{hint}")
