"""What is being benchmarked: an artifact file, its format, its manifest and its input.

The format comes from :func:`edgekit.formats.detect`: exported artifacts by extension,
edgekit checkpoints by their content whatever their name. The export stage writes a JSON
**manifest** next to each artifact with its precision, input spec, labels and source
checkpoint (read by :func:`edgekit.exporters.manifest.find_manifest`); when one is found
it is the source of truth for the input shape, layout and preprocessing. Without one,
the shape comes from the model file itself (the runner reads it) and the precision is
inferred from the weights.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import formats
from ..exporters.manifest import find_manifest

LINEAGE_KEYS = ("sha256", "name", "parent_sha256", "root_sha256", "root_name")
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

    @property
    def lineage(self) -> dict[str, Any] | None:
        """The source checkpoint's lineage (own, parent and root hashes and names) as the
        manifest records it; None without one (torch rows get it from the checkpoint)."""
        src = self.manifest.get("source")
        lineage = src.get("lineage") if isinstance(src, dict) else None
        if not isinstance(lineage, dict):
            return None
        return {k: lineage.get(k) for k in LINEAGE_KEYS}


def resolve_artifact(path: str | Path) -> Artifact:
    """Check the file exists and has a known format; attach its manifest."""
    p = Path(path)
    fmt = formats.detect(p)
    manifest, mpath = find_manifest(p) if fmt.target else ({}, None)
    return Artifact(p, fmt.name, manifest, mpath)


def check_loadable(art: Artifact) -> None:
    """Refuse, before anything is timed, a checkpoint that fails its schema, trust rule or checksum
    (:func:`edgekit.load_checkpoint`): bad input, one line. An artifact a runtime cannot open is a
    failed row instead, like any other runtime failure (the other rows are still measured)."""
    if art.format == "torch":
        from ..checkpoint import load_checkpoint

        load_checkpoint(art.path)
