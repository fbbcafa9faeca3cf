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

from ..errors import EdgekitError
from ..shipped import find_shipped, shipped_dirs, shipped_names

KEYS = {"targets", "precision", "nhwc", "calib", "calib_size", "parity_size", "opset", "dynamic_batch",
        "max_batch", "description", "device"}


def profile_dirs() -> list[Path]:
    return shipped_dirs("export")


def available_profiles() -> list[str]:
    return shipped_names("export")


def load_profile(name: str | Path) -> dict[str, Any]:
    """Read a profile by name or path; unknown keys are an error (a typo would silently do nothing)."""
    path = find_shipped(name, "export", "export profile")
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
