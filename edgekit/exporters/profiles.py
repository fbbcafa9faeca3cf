"""Deployment profiles: YAML files in the top-level ``export/`` folder, one per device class.

A profile sets any of ``targets``, ``precision``, ``nhwc``, ``calib``, ``calib_size``,
``parity_size``, ``opset``, ``dynamic_batch`` and ``max_batch``; explicit arguments
(CLI flags) override it. ``--profile android-cpu-int8`` finds ``export/android-cpu-int8.yaml``
in the working directory or beside the edgekit package; a path works too.

A profile is data: UTF-8 safe YAML, a mapping of the known keys, each of its type
(:data:`KEYS`), targets and precisions only the registered names of :mod:`edgekit.formats`.
Nothing in it names code, so ``--trust-code`` changes nothing for a profile.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .. import formats
from ..errors import EdgekitError, suggest
from ..shipped import find_shipped, read_yaml_mapping, shipped_dirs, shipped_names


def _names(value: Any) -> list[str] | None:
    """A name or a list of names (comma lists allowed), else None."""
    items = [value] if isinstance(value, str) else value if isinstance(value, list) else None
    if items is None or not all(isinstance(v, str) for v in items):
        return None
    return [n.strip() for v in items for n in v.split(",") if n.strip()]


def _positive(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


#: Every key a profile may set: what its value must be, and the check.
KEYS: dict[str, tuple[str, Any]] = {
    "targets": ("a target name or a list of them", lambda v: _names(v) is not None),
    "precision": ("a precision name or a list of them", lambda v: _names(v) is not None),
    "nhwc": ("true or false", lambda v: isinstance(v, bool)),
    "calib": ("a data spec", lambda v: isinstance(v, str)),
    "calib_size": ("a positive integer", _positive),
    "parity_size": ("a positive integer", _positive),
    "opset": ("a positive integer", _positive),
    "dynamic_batch": ("true or false", lambda v: isinstance(v, bool)),
    "max_batch": ("a positive integer", _positive),
    "description": ("text", lambda v: isinstance(v, str)),
    "device": ("text", lambda v: isinstance(v, str)),
}


def profile_dirs() -> list[Path]:
    return shipped_dirs("export")


def available_profiles() -> list[str]:
    return shipped_names("export")


def load_profile(name: str | Path) -> dict[str, Any]:
    """Read a profile by name or path; unknown keys, values of the wrong type and unknown target or
    precision names are one-line errors (a typo would silently do nothing)."""
    path = find_shipped(name, "export", "export profile")
    data = read_yaml_mapping(path, "profile")
    unknown = set(map(str, data)) - set(KEYS)
    if unknown:
        raise EdgekitError(f"profile {path}: unknown key(s) {', '.join(sorted(unknown))}; "
                           f"allowed: {', '.join(sorted(KEYS))}")
    for key, value in data.items():
        expect, check = KEYS[key]
        if not check(value):
            raise EdgekitError(f"profile {path}: {key} must be {expect}, got {value!r}")
    try:
        for item in _names(data.get("targets")) or []:
            if item != "all":
                formats.target(item)
        for item in _names(data.get("precision")) or []:
            if item not in formats.PRECISIONS:
                raise suggest(item, formats.PRECISIONS, "precision")
    except EdgekitError as exc:
        raise EdgekitError(f"profile {path}: {exc}") from None
    data.pop("description", None)
    data.pop("device", None)
    return {**data, "profile": path.stem}
