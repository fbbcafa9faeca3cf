"""YAML files edgekit ships: export profiles (``export/``) and pipeline recipes (``models/``).

Their source is the top-level folder of that name in the checkout; a wheel carries copies in
``edgekit/_shipped/<folder>/`` (made by ``setup.py``'s build hook). A name is looked up in that
folder of the working directory first (a user's own profiles and recipes), then in the installed
package, then in the checkout beside the package (an editable install). A path to an existing
file is used as it is. Both are read
by :func:`read_yaml_mapping`: UTF-8 text, safe YAML (plain data: a Python tag is refused, never
constructed; aliases cannot blow up), a mapping at the top.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import EdgekitError, suggest


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


def read_yaml_mapping(path: Path, what: str) -> dict[str, Any]:
    """The mapping in the YAML file ``path`` (``what``: "recipe", "profile"), read with a safe
    loader (:func:`_safe_loader`): plain data only. A binary file, broken YAML, a tag such as
    ``!!python/object/apply`` and a top level that is not a mapping are each one
    :class:`EdgekitError` line naming the file (and the line, where YAML knows it)."""
    import yaml

    loader = _safe_loader()
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EdgekitError(f"{what} {path} is not UTF-8 text (byte {exc.start}); expected a YAML file") from None
    except OSError as exc:
        raise EdgekitError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    try:
        data = yaml.load(text, Loader=loader)  # noqa: S506 (a safe loader, see _safe_loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).strip().splitlines()[0]
        if isinstance(exc, yaml.constructor.ConstructorError) and "tag" in problem:
            problem = f"{problem} (safe YAML only: plain data, no Python tags)"
        raise EdgekitError(f"{what} {path}{where}: not valid YAML: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise EdgekitError(f"{what} {path} must be a mapping at the top, got a {type(data).__name__}")
    return data


def _safe_loader() -> type:
    """OmegaConf's YAML loader, as ``OmegaConf.load`` reads recipes: PyYAML's safe loader plus
    YAML 1.2 floats (``1e-3``) and a limit on alias expansion (a "billion laughs" file is one
    error, not all the memory). Plain ``yaml.SafeLoader`` where that loader is missing or not safe."""
    import yaml

    try:
        from omegaconf._yaml import get_yaml_loader

        loader = get_yaml_loader()
    except (ImportError, AttributeError, TypeError):
        return yaml.SafeLoader
    safe = tuple(c for c in (yaml.SafeLoader, getattr(yaml, "CSafeLoader", None)) if c is not None)
    return loader if issubclass(loader, safe) else yaml.SafeLoader
