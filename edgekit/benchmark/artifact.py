"""What is being benchmarked: an artifact file, its format, its manifest and its input.

Formats are known by extension: ``.pt`` edgekit checkpoints (torch), ``.onnx``,
``.tflite``, ``.engine`` / ``.plan`` (TensorRT) and ``.mlpackage`` / ``.mlmodel``
(CoreML). The export stage writes a JSON **manifest** next to each artifact with its
precision, input spec and labels; when one is found it is the source of truth for the
input shape, layout and preprocessing. Without one, the shape comes from the model
file itself (the runner reads it) and the precision is inferred from the weights.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import EdgekitError

FORMATS = {".pt": "torch", ".pth": "torch", ".onnx": "onnx", ".tflite": "tflite", ".engine": "tensorrt",
           ".plan": "tensorrt", ".mlpackage": "coreml", ".mlmodel": "coreml"}
# The runtime each format runs on when --runtime auto.
DEFAULT_RUNTIME = {"torch": "torch", "onnx": "onnxruntime", "tflite": "litert", "tensorrt": "tensorrt",
                   "coreml": "coreml"}
_PRECISION_SUFFIX = re.compile(r"[._-](int8|uint8|fp16|float16|fp32|float32|dynamic|qat|ptq)$", re.I)


@dataclass
class Artifact:
    """One file to benchmark, with what its manifest (if any) says about it."""

    path: Path
    format: str
    manifest: dict[str, Any] = field(default_factory=dict)
    manifest_path: Path | None = None

    @property
    def size_bytes(self) -> int:
        if self.path.is_dir():  # .mlpackage bundles
            return sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())
        size = self.path.stat().st_size
        external = self.path.with_name(self.path.name + ".data")  # ONNX weights saved beside the graph
        return size + (external.stat().st_size if self.format == "onnx" and external.is_file() else 0)

    @property
    def model(self) -> str:
        """The model this artifact is a form of: the manifest's source checkpoint name, else
        the file stem without a precision suffix (``resnet18_int8.tflite`` -> ``resnet18``).
        Rows of one model are compared against its torch baseline in reports."""
        m = self.manifest
        for key in ("model", "name"):
            if isinstance(m.get(key), str) and m[key]:
                return m[key]
        src = m.get("source") or m.get("checkpoint") or {}
        src_path = src.get("path") if isinstance(src, dict) else src
        if isinstance(src_path, str) and src_path:
            return Path(src_path).stem
        return _PRECISION_SUFFIX.sub("", self.path.stem)

    @property
    def precision(self) -> str | None:
        p = self.manifest.get("precision")
        return str(p) if p else None

    @property
    def input_spec(self) -> dict[str, Any]:
        spec = self.manifest.get("input_spec") or self.manifest.get("input") or {}
        return dict(spec) if isinstance(spec, dict) else {}

    @property
    def labels(self) -> list[str]:
        return list(self.manifest.get("labels") or [])


def _manifest_candidates(path: Path) -> list[Path]:
    stem = path.name.rsplit(".", 1)[0]
    return [path.with_name(path.name + ".json"), path.with_name(stem + ".json"),
            path.with_name(stem + ".manifest.json"), path.with_name("manifest.json")]


def _refers_to(manifest: dict[str, Any], path: Path) -> bool:
    """A shared manifest.json may list several artifacts; pick the entry naming this file."""
    for key in ("file", "artifact", "path"):
        if isinstance(manifest.get(key), str):
            return Path(manifest[key]).name == path.name
    return True


def find_manifest(path: Path) -> tuple[dict[str, Any], Path | None]:
    """The export manifest describing ``path`` ({} when there is none)."""
    for cand in _manifest_candidates(path):
        if not cand.is_file() or cand == path:
            continue
        try:
            data = json.loads(cand.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if not isinstance(data, dict):
            continue
        entries = data.get("artifacts")
        if isinstance(entries, list):  # one manifest for a whole export
            for entry in entries:
                if isinstance(entry, dict) and _refers_to(entry, path):
                    merged = {k: v for k, v in data.items() if k != "artifacts"}
                    return {**merged, **entry}, cand
            continue
        if _refers_to(data, path):
            return data, cand
    return {}, None


def resolve_artifact(path: str | Path) -> Artifact:
    """Check the file exists and has a known format; attach its manifest."""
    p = Path(path)
    if not p.exists():
        raise EdgekitError(f"artifact not found: {p}")
    fmt = FORMATS.get(p.suffix.lower())
    if fmt is None:
        raise EdgekitError(f"{p}: unknown artifact type {p.suffix or '(no extension)'!r}; expected one of "
                           + ", ".join(sorted(FORMATS)))
    manifest, mpath = find_manifest(p) if fmt != "torch" else ({}, None)
    return Artifact(p, fmt, manifest, mpath)
