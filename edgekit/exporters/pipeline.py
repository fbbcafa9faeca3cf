"""Export stage: ONNX, TFLite/LiteRT, Core ML and TensorRT artifacts, each behind a parity gate.

:func:`export` turns any checkpoint the registry rebuilds (pruned and distilled ones
included) into deployable files::

    edgekit.export("model.pt", ["onnx", "tflite"], precision="int8", output_dir="out")

For every (target, precision) pair it converts into a private staging folder, runs the
artifact on real validation images through its own runtime, compares with PyTorch
(:mod:`edgekit.exporters.parity`), and only when the gate passes moves the file into
``output_dir`` and writes its manifest (:mod:`edgekit.exporters.manifest`). A failed
conversion or gate leaves nothing behind. :func:`verify` re-runs the gate later.

A label-distribution checkpoint exports its one ``[N, K + 1]`` output unchanged
(distribution, then expectation); the gate compares both parts and the MAE against the
validation labels, and the manifest and the artifact's embedded metadata record the
output layout and the task (label range, loss, flip_test).
"""
from __future__ import annotations

import importlib
import logging
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from .. import __version__, formats
from ..checkpoint import Checkpoint, load_checkpoint
from ..data import DataBundle
from ..data.transforms import is_tabular
from ..data.transforms import preprocessing as input_preprocessing
from ..errors import EdgekitError, suggest
from ..fileio import check_writable
from ..formats import PRECISIONS, TARGETS, available_targets
from ..numbers import optional, positive_int
from ..tasks import get_task
from . import parity as parity_mod
from .manifest import (artifact_sha256, artifact_size, build_record, find_manifest, output_layout, package_versions,
                       write_manifest)
from .profiles import load_profile
from .quiet import third_party_output
from .runtimes import load_runner
from .samples import checkpoint_data, real_inputs

log = logging.getLogger("edgekit.export")

__all__ = ["export", "verify", "available_targets", "load_runner", "TARGETS", "PRECISIONS"]


def _given(*values: Any) -> Any:
    """The first value that is not None: an explicit 0 is bad input, not "not given"."""
    return next((v for v in values if v is not None), None)


def _as_list(value: str | list[str] | tuple[str, ...] | None) -> list[str]:
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    return [v.strip().lower() for v in items if v and v.strip()]


def _resolve_targets(targets: list[str]) -> list[str]:
    out: list[str] = []
    for t in targets:
        if t == "all":
            avail = available_targets()
            skipped = [str(formats.export_unavailable(x)) for x in TARGETS if x not in avail]
            if skipped:
                log.warning("target 'all' skips what this machine cannot produce: %s", "; ".join(skipped))
            out += avail
        else:
            formats.target(t)  # unknown names: one line with the closest
            why = formats.export_unavailable(t)
            if why:
                raise EdgekitError(why)
            out.append(t)
    return list(dict.fromkeys(out))


def _jobs(targets: list[str], precisions: list[str]) -> list[tuple[str, str]]:
    jobs = []
    for t in targets:
        for p in precisions or [formats.target(t).precision]:
            if p not in PRECISIONS:
                raise suggest(p, PRECISIONS, "precision")
            jobs.append((t, p))
    return list(dict.fromkeys(jobs))


def artifact_name(stem: str, target: str, precision: str, nhwc: bool = False) -> str:
    layout = ".nhwc" if nhwc and target == "tflite" else ""
    return f"{stem}{layout}.{precision}{formats.target(target).extensions[0]}"


@contextmanager
def _staging(output_dir: Path) -> Iterator[Path]:
    """A private folder inside ``output_dir`` (same filesystem, so the final move is a rename)."""
    output_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".edgekit-export-", dir=output_dir))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _move_into_place(staged: Path, final: Path) -> None:
    if final.exists():  # overwrite was checked up front (force)
        if final.is_dir():
            old = final.with_name(f".{final.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
            os.replace(staged, final)
            shutil.rmtree(old, ignore_errors=True)
            return
    os.replace(staged, final)


def _torch_outputs(model: torch.nn.Module, x: torch.Tensor, batch: int = 64) -> np.ndarray:
    with torch.no_grad():
        return torch.cat([model(x[i:i + batch]).float() for i in range(0, len(x), batch)]).numpy()


def _convert(target: str, model: torch.nn.Module, sample: torch.Tensor, out: Path, precision: str,
             calib: torch.Tensor | None, meta: dict[str, Any], opts: dict[str, Any]) -> dict[str, Any]:
    """Run the target's exporter (:mod:`edgekit.formats` names it) with the options it takes."""
    fmt = formats.target(target)
    exporter = importlib.import_module(str(fmt.exporter))
    kwargs = {k: opts[k] for k in fmt.options if opts.get(k) is not None}
    return exporter.convert(model, sample, out, precision=precision, calib=calib, meta=meta, **kwargs)


def _label_task(ckpt: Checkpoint) -> dict[str, Any]:
    """The label-distribution task record of ``ckpt`` ({} for other tasks)."""
    return get_task(ckpt.task).record(ckpt.extra)


def _check(target: str, path: Path, precision: str, ckpt: Checkpoint, x: torch.Tensor, ref: np.ndarray,
           targets: list[Any], thresholds: dict[str, float] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run the parity gate, or, where the format's runtime cannot run here but its exporter can
    check the file's structure (Core ML off macOS), that check. Returns (parity, io)."""
    fmt = formats.target(target)
    exporter = importlib.import_module(str(fmt.exporter))
    if formats.runtime_unavailable(fmt.runtime) and hasattr(exporter, "structural_check"):
        res = exporter.structural_check(path, ckpt.model, x[:1], int(ref.reshape(len(ref), -1).shape[1]))
        io = {"inputs": [{"name": "input", "shape": res["input_shape"], "dtype": "float32", "layout": "NCHW"}],
              "outputs": [{"name": "output", "shape": res["output_shape"], "dtype": "float32"}]}
        return res, io
    runner = load_runner(path)
    out = runner(x.numpy())
    nums = parity_mod.parity_numbers(ref, out, ckpt.task, targets, _label_task(ckpt).get("label_range"))
    res = {"mode": "numeric", "runtime": runner.runtime,
           **parity_mod.gate(path.name, precision, nums, thresholds, ckpt.task)}
    desc = runner.describe()
    inp: dict[str, Any] = {"name": getattr(runner, "input_name", "input"), "shape": desc["input_shape"],
                           "dtype": desc["input_dtype"], "layout": desc["layout"]}
    if hasattr(runner, "inp") and np.dtype(runner.inp["dtype"]).kind != "f":
        inp["quantization"] = {"scale": float(runner.inp["quantization"][0]),
                               "zero_point": int(runner.inp["quantization"][1])}
    batch = desc["input_shape"][0] if desc["input_shape"] else 1
    io = {"inputs": [inp], "outputs": [{"name": "output", "shape": [batch, *list(out.shape[1:])],
                                        "dtype": "float32"}]}
    return res, io


def export(checkpoint: str | Path | Checkpoint, targets: str | list[str] | None = None, *,
           precision: str | list[str] | None = None, output_dir: str | Path, calib: str | DataBundle | None = None,
           calib_size: int | None = None, parity_size: int | None = None, profile: str | Path | None = None,
           nhwc: bool | None = None, opset: int | None = None, dynamic_batch: bool | None = None,
           max_batch: int | None = None, name: str | None = None, force: bool = False,
           thresholds: dict[str, float] | None = None, streaming: bool = False) -> list[dict[str, Any]]:
    """Export ``checkpoint`` to each target x precision; return one manifest dict per artifact.

    ``targets``: onnx, tflite, coreml, tensorrt, or all (every target this machine can
    produce); a list or comma-separated string; default onnx (or the profile's).
    ``precision``: fp32, fp16 or int8 (or a list); default per target: fp32 for onnx and
    tflite, fp16 for coreml and tensorrt. ``calib``: data spec for int8 calibration and
    the parity gate (default: the dataset in the checkpoint's provenance); calibration
    reads ``calib_size`` training images, the gate ``parity_size`` validation images.
    ``profile``: a deployment profile name or YAML path; explicit arguments override it.
    ``nhwc``: TFLite takes float NHWC input. ``streaming``: export the online model of a
    causal TSM checkpoint, one frame per call with its states as inputs and outputs
    (:mod:`edgekit.exporters.streaming`; sizes then count whole clips, default 32). Raises
    :class:`EdgekitError` on any failure, leaving no partial file.
    """
    prof = load_profile(profile) if profile else {}
    targets_l = _resolve_targets(_as_list(targets) or _as_list(prof.get("targets")) or ["onnx"])
    jobs = _jobs(targets_l, _as_list(precision) or _as_list(prof.get("precision")))
    calib = calib or prof.get("calib")
    clip_sizes = (_given(calib_size, prof.get("calib_size")), _given(parity_size, prof.get("parity_size")))
    calib_size = positive_int("calib_size", _given(calib_size, prof.get("calib_size"), 256))
    parity_size = positive_int("parity_size", _given(parity_size, prof.get("parity_size"), 256))
    opts = {"nhwc": prof.get("nhwc", False) if nhwc is None else nhwc,
            "opset": optional(positive_int, "opset", _given(opset, prof.get("opset"))),
            "dynamic_batch": prof.get("dynamic_batch", True) if dynamic_batch is None else dynamic_batch,
            "max_batch": optional(positive_int, "max_batch", _given(max_batch, prof.get("max_batch")))}

    ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint)
    if opts["nhwc"] and is_tabular(ckpt.input_spec):
        raise EdgekitError("--nhwc is an image layout; this model takes feature vectors [N, features]")
    stem = name or (Path(ckpt.path).stem if ckpt.path else ckpt.arch)
    out_dir = check_writable(output_dir, folder=True, inputs=[ckpt])
    finals = {job: out_dir / artifact_name(f"{stem}.stream" if streaming else stem, *job, nhwc=opts["nhwc"])
              for job in jobs}
    for path in finals.values():
        if path.exists() and not force:
            raise EdgekitError(f"{path} already exists; pass --force to overwrite it")
    if streaming:
        from .streaming import export_streaming

        return export_streaming(ckpt, finals, out_dir=out_dir, stem=stem, calib=calib, calib_size=clip_sizes[0],
                                parity_size=clip_sizes[1], thresholds=thresholds, opts=opts,
                                profile=prof.get("profile"))

    bundle = checkpoint_data(ckpt, calib)
    model = ckpt.model.eval().cpu()
    x_val, y_val = real_inputs(ckpt, bundle, "val", parity_size)
    ref = _torch_outputs(model, x_val)
    calib_x = real_inputs(ckpt, bundle, "train", calib_size, seed=1)[0] \
        if any(p == "int8" for _, p in jobs) else None
    preprocessing = input_preprocessing(ckpt.input_spec)
    label_task = _label_task(ckpt)
    layout_out = output_layout(ckpt.task, int(ref.reshape(len(ref), -1).shape[1]), label_task.get("label_range"))
    label_fields = {"output_layout": layout_out, "label_distribution": label_task} if layout_out else {}

    records = []
    for (target, prec), final in finals.items():
        layout = "NHWC" if opts["nhwc"] and target == "tflite" else "NCHW"
        meta = {"model": stem, "task": ckpt.task, "labels": list(ckpt.labels), "target": target,
                "precision": prec, "layout": layout, "preprocessing": {**preprocessing, "layout": layout},
                "input_shape": list(ckpt.input_spec.get("shape") or x_val.shape[1:]),
                "source_sha256": ckpt.sha256, "producer": f"edgekit {__version__}", **label_fields}
        log.info("exporting %s (%s, %s)", final.name, target, prec)
        with _staging(out_dir) as stage:
            staged = stage / final.name
            t0 = time.perf_counter()
            with third_party_output(log):
                extras = _convert(target, model, x_val[:1], staged, prec, calib_x, meta, opts)
            seconds = time.perf_counter() - t0
            with third_party_output(log):
                parity, io = _check(target, staged, prec, ckpt, x_val, ref, y_val, thresholds)
            _move_into_place(staged, final)
        shape = list(ckpt.input_spec.get("shape") or x_val.shape[1:])
        input_spec = {**ckpt.input_spec, "layout": layout,
                      "shape": [shape[1], shape[2], shape[0]] if layout == "NHWC" else shape}
        record = build_record(
            model=stem, target=target, precision=prec, file=final.name, path=str(final.resolve()),
            size_bytes=artifact_size(final), sha256=artifact_sha256(final), task=ckpt.task,
            labels=list(ckpt.labels), input_spec=input_spec, preprocessing=meta["preprocessing"], **io,
            parity=parity, export_seconds=round(seconds, 3),
            calibration={"data": bundle.spec, "split": "train", "n": len(calib_x)} if prec == "int8" else None,
            parity_data={"data": bundle.spec, "split": "val", "n": len(x_val)},
            source={"path": str(ckpt.path) if ckpt.path else None, "sha256": ckpt.sha256, "arch": ckpt.arch,
                    "pruned": bool(ckpt.channel_plan), "metrics": ckpt.metrics, "lineage": ckpt.lineage},
            data=ckpt.data_record, **label_fields,
            profile=prof.get("profile"), converter=extras, versions=package_versions(target))
        write_manifest(record, final)
        records.append(record)
    return records


def verify(artifact: str | Path, checkpoint: str | Path | Checkpoint, data: str | DataBundle | None = None, *,
           n: int = 256, precision: str | None = None, thresholds: dict[str, float] | None = None) -> dict[str, Any]:
    """Re-run the parity gate of ``artifact`` against ``checkpoint`` on ``data``'s validation split.

    The precision (hence thresholds) comes from the artifact's manifest, else from its
    name (``model.int8.tflite``). Returns the parity dict; raises :class:`EdgekitError`
    with the numbers when the gate fails. Core ML off macOS gets the structural check. A
    streaming artifact runs ``n`` whole validation clips frame by frame, its states fed back
    as its manifest wires them (:func:`edgekit.exporters.streaming.verify_streaming`).
    """
    n = positive_int("n", n)
    path = Path(artifact)
    fmt = formats.detect(path)
    if fmt.target is None:
        raise EdgekitError(f"{path} is an edgekit checkpoint, not an exported artifact; verify compares an "
                           "artifact (" + ", ".join(formats.artifact_extensions()) + ") with its checkpoint")
    target = fmt.target
    manifest, _ = find_manifest(path)
    prec = precision or manifest.get("precision") or formats.precision_in_name(path) or fmt.precision
    ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint)
    if manifest.get("streaming"):  # whole clips frame by frame, states fed back as the manifest wires them
        from .streaming import verify_streaming

        with third_party_output(log):
            res = verify_streaming(path, manifest, ckpt, data, n, prec, thresholds)
        return {"artifact": str(path), "target": target, "precision": prec, **res}
    bundle = checkpoint_data(ckpt, data)
    x_val, y_val = real_inputs(ckpt, bundle, "val", n)
    ref = _torch_outputs(ckpt.model.eval().cpu(), x_val)
    with third_party_output(log):
        res, _ = _check(target, path, prec, ckpt, x_val, ref, y_val, thresholds)
    return {"artifact": str(path), "target": target, "precision": prec, "data": bundle.spec, **res}

