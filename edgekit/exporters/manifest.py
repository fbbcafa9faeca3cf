"""The export manifest: one JSON record per artifact, and an index of all artifacts in the folder.

Each artifact ``X`` gets ``X.json`` beside it, and ``manifest.json`` in the output folder
lists every artifact written there (entries replaced by file name on re-export). A
record holds what an app or a benchmark needs without the checkpoint: target,
precision, file, size, sha256, input/output tensors, input spec with preprocessing,
labels, task, parity numbers, calibration, the source checkpoint, and the versions of
torch, the converter and the runtime.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from ..fileio import write_json

FORMAT = "edgekit.export"
VERSION = 1

# Packages whose versions matter for each target: converter(s), then runtime.
PACKAGES = {"onnx": ["torch", "onnx", "onnxscript", "onnxruntime"],
            "tflite": ["torch", "litert-torch", "ai-edge-quantizer", "ai-edge-litert"],
            "coreml": ["torch", "coremltools"],
            "tensorrt": ["torch", "onnx", "onnxruntime", "tensorrt"]}


def package_versions(target: str) -> dict[str, str]:
    out = {}
    for pkg in ["edgekit"] + PACKAGES.get(target, []):
        try:
            out[pkg] = importlib_metadata.version(pkg)
        except importlib_metadata.PackageNotFoundError:
            continue
    return out


def artifact_size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def artifact_sha256(path: Path) -> str:
    """sha256 of a file, or of a bundle folder (.mlpackage): relative paths and bytes, sorted."""
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        if path.is_dir():
            h.update(str(f.relative_to(path)).encode() + b"\0")
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def manifest_path(artifact: Path) -> Path:
    return artifact.with_name(artifact.name + ".json")


def read_manifest(artifact: str | Path) -> dict[str, Any]:
    """The manifest written beside ``artifact`` ({} when there is none)."""
    p = manifest_path(Path(artifact))
    try:
        return json.loads(p.read_text()) if p.is_file() else {}
    except (OSError, json.JSONDecodeError):
        return {}


def write_manifest(record: dict[str, Any], artifact: Path) -> None:
    """Write ``X.json`` and update the folder's ``manifest.json`` index."""
    write_json(manifest_path(artifact), record)
    os.chmod(manifest_path(artifact), 0o644)  # readable like the artifact beside it
    index_path = artifact.parent / "manifest.json"
    try:
        index = json.loads(index_path.read_text()) if index_path.is_file() else {}
    except (OSError, json.JSONDecodeError):
        index = {}
    entries = [e for e in index.get("artifacts", []) if isinstance(e, dict) and e.get("file") != record["file"]]
    write_json(index_path, {"format": FORMAT, "version": VERSION, "updated": _now(),
                            "artifacts": entries + [record]})
    os.chmod(index_path, 0o644)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def build_record(**fields: Any) -> dict[str, Any]:
    return {"format": FORMAT, "version": VERSION, "created": _now(), **fields}
