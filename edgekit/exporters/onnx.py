"""ONNX: torch.onnx's dynamo exporter, onnx.checker, and onnxruntime for fp16 and int8.

* fp32: ``torch.onnx.export(..., dynamo=True)`` at the chosen opset (one torch.onnx writes:
  :func:`supported_opsets`, checked before anything is exported, and the written model's
  opset checked after), batch dimension dynamic unless ``dynamic_batch=False``;
* fp16: weights and compute converted with onnxruntime's float16 tool, float32 I/O kept
  (``keep_io_types``) so apps feed the same tensors;
* int8: onnxruntime static quantization in QDQ format, per-channel weights, activation
  ranges calibrated on real images (``calib``). ``symmetric=True`` (used for TensorRT,
  which needs zero points of 0) forces symmetric activations. Weights are 7-bit
  (``reduce_range``) unless the caller says otherwise: onnxruntime's x86 int8 kernels on CPUs
  without VNNI (plain AVX2/AVX-512) add u8*s8 products pairwise into int16 (VPMADDUBSW), which
  saturates with full-range per-channel weights; the artifact then disagrees with torch on most
  images although its Q/DQ scales are right (compact_cnn on digits, AMD EPYC AVX2: cosine 0.91,
  top-1 agreement 77%, with 7-bit weights 0.998 / 99%). 7-bit weights cannot saturate
  (2*255*64 < 2**15), so one artifact runs the same on every CPU; TensorRT, which has no such
  kernels, keeps full 8-bit weights.

Labels, preprocessing and task go into the model's ``metadata_props``.
"""
from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import EdgekitError, require
from .config import DEFAULT_OPSET  # declared with the export options (ExportConfig)
from .diagnose import converter_error

INPUT, OUTPUT = "input", "output"


def supported_opsets() -> range:
    """The opsets torch.onnx's dynamo exporter writes: from its torchlib's (18; asked for less,
    it converts the model down and silently keeps 18 when that fails) to torch.onnx's newest
    (23 in torch 2.9-2.10). Larger numbers are not refused by torch: it writes 18 instead."""
    try:
        from torch.onnx._internal.exporter._constants import TORCHLIB_OPSET as lo
    except ImportError:  # torch moved it: the opset this module defaults to is always written
        lo = DEFAULT_OPSET
    try:
        from torch.onnx._constants import ONNX_MAX_OPSET as hi
    except ImportError:
        hi = lo
    return range(int(lo), int(hi) + 1)


def check_options(opset: int | None = None, **_: Any) -> None:
    """Refuse, before anything is exported, an opset torch.onnx would not write as asked."""
    ok = supported_opsets()
    if opset is not None and opset not in ok:
        raise EdgekitError(f"--opset {opset}: torch.onnx {torch.__version__.split('+')[0]} exports opsets "
                           f"{ok.start}..{ok.stop - 1}")


def export_fp32(model: nn.Module, sample: torch.Tensor | tuple[torch.Tensor, ...], out: Path, *,
                opset: int = DEFAULT_OPSET, dynamic_batch: bool = True, input_names: list[str] | None = None,
                output_names: list[str] | None = None) -> None:
    """Trace ``model`` with the dynamo exporter and write a self-contained .onnx file.

    ``sample``: the one input, or a tuple of inputs (named ``input_names``; a streaming model's
    frame and states), whose batch is fixed. With a dynamic batch the trace sample has a batch
    of 2: torch.export specializes a dimension whose example size is 1 (its 0/1
    specialization), and some models (ConvNeXt's layer norms) then fail to export with a
    symbolic batch at all. A model written at another opset than ``opset`` is one line."""
    require("onnxscript", "onnx")
    args = sample if isinstance(sample, tuple) else (sample,)
    dyn = ({0: torch.export.Dim("batch", min=1, max=4096)},) if dynamic_batch and len(args) == 1 else None
    if dyn and args[0].shape[0] == 1:
        args = (torch.cat([args[0], args[0]]),)
    try:
        with warnings.catch_warnings(), _quiet("torch.onnx", "onnxscript"):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(model, args, dynamo=True, opset_version=opset,
                                        input_names=input_names or [INPUT], output_names=output_names or [OUTPUT],
                                        dynamic_shapes=dyn, verbose=False, optimize=True, external_data=False)
        written = next((o.version for o in program.model_proto.opset_import if o.domain in ("", "ai.onnx")), None)
        if written != opset:
            raise EdgekitError(f"onnx: asked for opset {opset}, torch.onnx wrote opset {written}; use one of "
                               f"{supported_opsets().start}..{supported_opsets().stop - 1}")
        program.save(str(out), external_data=False)
    except EdgekitError:
        raise
    except Exception as exc:
        raise converter_error("onnx", "torch.onnx (dynamo)", exc, model, args[0]) from exc


def to_fp16(src: Path, out: Path) -> None:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    _toposort(model.graph)  # the tool appends its input casts at the end of the node list
    onnx.save(model, str(out))


def _toposort(graph: Any) -> None:
    """Reorder ``graph.node`` so every node comes after the producers of its inputs."""
    ready = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        rest = []
        for node in pending:
            if all(name in ready for name in node.input):
                ordered.append(node)
                ready.update(node.output)
            else:
                rest.append(node)
        if len(rest) == len(pending):  # a cycle or a dangling input: leave it for onnx.checker to name
            ordered += rest
            break
        pending = rest
    nodes = [type(n)() for n in ordered]
    for dst, src in zip(nodes, ordered):
        dst.CopyFrom(src)
    del graph.node[:]
    graph.node.extend(nodes)


def to_int8(src: Path, out: Path, calib: torch.Tensor | list[dict[str, np.ndarray]], *, symmetric: bool = False,
            batch: int = 16, reduce_range: bool = True) -> None:
    """Static QDQ int8 calibrated on ``calib`` (real, preprocessed images; or ready feeds by input
    name, for models with several inputs such as a streaming model's frame and states).
    ``reduce_range`` (7-bit weights) keeps onnxruntime's int8 kernels on CPUs without VNNI from
    saturating (see the module docstring); only a runtime without them (TensorRT) turns it off."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    pre = out.with_name(out.stem + ".pre.onnx")
    arrays = calib.numpy().astype(np.float32) if isinstance(calib, torch.Tensor) else None

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter(calib if arrays is None else
                              [{INPUT: arrays[i:i + batch]} for i in range(0, len(arrays), batch)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.items, None)

    try:
        with _quiet("onnxruntime", "root"):
            quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
            quantize_static(str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                            reduce_range=reduce_range, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                            extra_options={"ActivationSymmetric": symmetric, "WeightSymmetric": True})
    except Exception as exc:
        raise EdgekitError(f"onnx: onnxruntime int8 quantization failed: {type(exc).__name__}: "
                           f"{' '.join(str(exc).split())[:300]}") from exc
    finally:
        pre.unlink(missing_ok=True)


def embed_metadata(path: Path, meta: dict[str, Any]) -> None:
    """Write labels, preprocessing and the rest of ``meta`` into ``metadata_props``."""
    import onnx

    model = onnx.load(str(path))
    props = {"edgekit": json.dumps(meta), "labels": "\n".join(meta.get("labels") or []),
             "preprocessing": json.dumps(meta.get("preprocessing") or {}), "task": str(meta.get("task", ""))}
    del model.metadata_props[:]
    for key, value in props.items():
        model.metadata_props.add(key=key, value=value)
    model.producer_name = "edgekit"
    onnx.save(model, str(path))


def check(path: Path) -> dict[str, Any]:
    """onnx.checker (full) plus the opset and node count."""
    import onnx

    model = onnx.load(str(path))
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:
        raise EdgekitError(f"onnx: {path.name} fails onnx.checker: {str(exc).splitlines()[0][:300]}") from exc
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    return {"opset": opset, "nodes": len(model.graph.node)}


def convert(model: nn.Module, sample: torch.Tensor, out: Path, *, precision: str, calib: torch.Tensor | None,
            meta: dict[str, Any], opset: int = DEFAULT_OPSET, dynamic_batch: bool = True,
            symmetric: bool = False, reduce_range: bool = True) -> dict[str, Any]:
    """Write ``out`` (.onnx) at ``precision``; returns manifest extras. ``symmetric`` and
    ``reduce_range`` are :func:`to_int8`'s."""
    require("onnx", "onnx")
    fp32 = out if precision == "fp32" else out.with_name(out.stem + ".fp32tmp.onnx")
    try:
        export_fp32(model, sample, fp32, opset=opset, dynamic_batch=dynamic_batch)
        if precision == "fp16":
            to_fp16(fp32, out)
        elif precision == "int8":
            if calib is None:
                raise EdgekitError("onnx int8 needs calibration images (--calib)")
            to_int8(fp32, out, calib, symmetric=symmetric, reduce_range=reduce_range)
    finally:
        if fp32 != out:
            fp32.unlink(missing_ok=True)
    embed_metadata(out, meta)
    info = check(out)
    return {"converter": "torch.onnx (dynamo)", "opset": info["opset"], "nodes": info["nodes"],
            "dynamic_batch": dynamic_batch}


class _quiet:
    """Silence chatty loggers of the converters for the duration of a block."""

    def __init__(self, *names: str) -> None:
        self.loggers = [logging.getLogger(n) for n in names]
        self.levels: list[int] = []

    def __enter__(self) -> None:
        self.levels = [lg.level for lg in self.loggers]
        for lg in self.loggers:
            lg.setLevel(logging.ERROR)

    def __exit__(self, *exc: Any) -> None:
        for lg, lvl in zip(self.loggers, self.levels):
            lg.setLevel(lvl)
