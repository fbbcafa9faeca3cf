"""Deployment profiles: YAML files in the top-level ``export/`` folder, one per device class.

A profile sets any of ``targets``, ``precision``, ``nhwc``, ``calib``, ``calib_size``,
``parity_size``, ``opset``, ``dynamic_batch`` and ``max_batch``; explicit arguments
(CLI flags) override it. ``--profile android-cpu-int8`` finds ``export/android-cpu-int8.yaml``
in the working directory or beside the edgekit package; a path works too.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ..errors import EdgekitError, suggest

KEYS = {"targets", "precision", "nhwc", "calib", "calib_size", "parity_size", "opset", "dynamic_batch",
        "max_batch", "description", "device"}


def profile_dirs() -> list[Path]:
    return [Path.cwd() / "export", Path(__file__).resolve().parents[2] / "export"]


def available_profiles() -> list[str]:
    names: set[str] = set()
    for d in profile_dirs():
        if d.is_dir():
            names.update(p.stem for p in d.glob("*.yaml"))
    return sorted(names)


def load_profile(name: str | Path) -> dict[str, Any]:
    """Read a profile by name or path; unknown keys are an error (a typo would silently do nothing)."""
    path = Path(name)
    if not path.is_file():
        found = [d / f"{name}.yaml" for d in profile_dirs() if (d / f"{name}.yaml").is_file()]
        if not found:
            raise suggest(str(name), available_profiles(), "export profile")
        path = found[0]
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise EdgekitError(f"profile {path} is not valid YAML: {str(exc).splitlines()[0]}") from exc
    if not isinstance(data, dict):
        raise EdgekitError(f"profile {path} must be a mapping of export options")
    unknown = set(data) - KEYS
    if unknown:
        raise EdgekitError(f"profile {path}: unknown key(s) {', '.join(sorted(unknown))}; "
                           f"allowed: {', '.join(sorted(KEYS))}")
    data.pop("description", None)
    data.pop("device", None)
    return {**data, "profile": path.stem}
