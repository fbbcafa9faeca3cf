"""Core ML: coremltools ``mlprogram`` from a ``torch.export`` program.

* fp16 (default): float16 compute, float32 inputs/outputs;
* fp32: float32 compute;
* int8: fp16 program with weights compressed to int8 (``linear_quantize_weights``,
  symmetric per-channel); activations stay float, as Core ML runs them.

Labels, preprocessing and (label distributions) the output layout go into the model's
user-defined metadata (plus the short description fields Xcode shows). Linux has no Core
ML runtime, so :func:`structural_check` verifies what can be verified there: the
package loads, its input and output names, shapes and types are the expected ones, and
its op counts match the PyTorch model (one ``conv`` per Conv2d, one ``linear`` per
Linear). On macOS the full parity gate runs.
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import EdgekitError, require
from .diagnose import converter_error

INPUT, OUTPUT = "input", "output"


def _ct() -> Any:
    os.environ.setdefault("TQDM_DISABLE", "1")
    logging.getLogger("coremltools").setLevel(logging.ERROR)
    return require("coremltools", "coreml")


def convert(model: nn.Module, sample: torch.Tensor, out: Path, *, precision: str, calib: torch.Tensor | None,
            meta: dict[str, Any]) -> dict[str, Any]:
    """Write ``out`` (.mlpackage) at ``precision``; returns manifest extras."""
    ct = _ct()
    sample = sample[:1]
    try:
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):  # tqdm bars
            warnings.simplefilter("ignore")
            program = torch.export.export(model, (sample,), strict=False).run_decompositions({})
            ml = ct.convert(program, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS16,
                            inputs=[ct.TensorType(name=INPUT, shape=tuple(sample.shape), dtype=np.float32)],
                            outputs=[ct.TensorType(name=OUTPUT, dtype=np.float32)],
                            compute_precision=ct.precision.FLOAT32 if precision == "fp32" else ct.precision.FLOAT16)
            if precision == "int8":
                from coremltools.optimize.coreml import (OpLinearQuantizerConfig, OptimizationConfig,
                                                         linear_quantize_weights)

                cfg = OptimizationConfig(global_config=OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8"))
                ml = linear_quantize_weights(ml, cfg)
    except EdgekitError:
        raise
    except Exception as exc:
        raise converter_error("coreml", f"coremltools {ct.__version__}", exc, model, sample) from exc
    ml.author = "edgekit"
    ml.short_description = f"{meta.get('model', '')} {meta.get('task', '')} ({precision})".strip()
    ml.input_description[INPUT] = "NCHW float32 image, normalised: " + json.dumps(meta.get("preprocessing") or {})
    ml.output_description[OUTPUT] = output_description(meta)
    ml.user_defined_metadata["edgekit"] = json.dumps(meta)
    ml.user_defined_metadata["labels"] = json.dumps(list(meta.get("labels") or []))
    ml.user_defined_metadata["preprocessing"] = json.dumps(meta.get("preprocessing") or {})
    ml.save(str(out))
    return {"converter": f"coremltools {ct.__version__}", "dynamic_batch": False,
            "compute_precision": "fp32" if precision == "fp32" else "fp16",
            "weights": {"int8": "int8 (linear symmetric)"}.get(precision, "fp32" if precision == "fp32" else "fp16")}


def output_description(meta: dict[str, Any]) -> str:
    """What the output tensor holds, for Xcode's model view."""
    layout = meta.get("output_layout")
    if layout:
        exp = layout["expectation"]["column"]
        where = f" over {layout['label_range']}" if layout.get("label_range") else ""
        if "distribution" in layout:
            lo, hi = layout["distribution"]["columns"]
            return (f"label distribution{where} in columns {lo}..{hi - 1}, its expectation (the predicted "
                    f"label) in column {exp}")
        return f"the predicted label{where} (column {exp})"
    from ..tasks import get_task

    return get_task(meta["task"]).output_description if meta.get("task") else "model output"


def op_counts(path: Path) -> dict[str, int]:
    """Op types and counts of the mlprogram's main function."""
    spec = _spec(path)
    counts: dict[str, int] = {}
    for fn in spec.mlProgram.functions.values():
        for block in fn.block_specializations.values():
            for op in block.operations:
                counts[op.type] = counts.get(op.type, 0) + 1
    return counts


def _spec(path: Path) -> Any:
    ct = _ct()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return ct.models.MLModel(str(path), skip_model_load=True).get_spec()
        except Exception as exc:
            raise EdgekitError(f"coreml: {path} does not load as a Core ML package: "
                               f"{str(exc).splitlines()[0][:300]}") from exc


def structural_check(path: Path, model: nn.Module, sample: torch.Tensor, num_outputs: int) -> dict[str, Any]:
    """What Linux can check without a Core ML runtime; raises when something does not match."""
    spec = _spec(path)
    problems = []
    if spec.WhichOneof("Type") != "mlProgram":
        problems.append(f"type {spec.WhichOneof('Type')} is not mlProgram")
    ins, outs = spec.description.input, spec.description.output
    in_shape = list(ins[0].type.multiArrayType.shape) if ins else []
    out_shape = list(outs[0].type.multiArrayType.shape) if outs else []
    if [i.name for i in ins] != [INPUT] or in_shape != list(sample[:1].shape):
        problems.append(f"inputs {[i.name for i in ins]} {in_shape}, expected ['{INPUT}'] {list(sample[:1].shape)}")
    if [o.name for o in outs] != [OUTPUT] or (out_shape and out_shape[-1] != num_outputs):
        problems.append(f"outputs {[o.name for o in outs]} {out_shape}, expected ['{OUTPUT}'] [1, {num_outputs}]")
    counts = op_counts(path)
    want = {"conv": sum(isinstance(m, nn.Conv2d) for m in model.modules()),
            "linear": sum(isinstance(m, nn.Linear) for m in model.modules())}
    for op, n in want.items():
        got = counts.get(op, 0) + (counts.get("matmul", 0) if op == "linear" else 0)
        if n and got != n:
            problems.append(f"{got} {op} ops, the PyTorch model has {n}")
    if problems:
        raise EdgekitError(f"coreml: {path.name} fails the structural check: {'; '.join(problems)}")
    user = dict(spec.description.metadata.userDefined)
    return {"mode": "structural", "passed": True, "input_shape": in_shape, "output_shape": out_shape,
            "ops": sum(counts.values()), "conv_ops": counts.get("conv", 0), "linear_ops": counts.get("linear", 0),
            "metadata_keys": sorted(k for k in user if not k.startswith("com.github")),
            "note": "Core ML runs only on macOS; numbers need macOS (edgekit verify there)"}
