"""Which torch device a stage runs on: ``auto`` is CUDA when present, else CPU.

One rule for every stage (train, prune, distill, eval), so ``--device`` means the same
everywhere and a CUDA request on a machine without CUDA is one clear error.
"""
from __future__ import annotations

import torch

from .errors import EdgekitError


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; anything else as given (checked for CUDA)."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise EdgekitError(f"device {device!r} requested but CUDA is not available")
    try:
        return torch.device(device)
    except RuntimeError as exc:
        raise EdgekitError(f"unknown device {device!r}: {str(exc).splitlines()[0]}") from None


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 natively: a CPU with AVX-512 BF16 or AMX tiles (elsewhere a
    CPU emulates bf16 in float32, slower than float32 itself). CUDA answers False: edgekit scores
    in true float32 there (TF32 rounding already swamped small KL scores on a GPU)."""
    if device.type != "cpu":
        return False
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)
