"""YAML files edgekit ships: export profiles (``export/``) and pipeline recipes (``models/``).

Their source is the top-level folder of that name in the checkout; a wheel carries copies in
``edgekit/_shipped/<folder>/`` (made by ``setup.py``'s build hook). A name is looked up in that
folder of the working directory first (a user's own profiles and recipes), then in the installed
package, then in the checkout beside the package (an editable install). A path to an existing
file is used as it is.
"""
from __future__ import annotations

from pathlib import Path

from .errors import suggest


def shipped_dirs(folder: str) -> list[Path]:
    """Where names of ``folder`` (``export``, ``models``) are looked up, in order."""
    here = Path(__file__).resolve().parent
    checkout = [here.parent / folder] if (here.parent / "pyproject.toml").is_file() else []  # not site-packages/
    return [Path.cwd() / folder, here / "_shipped" / folder, *checkout]


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
