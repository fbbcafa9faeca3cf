"""Export stage: ONNX, TFLite/LiteRT, Core ML and TensorRT artifacts, each behind a parity gate.

:func:`export` turns any checkpoint the registry rebuilds (pruned and distilled ones
included) into deployable files::

    edgekit.export("model.pt", ["onnx", "tflite"], precision="int8", output_dir="out")

One loop (:func:`export_loop`) serves every kind of export: for each (target, precision)
pair it converts into a private staging folder, runs the artifact on real data through its
own runtime, compares with PyTorch (:mod:`edgekit.exporters.parity`), and only when the gate
passes writes its manifest and moves the file into ``output_dir`` (:func:`publish`). What
differs between kinds is an object with ``meta``, ``convert``, ``check`` and ``provenance``:
:class:`Plain` (a batch of images, clips or feature rows in, one output) and, for
``--streaming``, :class:`edgekit.exporters.streaming.Streaming` (the online model of a
causal TSM, frame by frame). Which formats can stream is the format table's
(:mod:`edgekit.formats`). :func:`verify` re-runs the gate later.

Nothing unverified survives: a failed conversion or gate removes its staging folder, and
staging folders left by a killed run (``.edgekit-export-PID-*`` whose process is gone) are
removed by the next export into the same folder. The order in which a verified artifact
appears is fixed (:func:`publish`): its record ``X.json`` first, then the artifact by one
rename, then the folder's ``manifest.json`` index, so an artifact in the folder always has
its own manifest beside it, describing it; a kill in between leaves at worst a record
without an artifact (which a rerun replaces), never an artifact without a record.

A label-distribution checkpoint exports its one ``[N, K + 1]`` output unchanged
(distribution, then expectation); the gate compares both parts and the MAE against the
validation labels, and the manifest and the artifact's embedded metadata record the
output layout and the task (label range, loss, flip_test).
"""
from __future__ import annotations

import importlib
import logging
import os
import re
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Protocol, Sequence

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
from ..numbers import positive_int
from ..stage_config import default
from ..tasks import get_task
from . import parity as parity_mod
from .config import SAMPLE_IMAGES, ExportConfig
from .manifest import (artifact_sha256, artifact_size, build_record, find_manifest, output_layout, package_versions,
                       update_index, write_record)
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


STAGING = ".edgekit-export-"
_STAGING_PID = re.compile(re.escape(STAGING) + r"(\d+)-")


@contextmanager
def _staging(output_dir: Path) -> Iterator[Path]:
    """A private folder inside ``output_dir`` (same filesystem, so the final move is a rename),
    named after this process (``.edgekit-export-PID-*``) and removed however the block ends."""
    output_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{STAGING}{os.getpid()}-", dir=output_dir))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists, owned by someone else
        return True
    return True


def clean_stale_staging(output_dir: Path) -> list[Path]:
    """Remove the staging folders a killed export left in ``output_dir`` (their process is gone,
    or their name carries no process id, as older edgekit named them); those of running exports stay."""
    stale = []
    if output_dir.is_dir():
        for p in output_dir.glob(f"{STAGING}*"):
            m = _STAGING_PID.match(p.name)
            pid = int(m.group(1)) if m else None
            if p.is_dir() and (pid is None or (pid != os.getpid() and not _alive(pid))):
                shutil.rmtree(p, ignore_errors=True)
                stale.append(p)
    if stale:
        log.info("removed %d stale staging folder(s) in %s: %s", len(stale), output_dir,
                 ", ".join(p.name for p in stale))
    return stale


def publish(record: dict[str, Any], staged: Path, final: Path) -> None:
    """Put a verified artifact in place, its manifest first.

    1. an artifact already at ``final`` (``--force``, checked up front) is moved into the
       staging folder, to go with it: from here no artifact is at ``final``, so its old
       record describes nothing a reader can open;
    2. the record ``X.json`` is written (atomically) for the new artifact;
    3. the artifact is renamed into place (one ``os.replace``: a file or a bundle folder
       appears whole);
    4. the folder's ``manifest.json`` index is updated.

    So an artifact at ``final`` always has its own, matching ``X.json`` beside it."""
    if final.exists() or final.is_symlink():
        os.replace(final, staged.parent / f".replaced-{final.name}")
    write_record(record, final)
    os.replace(staged, final)
    update_index(record, final)


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


class ExportKind(Protocol):
    """What one kind of export adds to :func:`export_loop` (:class:`Plain`, and
    :class:`edgekit.exporters.streaming.Streaming` for ``--streaming``)."""

    suffix: str  # added to the artifact's stem (".stream")
    note: str  # added to the log line

    def meta(self, target: str, precision: str) -> dict[str, Any]:
        """Metadata the artifact embeds, beside the loop's common fields."""

    def convert(self, target: str, precision: str, out: Path, meta: dict[str, Any],
                options: dict[str, Any]) -> dict[str, Any]:
        """Write the artifact to ``out`` (``options``: the export options its format takes); the converter's extras."""

    def check(self, target: str, precision: str, staged: Path, meta: dict[str, Any],
              extras: dict[str, Any]) -> dict[str, Any]:
        """Run the gate on ``staged`` (raising when it fails); the record's input spec, tensors and parity."""

    def provenance(self, target: str, precision: str) -> dict[str, Any]:
        """The record's calibration, parity data, source and data fields."""


class Plain:
    """The plain kind of export: the checkpoint's model, a batch of images (clips, feature rows)
    in, one output out; the gate runs ``parity_size`` validation samples through the artifact's
    runtime (:func:`_check`), int8 calibrates on ``calib_size`` training samples."""

    suffix = ""
    note = ""

    def __init__(self, ckpt: Checkpoint, precisions: Sequence[str], *, calib: str | DataBundle | None,
                 calib_size: int, parity_size: int, thresholds: dict[str, float] | None,
                 opts: dict[str, Any]) -> None:
        self.ckpt, self.thresholds, self.nhwc = ckpt, thresholds, bool(opts.get("nhwc"))
        self.bundle = bundle = checkpoint_data(ckpt, calib)
        self.model = ckpt.model.eval().cpu()
        self.x_val, self.y_val = real_inputs(ckpt, bundle, "val", parity_size)
        self.ref = _torch_outputs(self.model, self.x_val)
        self.calib_x = real_inputs(ckpt, bundle, "train", calib_size, seed=1)[0] if "int8" in precisions else None
        self.preprocessing = input_preprocessing(ckpt.input_spec)
        label_task = _label_task(ckpt)
        layout_out = output_layout(ckpt.task, int(self.ref.reshape(len(self.ref), -1).shape[1]),
                                   label_task.get("label_range"))
        self.label_fields = {"output_layout": layout_out, "label_distribution": label_task} if layout_out else {}
        self.shape = list(ckpt.input_spec.get("shape") or self.x_val.shape[1:])

    def _layout(self, target: str) -> str:
        return "NHWC" if self.nhwc and target == "tflite" else "NCHW"

    def meta(self, target: str, precision: str) -> dict[str, Any]:
        layout = self._layout(target)
        return {"layout": layout, "preprocessing": {**self.preprocessing, "layout": layout},
                "input_shape": self.shape, **self.label_fields}

    def convert(self, target: str, precision: str, out: Path, meta: dict[str, Any],
                options: dict[str, Any]) -> dict[str, Any]:
        return _convert(target, self.model, self.x_val[:1], out, precision, self.calib_x, meta, options)

    def check(self, target: str, precision: str, staged: Path, meta: dict[str, Any],
              extras: dict[str, Any]) -> dict[str, Any]:
        parity, io = _check(target, staged, precision, self.ckpt, self.x_val, self.ref, self.y_val, self.thresholds)
        layout, shape = self._layout(target), self.shape
        input_spec = {**self.ckpt.input_spec, "layout": layout,
                      "shape": [shape[1], shape[2], shape[0]] if layout == "NHWC" else shape}
        return {"input_spec": input_spec, "preprocessing": meta["preprocessing"], **io, "parity": parity}

    def provenance(self, target: str, precision: str) -> dict[str, Any]:
        ckpt, bundle = self.ckpt, self.bundle
        return {"calibration": {"data": bundle.spec, "split": "train", "n": len(self.calib_x)}
                if precision == "int8" and self.calib_x is not None else None,
                "parity_data": {"data": bundle.spec, "split": "val", "n": len(self.x_val)},
                "source": {"path": str(ckpt.path) if ckpt.path else None, "sha256": ckpt.sha256, "arch": ckpt.arch,
                           "pruned": bool(ckpt.channel_plan), "metrics": ckpt.metrics, "lineage": ckpt.lineage},
                "data": ckpt.data_record, **self.label_fields}


def _options(target: str, opts: dict[str, Any]) -> dict[str, Any]:
    """The export options the format of ``target`` takes (:mod:`edgekit.formats`), those that are set."""
    return {k: opts[k] for k in formats.target(target).options if opts.get(k) is not None}


def export_loop(kind: ExportKind, ckpt: Checkpoint, finals: dict[tuple[str, str], Path], *, stem: str,
                opts: dict[str, Any], profile: str | None = None) -> list[dict[str, Any]]:
    """Export every (target, precision) of ``finals`` (their final paths, overwrite checked):
    stage -> convert -> parity gate -> manifest -> move into place (:func:`publish`) -> record.
    Stale staging folders of the output folder go first (:func:`clean_stale_staging`)."""
    records = []
    for out_dir in {p.parent for p in finals.values()}:
        clean_stale_staging(out_dir)
    for (target, prec), final in finals.items():
        meta = {"model": stem, "task": ckpt.task, "labels": list(ckpt.labels), "target": target, "precision": prec,
                **kind.meta(target, prec), "source_sha256": ckpt.sha256, "producer": f"edgekit {__version__}"}
        log.info("exporting %s (%s, %s%s)", final.name, target, prec, kind.note)
        with _staging(final.parent) as stage:
            staged = stage / final.name
            t0 = time.perf_counter()
            with third_party_output(log):
                extras = kind.convert(target, prec, staged, meta, _options(target, opts))
            seconds = time.perf_counter() - t0
            with third_party_output(log):
                checked = kind.check(target, prec, staged, meta, extras)
            record = build_record(
                model=stem, target=target, precision=prec, file=final.name, path=str(final.resolve()),
                size_bytes=artifact_size(staged), sha256=artifact_sha256(staged), task=ckpt.task,
                labels=list(ckpt.labels), **checked, export_seconds=round(seconds, 3),
                **kind.provenance(target, prec), profile=profile, converter=extras, versions=package_versions(target))
            publish(record, staged, final)
        records.append(record)
    return records


#: export options as the CLI spells them (the value each has when not given: :class:`ExportConfig`'s default)
_FLAGS = {"nhwc": "--nhwc", "opset": "--opset", "dynamic_batch": "--static-batch", "max_batch": "--max-batch"}


def _check_options(targets: list[str], given: dict[str, Any], opts: dict[str, Any]) -> None:
    """One line for an option given explicitly that none of ``targets`` takes (``--target onnx
    --nhwc``), and for a value a target's exporter refuses (``--opset 999``), before any work."""
    for key, value in given.items():
        flag = _FLAGS[key]
        takers = [t for t in TARGETS if key in formats.target(t).options]
        if value is not None and value != default(ExportConfig, key) and not any(t in takers for t in targets):
            raise EdgekitError(f"{flag} applies to {', '.join(takers)} exports only; the targets here are "
                               f"{', '.join(targets)}")
    for t in targets:
        check = getattr(importlib.import_module(str(formats.target(t).exporter)), "check_options", None)
        if check is not None:
            check(**_options(t, opts))


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
    ``nhwc``: TFLite takes float NHWC input. ``opset``: the ONNX opset (one torch.onnx
    writes, :func:`edgekit.exporters.onnx.supported_opsets`). An option given explicitly that
    none of the targets takes (``nhwc`` for onnx) is refused. ``streaming``: export the online
    model of a causal TSM checkpoint, one frame per call with its states as inputs and outputs
    (:mod:`edgekit.exporters.streaming`; sizes then count whole clips, default 32). Raises
    :class:`EdgekitError` on any failure, leaving no partial file (module docstring).
    """
    prof = load_profile(profile) if profile else {}
    targets_l = _resolve_targets(_as_list(targets) or _as_list(prof.get("targets"))
                                 or list(default(ExportConfig, "targets")))
    jobs = _jobs(targets_l, _as_list(precision) or _as_list(prof.get("precision")))
    calib = calib or prof.get("calib")
    given = {"nhwc": nhwc, "opset": opset, "dynamic_batch": dynamic_batch, "max_batch": max_batch}
    cfg = ExportConfig(targets=targets_l, precision=[p for _, p in jobs], streaming=streaming,
                       **{k: _given(v, prof.get(k), default(ExportConfig, k))  # explicit > profile > default
                          for k, v in {**given, "calib_size": calib_size, "parity_size": parity_size}.items()})
    opts = cfg.options()
    _check_options(targets_l, given, opts)

    ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint)
    if opts["nhwc"] and is_tabular(ckpt.input_spec):
        raise EdgekitError("--nhwc is an image layout; this model takes feature vectors [N, features]")
    if streaming:
        from .streaming import Streaming
    stem = name or (Path(ckpt.path).stem if ckpt.path else ckpt.arch)
    out_dir = check_writable(output_dir, folder=True, inputs=[ckpt])
    suffix = Streaming.suffix if streaming else Plain.suffix
    finals = {job: out_dir / artifact_name(stem + suffix, *job, nhwc=opts["nhwc"]) for job in jobs}
    for path in finals.values():
        if path.exists() and not force:
            raise EdgekitError(f"{path} already exists; pass --force to overwrite it")
    precisions = [p for _, p in jobs]
    kind: ExportKind
    if streaming:
        kind = Streaming(ckpt, targets_l, precisions, calib=calib, calib_size=cfg.calib_size,
                         parity_size=cfg.parity_size, thresholds=thresholds, opts=opts)
    else:
        kind = Plain(ckpt, precisions, calib=calib, calib_size=cfg.calib_size, parity_size=cfg.parity_size,
                     thresholds=thresholds, opts=opts)
    return export_loop(kind, ckpt, finals, stem=stem, opts=opts, profile=prof.get("profile"))


def verify(artifact: str | Path, checkpoint: str | Path | Checkpoint, data: str | DataBundle | None = None, *,
           n: int = SAMPLE_IMAGES, precision: str | None = None, thresholds: dict[str, float] | None = None) -> dict[str, Any]:
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

