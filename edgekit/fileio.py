"""Atomic file writes and the one check of every output path.

Writes go to a temp file in the target folder, then ``os.replace``: a reader never sees a
half-written checkpoint, artifact or result file, and an interrupted write leaves the previous
version intact. A write killed outright (SIGKILL, power loss) leaves its temp file behind; the
next write of the same target removes it (:func:`atomic_path`).

:func:`check_writable` is called by every stage before any work starts, so a bad output path
is one line up front, never a traceback or a failure after an hour of training: an output that
is also an input of the command, an empty path, a folder where a file goes (or the reverse), a
parent that is a file or cannot be written, and an existing file that is not the stage's own
kind (never overwritten, ``--force`` or not).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from .errors import EdgekitError


@dataclass(frozen=True)
class Kind:
    """What a stage writes: ``name`` for messages ("an edgekit checkpoint") and ``test``, which
    says whether an existing file is one (only such a file is ever overwritten)."""

    name: str
    test: Callable[[Path], bool]


def is_json_document(path: Path, format: str | None = None) -> bool:
    """Whether ``path`` holds a JSON document (with ``"format": format`` when given)."""
    try:
        if path.stat().st_size > 256 << 20:
            return False
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return format is None or (isinstance(doc, dict) and doc.get("format") == format)


#: Kinds of the JSON files stages write (eval --json, bench -o); checkpoints: ``edgekit.checkpoint.KIND``.
JSON_KIND = Kind("a JSON file", is_json_document)


def check_writable(path: str | os.PathLike | None, force: bool = False, *, inputs: Iterable[Any] = (),
                   kind: Kind | None = None, folder: bool = False, writes: Iterable[str] = ()) -> Path:
    """Check an output path before any work starts; returns it as a :class:`Path`.

    Refused in one line: an empty path; an output that is one of ``inputs`` (paths, or
    objects with a ``path``, as a loaded checkpoint) even with ``force``; for a file
    (``folder`` False) an existing folder, an existing file without ``force``, and an existing
    file that is not of ``kind`` even with ``force``; for a folder an existing file, and an
    input that is one of the files ``writes`` names in it; and a parent that is a file or that
    cannot be written (read-only, permission denied).
    """
    p = output_path(path, folder)
    targets = [p, *(p / name for name in writes)] if folder else [p]
    for given in inputs:
        src = _input_path(given)
        hit = next((t for t in targets if src is not None and same_file(src, t)), None)
        if hit is not None:
            raise EdgekitError(f"{hit} is also an input of this command; write the output somewhere else")
    if folder:
        if p.exists() and not p.is_dir():
            raise EdgekitError(f"{p} exists and is not a folder; the output here is a folder")
        _check_parent(p, p)
        return p
    if p.is_dir():
        raise EdgekitError(f"{p} is a folder; the output here is a file")
    if p.exists():
        if kind is not None and not kind.test(p):
            raise EdgekitError(f"{p} exists and is not {kind.name}; it is never overwritten, --force or not")
        if not force:
            raise EdgekitError(f"{p} already exists; pass --force to overwrite it")
    _check_parent(p.parent, p)
    return p


def output_path(path: str | os.PathLike | None, folder: bool = False) -> Path:
    """``path`` as a :class:`Path`; an empty one (``-o ''``, which ``Path`` would read as the current
    folder), or for a file one without a file name (``.``, ``/``), is one line."""
    if path is None or not str(path).strip():
        raise EdgekitError("the output path is empty")
    p = Path(path)
    if not folder and p.name in ("", ".."):
        raise EdgekitError(f"{path} is a folder; the output here is a file")
    return p


def data_input(data: Any) -> Path | None:
    """The file or folder a data spec reads (``imagefolder:PATH``, ``csv:PATH``), when it names an
    existing one; an input of the command for :func:`check_writable`."""
    if not isinstance(data, str) or ":" not in data:
        return None
    path = Path(data.split(":", 1)[1])
    return path if path.exists() else None


def _input_path(given: Any) -> Path | None:
    if given is None:
        return None
    path = given if isinstance(given, (str, os.PathLike)) else getattr(given, "path", None)
    # a name that is no file (a registry name such as a distillation student) is not overwritten
    return Path(path) if path and str(path) and os.path.lexists(path) else None


def same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` name the same file (links and ``..`` included)."""
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return os.path.realpath(a) == os.path.realpath(b)


def _check_parent(folder: Path, output: Path) -> None:
    """The nearest existing folder at or above ``folder`` must be a folder we can write in."""
    anc = Path(os.path.abspath(folder))
    while not anc.exists() and anc != anc.parent:
        anc = anc.parent
    if not anc.is_dir():
        raise EdgekitError(f"cannot write {output}: {anc} is a file, not a folder")
    try:  # a real write, not os.access: root passes access checks on read-only and virtual folders
        fd, probe = tempfile.mkstemp(prefix=".edgekit-probe-", dir=anc)
    except OSError as exc:
        raise EdgekitError(f"cannot write {output}: {anc} is not writable ({exc.strerror or exc})") from None
    os.close(fd)
    os.unlink(probe)


def _temp_pattern(name: str) -> re.Pattern[str]:
    """The names :func:`atomic_path` gives its temp files for target ``name``: ``.NAME.PID.XXXXXXXX.tmp``
    (``.NAME.XXXXXXXX.tmp`` from before the pid was recorded)."""
    return re.compile(rf"^\.{re.escape(name)}\.(?:(\d+)\.)?[a-z0-9_]{{8}}\.tmp$")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def remove_stale_temps(path: str | os.PathLike) -> list[Path]:
    """Remove temp files (or folders) a killed :func:`atomic_path` of ``path`` left beside it:
    only names of the writer's own pattern whose process is gone. Returns what was removed."""
    path = Path(path)
    pattern = _temp_pattern(path.name)
    removed = []
    try:
        entries = list(path.parent.iterdir())
    except OSError:
        return removed
    for entry in entries:
        m = pattern.match(entry.name)
        if m is None or (m.group(1) is not None and _alive(int(m.group(1)))):
            continue
        with contextlib.suppress(OSError):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            removed.append(entry)
    return removed


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it into place on success.

    On any exception the temporary file is removed and ``path`` is untouched; temp files
    that killed writes of ``path`` left behind are removed first.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(path)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:  # a parent that is a file, a read-only folder: one line, not a traceback
        raise EdgekitError(f"cannot write {path}: {exc.strerror or exc}") from exc
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual permissions
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        try:
            os.replace(tmp_path, path)
        except OSError as exc:  # e.g. a folder appeared where the file goes
            raise EdgekitError(f"cannot write {path}: {exc.strerror or exc}") from exc
    finally:
        if tmp_path.exists():
            if tmp_path.is_dir():
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
        with warnings.catch_warnings():  # torch's warnings about a foreign pickle: the error line says it
            warnings.simplefilter("ignore")
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
