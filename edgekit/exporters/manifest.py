"""The export manifest: one JSON record per artifact, and an index of all artifacts in the folder.

Each artifact ``X`` gets ``X.json`` beside it, and ``manifest.json`` in the output folder
lists every artifact written there (entries replaced by file name on re-export). A
record holds what an app or a benchmark needs without the checkpoint: target,
precision, file, size, sha256, input/output tensors, input spec with preprocessing,
labels, task, parity numbers, calibration, the source checkpoint with its lineage, and
the versions of torch, the converter and the runtime. :func:`find_manifest` is the one
reader, for verify and bench alike.

A label-distribution model (task ``label_distribution``) also records its
``output_layout`` (:func:`output_layout`: which columns of the one output tensor hold the
distribution and which the expectation, over which label range) and its task record
(``label_distribution``: label range, loss, lambda, sigma, flip_test), so an app reads the
prediction without the checkpoint.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from .. import formats
from ..fileio import write_json

FORMAT = "edgekit.export"
VERSION = 1


def package_versions(target: str) -> dict[str, str]:
    """Versions of edgekit and of the packages that matter for ``target`` (converters, runtime)."""
    out = {}
    for pkg in ["edgekit", *formats.target(target).packages]:
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


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None


def find_manifest(artifact: str | Path) -> tuple[dict[str, Any], Path | None]:
    """The manifest describing ``artifact`` and the file it came from (``({}, None)`` if none).

    The one reader of manifests: ``X.json`` beside the artifact, else the entry naming
    ``X`` in the folder's ``manifest.json`` index (merged over the index's own fields)."""
    path = Path(artifact)
    own = manifest_path(path)
    record = _read_json(own)
    if isinstance(record, dict) and Path(str(record.get("file") or path.name)).name == path.name:
        return record, own
    index_path = path.parent / "manifest.json"
    index = _read_json(index_path)
    if isinstance(index, dict) and isinstance(index.get("artifacts"), list):
        for entry in index["artifacts"]:
            if isinstance(entry, dict) and Path(str(entry.get("file") or "")).name == path.name:
                shared = {k: v for k, v in index.items() if k != "artifacts"}
                return {**shared, **entry}, index_path
    return {}, None


def write_manifest(record: dict[str, Any], artifact: Path) -> None:
    """Write ``X.json`` and update the folder's ``manifest.json`` index."""
    write_record(record, artifact)
    update_index(record, artifact)


def write_record(record: dict[str, Any], artifact: Path) -> None:
    """Write ``X.json``, the record of ``artifact``, atomically (the export loop writes it before
    the artifact appears: :func:`edgekit.exporters.pipeline.publish`)."""
    write_json(manifest_path(artifact), record)
    os.chmod(manifest_path(artifact), 0o644)  # readable like the artifact beside it


def update_index(record: dict[str, Any], artifact: Path) -> None:
    """Replace the entry of ``record['file']`` in the folder's ``manifest.json`` index."""
    index_path = artifact.parent / "manifest.json"
    index = _read_json(index_path)
    index = index if isinstance(index, dict) else {}
    entries = [e for e in index.get("artifacts", []) if isinstance(e, dict) and e.get("file") != record["file"]]
    write_json(index_path, {"format": FORMAT, "version": VERSION, "updated": _now(),
                            "artifacts": entries + [record]})
    os.chmod(index_path, 0o644)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def output_layout(task: str, width: int, label_range: str | None) -> dict[str, Any] | None:
    """Where the output of a ``task`` model ``width`` columns wide keeps its parts, as the task
    says (:meth:`edgekit.tasks.Task.output_layout`; ``None`` for one plain tensor). A
    label-distribution output: distribution columns, expectation column (the prediction, always
    the last) and label range."""
    from ..tasks import get_task

    return get_task(task).output_layout(width, label_range)


def build_record(**fields: Any) -> dict[str, Any]:
    return {"format": FORMAT, "version": VERSION, "created": _now(), **fields}
