"""YAML files edgekit ships in top-level folders of its checkout: export profiles (``export/``)
and pipeline recipes (``models/``).

A name is looked up in that folder of the working directory first (a user's own profiles and
recipes), then beside the package. A path to an existing file is used as it is.
"""
from __future__ import annotations

from pathlib import Path

from .errors import suggest


def shipped_dirs(folder: str) -> list[Path]:
    """Where names of ``folder`` (``export``, ``models``) are looked up, in order."""
    return [Path.cwd() / folder, Path(__file__).resolve().parents[1] / folder]


def shipped_names(folder: str) -> list[str]:
    """The names (file stems) of the YAML files found in :func:`shipped_dirs`."""
    return sorted({p.stem for d in shipped_dirs(folder) if d.is_dir() for p in d.glob("*.yaml")})


def find_shipped(name: str | Path, folder: str, what: str) -> Path:
    """``name`` itself when it is a file, else ``<folder>/<name>.yaml`` from :func:`shipped_dirs`;
    an unknown name is a one-line error suggesting the closest (``what`` names the kind)."""
    path = Path(name)
    if path.is_file():
        return path
    found = [d / f"{path.stem}.yaml" for d in shipped_dirs(folder) if (d / f"{path.stem}.yaml").is_file()]
    if not found:
        raise suggest(str(name), shipped_names(folder), what)
    return found[0]
