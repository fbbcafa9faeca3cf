"""TFLite / LiteRT: litert-torch conversion, run with ai-edge-litert (XNNPACK).

* fp32: ``litert_torch.convert(model, (sample,))``;
* fp16: fp32 model, then conv / depthwise / fully-connected weights cast to float16 by
  ai-edge-quantizer (FLOAT_CASTING, weight-only: half the size, float compute);
* int8: full-integer PT2E static quantization: ``torch.export`` -> ``prepare_pt2e`` with
  litert-torch's symmetric per-channel quantizer -> calibration forward passes over real
  images -> ``convert_pt2e`` -> ``litert_torch.convert`` with the quantizer's QuantConfig.
  Input and output tensors are int8 with scale/zero point (as NPUs and DSPs want).
* ``nhwc=True`` wraps the model in :class:`ChannelsLastInput` so it takes
  float NHWC images, as phone camera pipelines deliver them.

The batch size is fixed at 1 (the phone case). Labels and preprocessing are stored as an
``edgekit`` JSON entry in the flatbuffer's metadata, and ``labels.txt`` is appended as a
zip associated file (the layout TFLite metadata tools use; interpreters ignore it).
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn

from ..errors import EdgekitError, require
from .diagnose import converter_error


@contextlib.contextmanager
def _quiet_converter() -> Iterator[Any]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    lt = require("litert_torch", "tflite")
    lt.config.show_progress = False
    yield lt


class ChannelsLastInput(nn.Module):
    """Takes NHWC images and hands NCHW to the model; the converter folds the transpose into
    its own NCHW->NHWC layout changes (litert-torch's ``to_channel_last_io`` does the same,
    but its ``*args`` forward does not trace with a dynamic batch for PT2E calibration)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.permute(0, 3, 1, 2))


def _nhwc(model: nn.Module, sample: torch.Tensor, lt: Any) -> tuple[nn.Module, torch.Tensor]:
    return ChannelsLastInput(model).eval(), sample.permute(0, 2, 3, 1).contiguous()


def _in_eval_mode(graph: nn.Module) -> nn.Module:
    """Mark a ``torch.export``-ed graph module, and every submodule, as being in eval mode.

    ``ExportedProgram.module()`` returns modules flagged ``training=True`` even when the
    traced model was in eval mode (the graph itself already holds eval batch norm and
    dropout), and exported modules refuse ``.eval()``. litert-torch reads the flag and
    warns that the model "is converted in training mode". torchao's
    ``move_exported_model_to_eval`` switches any training-mode batch norm / dropout ops to
    their eval form; the flags are then cleared directly."""
    from torchao.quantization.pt2e import move_exported_model_to_eval

    move_exported_model_to_eval(graph)
    for module in graph.modules():
        module.training = False
    return graph


def convert_fp32(model: nn.Module, sample: torch.Tensor, nhwc: bool = False) -> bytes:
    with _quiet_converter() as lt:
        m, x = _nhwc(model, sample, lt) if nhwc else (model, sample)
        try:
            return bytes(lt.convert(m, (x,)).model_content())
        except Exception as exc:
            raise converter_error("tflite", "litert-torch", exc, model, sample) from exc


def convert_int8(model: nn.Module, sample: torch.Tensor, calib: torch.Tensor, nhwc: bool = False) -> bytes:
    """Full-integer PT2E static quantization, calibrated on ``calib`` (real images, in batches)."""
    with _quiet_converter() as lt:
        from litert_torch.quantize import pt2e_quantizer as pq
        from litert_torch.quantize.quant_config import QuantConfig
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

        m, x = _nhwc(model, sample, lt) if nhwc else (model, sample)
        quantizer = pq.PT2EQuantizer().set_global(pq.get_symmetric_quantization_config(is_per_channel=True))
        try:
            # a dynamic batch dimension lets calibration run in batches (observers are slow per call)
            batch = torch.export.Dim("batch", min=1, max=max(2, len(calib)))
            x2 = torch.cat([x, x])  # batch 1 would be specialised to a constant
            graph = torch.export.export(m, (x2,), dynamic_shapes=({0: batch},), strict=False).module()
            with contextlib.redirect_stdout(io.StringIO()):  # the quantizer prints partition notes
                graph = prepare_pt2e(graph, quantizer)
            with torch.no_grad():
                for i in range(0, len(calib), 32):
                    imgs = calib[i:i + 32]
                    graph(imgs.permute(0, 2, 3, 1).contiguous() if nhwc else imgs)
            graph = _in_eval_mode(convert_pt2e(graph, fold_quantize=False))
            return bytes(lt.convert(graph, (x,), quant_config=QuantConfig(pt2e_quantizer=quantizer)).model_content())
        except EdgekitError:
            raise
        except Exception as exc:
            raise converter_error("tflite", "litert-torch (PT2E int8)", exc, model, sample) from exc


def cast_fp16(fp32_path: Path) -> bytes:
    """Weight-only float16 for conv, depthwise conv and fully-connected layers (ai-edge-quantizer)."""
    aeq = require("ai_edge_quantizer", "tflite")
    from ai_edge_quantizer import quantizer, qtyping

    qt = quantizer.Quantizer(str(fp32_path))
    cfg = qtyping.OpQuantizationConfig(
        weight_tensor_config=qtyping.TensorQuantizationConfig(num_bits=16, dtype=qtyping.TensorDataType.FLOAT),
        compute_precision=qtyping.ComputePrecision.FLOAT, explicit_dequantize=True)
    for op in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "CONV_2D_TRANSPOSE"):
        qt.update_quantization_recipe(regex=".*", algorithm_key=quantizer.AlgorithmName.FLOAT_CASTING,
                                      operation_name=getattr(qtyping.TFLOperationName, op), op_config=cfg)
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # its size report
            return bytes(qt.quantize().quantized_model)
    except Exception as exc:
        raise EdgekitError(f"tflite: ai-edge-quantizer {getattr(aeq, '__version__', '')} fp16 cast failed: "
                           f"{' '.join(str(exc).split())[:300]}") from exc


def embed_metadata(data: bytes, meta: dict[str, Any]) -> bytes:
    """Add an ``edgekit`` metadata entry (JSON) to the flatbuffer, then labels.txt as an associated file."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    if not any((b.offset or 0) > 1 for b in model.buffers or []):  # not for >2 GB external-buffer models
        buf = schema.BufferT()
        buf.data = list(json.dumps(meta).encode())
        model.buffers.append(buf)
        entry = schema.MetadataT()
        entry.name = "edgekit"
        entry.buffer = len(model.buffers) - 1
        model.metadata = [m for m in (model.metadata or []) if m.name not in (b"edgekit", "edgekit")] + [entry]
        builder = flatbuffers.Builder(len(data) + 4096)
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
        data = bytes(builder.Output())
    return data


def append_labels(path: Path, labels: list[str]) -> None:
    if labels:
        with zipfile.ZipFile(path, "a") as zf:
            zf.writestr("labels.txt", "\n".join(labels) + "\n")


def read_metadata(path: Path) -> dict[str, Any]:
    """The ``edgekit`` metadata entry of a .tflite written by :func:`convert` ({} if absent)."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAs(bytearray(Path(path).read_bytes()), 0)
    for i in range(model.MetadataLength()):
        md = model.Metadata(i)
        if md.Name() == b"edgekit":
            return json.loads(bytes(model.Buffers(md.Buffer()).DataAsNumpy()).decode())
    return {}


def convert(model: nn.Module, sample: torch.Tensor, out: Path, *, precision: str, calib: torch.Tensor | None,
            meta: dict[str, Any], nhwc: bool = False) -> dict[str, Any]:
    """Write ``out`` (.tflite) at ``precision``; returns manifest extras."""
    sample = sample[:1]
    if precision == "int8":
        if calib is None:
            raise EdgekitError("tflite int8 needs calibration images (--calib)")
        data = convert_int8(model, sample, calib, nhwc=nhwc)
    else:
        data = convert_fp32(model, sample, nhwc=nhwc)
        if precision == "fp16":
            tmp = out.with_name(out.stem + ".fp32tmp.tflite")
            tmp.write_bytes(data)
            try:
                data = cast_fp16(tmp)
            finally:
                tmp.unlink(missing_ok=True)
    out.write_bytes(embed_metadata(data, meta))
    append_labels(out, list(meta.get("labels") or []))
    return {"converter": "litert-torch", "layout": "NHWC" if nhwc else "NCHW", "dynamic_batch": False,
            "associated_files": ["labels.txt"] if meta.get("labels") else []}
