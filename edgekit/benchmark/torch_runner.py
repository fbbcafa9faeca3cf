"""PyTorch runner: the baseline every report compares against.

Loads an edgekit checkpoint (the model rebuilt from its definition, weights loaded,
eval mode; its lineage goes into the row) and times ``model(x)`` under ``torch.inference_mode`` in eager mode or,
for the ``torch-compile`` runtime, after ``torch.compile`` (inductor; compilation
happens in the first run, which is reported separately as ``first_run_ms``).
On CUDA each run ends with a device synchronisation, so a run is the full latency.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import EdgekitError
from .runners import Session, make_input, runtime_version


PRELOAD = ("torch", "edgekit.checkpoint")


def open_session(job: dict[str, Any]) -> Session:
    import torch

    from ..checkpoint import load_checkpoint

    threads = int(job["threads"])
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set in this process
        pass
    device = torch.device(job.get("device") or "cpu")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise EdgekitError("torch runtime: CUDA requested but torch.cuda.is_available() is False")
    ckpt = load_checkpoint(job["artifact"])
    model = ckpt.model.to(device)
    spec = ckpt.input_spec or job.get("input_spec") or {}
    if job.get("input_shape"):
        shape = tuple(int(d) for d in job["input_shape"])
    elif spec.get("shape"):
        shape = (int(job["batch"]), *(int(d) for d in spec["shape"]))
    else:
        raise EdgekitError(f"{job['artifact']}: checkpoint has no input spec; pass input_shape")
    compiled = job["runtime"] == "torch-compile"
    if compiled:
        model = torch.compile(model)
    x = torch.from_numpy(make_input(shape, "float32", job.get("seed", 0))).to(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def run() -> Any:
        out = model(x)
        sync()
        return out

    def predict(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(batch).to(device)).float().cpu().numpy()

    dtype = next((p.dtype for p in model.parameters()), torch.float32)
    info = {"delegate": "inductor" if compiled else "eager", "device": str(device),
            "threads_effective": torch.get_num_threads(), "input_shape": list(shape), "input_dtype": "float32",
            "precision": {torch.float16: "fp16", torch.bfloat16: "bf16"}.get(dtype, "fp32"),
            "versions": {"torch": runtime_version("torch")}, "arch": ckpt.arch, "task": ckpt.task,
            "input_spec": spec, "labels": ckpt.labels, "lineage": ckpt.lineage}
    return Session(run=run, predict=predict, info=info, context=torch.inference_mode)
