"""Which code a file may make edgekit run: none, unless the user says so.

A checkpoint, recipe, profile or manifest is data. The architectures it may name are the
registered ones (edgekit's nets, torchvision's, factories registered with
:func:`edgekit.register_model` or an ``edgekit.models`` entry point); an import path
(``package.module:function``) found in a file is refused in one line, and never imported,
unless the user allows it: ``--trust-code`` on the command line, ``trust_code=True`` to
:func:`~edgekit.checkpoint.load_checkpoint` or :func:`~edgekit.recipes.load.load_recipe`
(the analogue of Hugging Face's ``trust_remote_code``).

How the permission travels:

* ``trust_code=True`` on a loader allows that one file;
* :func:`trusting` (a context manager over a :class:`~contextvars.ContextVar`) allows every
  file read inside it; the CLI's ``--trust-code`` enters it for the command's duration, so
  library functions that take a path (``evaluate``, ``export``, ``prune``...) honour it;
* edgekit's own worker processes (bench's isolated measurements) inherit it through the
  environment variable :data:`ENV` (:func:`child_env`); setting it by hand is the same as
  passing ``--trust-code`` to every command;
* an import path already imported in this process by the caller's choice (its own name:
  ``edgekit train --arch pkg.mod:fn``, ``distill --student pkg.mod:fn``, ``create_model("pkg.mod:fn")``;
  or a file it trusted) is not refused again: the checkpoint a run writes from it reads back in
  the same run. Another process needs the same registration or ``--trust-code``, since by then
  the name comes from a file.

Profiles and manifests name no code at all (their keys and values are checked as data), so
the option changes nothing for them.
"""
from __future__ import annotations

import contextlib
import os
from contextvars import ContextVar
from typing import Iterator

from .errors import EdgekitError

#: the environment variable through which edgekit's worker processes inherit ``--trust-code``
ENV = "EDGEKIT_TRUST_CODE"
#: the command-line option that allows code named in a file
OPTION = "--trust-code"

_TRUSTED: ContextVar[bool] = ContextVar("edgekit_trust_code", default=False)
_CALLER_NAMED: set[str] = set()


class UntrustedCode(EdgekitError):
    """A file names code (an import path) and the user has not allowed it."""


def is_import_path(name: str) -> bool:
    """Whether an architecture name is an import path (``package.module:function``), not a registry name."""
    return ":" in name


def trust_enabled(trust_code: bool = False) -> bool:
    """Whether code named in a file may be imported: ``trust_code``, :func:`trusting` or :data:`ENV`."""
    return bool(trust_code) or _TRUSTED.get() or os.environ.get(ENV) == "1"


@contextlib.contextmanager
def trusting(enabled: bool = True) -> Iterator[None]:
    """Allow (or, with ``enabled=False``, forbid) code named in files read inside the block."""
    token = _TRUSTED.set(enabled)
    try:
        yield
    finally:
        _TRUSTED.reset(token)


def child_env() -> dict[str, str]:
    """Environment entries that carry the current permission into an edgekit worker process."""
    return {ENV: "1"} if trust_enabled() else {}


def caller_named(name: str) -> None:
    """Record an import path imported by the caller's choice (called by the registry when it imports one)."""
    _CALLER_NAMED.add(name)


def check_name(name: str, source: str, field: str = "arch", trust_code: bool = False) -> None:
    """Refuse ``name`` found at ``field`` of ``source`` (a file) when it is an import path the
    user has not allowed: one line naming it and the option that allows it. Nothing is imported."""
    if not is_import_path(name) or trust_enabled(trust_code) or name in _CALLER_NAMED:
        return
    raise UntrustedCode(
        f"{source}: {field} names the import path {name!r}, code that a file may not choose; not imported. "
        f"If you trust this file, rerun with {OPTION} (trust_code=True in Python), or register the factory "
        "(edgekit.register_model, or an 'edgekit.models' entry point)")
