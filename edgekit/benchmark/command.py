"""The command line a recorded benchmark page cites, written so that a reader can rerun it.

A page records how it was made. Paths of the machine it ran on (a scratch folder under a home
directory) mean nothing to a reader: the ``--work`` folder is written ``WORK`` and paths inside
it ``WORK/...``, paths inside the current folder (the checkout) relative to it, and the script
by its path in the repository.
"""
from __future__ import annotations

import os
import shlex
from pathlib import Path

__all__ = ["rerun_command"]


def rerun_command(script: str | Path, argv: list[str], work: str | Path | None = None) -> str:
    """``python benchmarks/NAME.py ARGS`` with ``work`` as ``WORK`` and checkout paths relative."""
    cwd = Path.cwd().resolve()
    work_dir = Path(work).resolve() if work else None

    def portable(arg: str) -> str:
        key, eq, value = arg.partition("=") if arg.startswith("--") else ("", "", arg)
        text = value if eq or not key else arg
        if "/" in text and not text.startswith("-"):
            text = _relative(Path(text).resolve(), work_dir, cwd, text)
        return f"{key}={text}" if eq else text

    name = Path(script).resolve()
    script_text = _relative(name, None, cwd, f"benchmarks/{name.name}")
    return " ".join(["python", script_text, *(shlex.quote(portable(a)) if " " in a else portable(a) for a in argv)])


def _relative(path: Path, work: Path | None, cwd: Path, fallback: str) -> str:
    if work is not None and (path == work or work in path.parents):
        return "WORK" if path == work else f"WORK/{path.relative_to(work).as_posix()}"
    if cwd in path.parents:
        return path.relative_to(cwd).as_posix()
    return fallback if not os.path.isabs(fallback) else path.name
