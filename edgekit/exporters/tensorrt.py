"""TensorRT: a serialized engine built from the ONNX artifact with the tensorrt Python API.

The precision is carried by the ONNX graph itself and the network is built *strongly
typed* (the direction TensorRT 10+ takes; weak-typing builder flags are deprecated):

* fp32: the fp32 ONNX;
* fp16: the fp16 ONNX (float16 weights and compute, float32 I/O);
* int8: the QDQ ONNX calibrated on real images with symmetric activations (explicit
  quantization: TensorRT runs the int8 convolutions the Q/DQ pairs describe).

The batch dimension stays dynamic (optimization profile 1 / ``opt_batch`` / ``max_batch``).
Without the tensorrt package or a CUDA GPU, :func:`edgekit.formats.export_unavailable` says
so in one line before anything runs.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import EdgekitError
from . import onnx as onnx_export
from .runtimes import require_tensorrt


def build_engine(onnx_path: Path, out: Path, *, max_batch: int = 32, opt_batch: int = 1,
                 workspace_gb: float = 2.0) -> dict[str, Any]:
    trt = require_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errs = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise EdgekitError(f"tensorrt: the ONNX parser rejects the model: {' | '.join(errs)[:400]}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    profile = builder.create_optimization_profile()
    inp = network.get_input(0)
    chw = tuple(inp.shape)[1:]
    profile.set_shape(inp.name, (1, *chw), (max(1, opt_batch), *chw), (max(1, max_batch), *chw))
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EdgekitError("tensorrt: engine build failed (see the TensorRT warnings above)")
    out.write_bytes(bytes(serialized))
    return {"tensorrt": trt.__version__, "strongly_typed": bool(flags), "max_batch": max_batch,
            "device": torch.cuda.get_device_name(0)}


def convert(model: nn.Module, sample: torch.Tensor, out: Path, *, precision: str, calib: torch.Tensor | None,
            meta: dict[str, Any], max_batch: int = 32) -> dict[str, Any]:
    """Write ``out`` (.engine) at ``precision`` via a temporary ONNX of the same precision."""
    require_tensorrt()
    tmp = out.with_name(out.stem + ".trt-src.onnx")
    try:
        onnx_export.convert(model, sample, tmp, precision=precision, calib=calib, meta=meta, symmetric=True,
                            reduce_range=False)
        info = build_engine(tmp, out, max_batch=max_batch)
    finally:
        tmp.unlink(missing_ok=True)
    return {"converter": f"tensorrt {info['tensorrt']} (from ONNX)", "dynamic_batch": True, **info}
