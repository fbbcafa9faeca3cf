"""Atomic file writes: a temp file in the target folder, then ``os.replace``.

A reader never sees a half-written checkpoint, artifact or result file, and an
interrupted write leaves the previous version intact.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

from .errors import EdgekitError


def check_writable(path: str | os.PathLike, force: bool) -> Path:
    """Refuse to overwrite an existing output unless ``force`` is set."""
    path = Path(path)
    if path.exists() and not force:
        raise EdgekitError(f"{path} already exists; pass --force to overwrite it")
    return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it into place on success.

    On any exception the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual permissions
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            if tmp_path.is_dir():
                import shutil

                shutil.rmtree(tmp_path, ignore_errors=True)
            else:
                tmp_path.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def append_jsonl(path: str | os.PathLike, obj: Any) -> None:
    """Append one JSON line (metrics logs); appends are line-atomic for small records."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fh.write(json.dumps(obj, default=str) + "\n")


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes (checkpoint lineage, artifact manifests)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def safe_torch_load(path: str | os.PathLike, what: str) -> Any:
    """``torch.load`` with ``weights_only=True``: plain data and tensors only, never code.

    A missing, truncated, foreign or code-carrying file becomes one :class:`EdgekitError`
    line naming ``what`` was expected (``"edgekit checkpoint"``, ``"weights"``); so does a zip
    archive whose bytes fail their CRC (:func:`check_archive`).
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise EdgekitError(f"{what} not found: {path}")
    check_archive(path, what)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle errors, truncated zips, disallowed globals
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EdgekitError(f"{path} is not a readable {what} (corrupt, or it carries code): {first[:200]}") from exc


def check_archive(path: Path, what: str) -> None:
    """Refuse a zip archive (``torch.save``'s format) whose records fail their CRC-32.

    ``torch.load`` does not check the CRCs, so flipped bytes inside a tensor would load as
    silently wrong weights. ``ZipFile.testzip`` reads every record once (about the cost of the
    load itself). Files that are not zip archives (the legacy format) are left to ``torch.load``.
    """
    import zipfile

    if not zipfile.is_zipfile(path):
        return
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise EdgekitError(f"{path} is not a readable {what} (corrupt zip archive: {exc})") from exc
    if bad is not None:
        raise EdgekitError(f"{path} is corrupt: record {bad!r} fails its CRC check (the file was damaged "
                           f"after it was written); refusing to load it as a {what}")
