"""The parity gate: does an artifact compute what the PyTorch model computes, on real inputs?

Numbers (artifact output vs PyTorch output on the same preprocessed images):

* ``max_abs_err`` / ``mean_abs_err``; ``max_rel_err`` = max abs error / max |PyTorch output|;
* ``cosine`` (mean over samples of the cosine between output vectors) and ``min_cosine``;
* for classifiers, ``top1_agreement`` (fraction of samples whose argmax matches) and both
  top-1 accuracies against the labels (``torch_top1``, ``artifact_top1``).

Thresholds per precision (:data:`THRESHOLDS`) are deliberately tight for fp32 (only
float re-association differs), looser for fp16 (10-bit mantissa) and int8 (8-bit
activations and weights: an int8 model may disagree on near-ties, never broadly).
Failing any threshold raises :class:`EdgekitError` with all the numbers.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import EdgekitError

THRESHOLDS: dict[str, dict[str, float]] = {
    "fp32": {"max_rel_err": 1e-3, "min_cosine": 0.9999, "min_top1_agreement": 0.99},
    "fp16": {"max_rel_err": 3e-2, "min_cosine": 0.999, "min_top1_agreement": 0.97},
    "int8": {"min_cosine": 0.95, "min_top1_agreement": 0.90},
}


def parity_numbers(ref: np.ndarray, out: np.ndarray, task: str = "classify",
                   targets: list[Any] | None = None) -> dict[str, Any]:
    """Compare artifact outputs ``out`` with PyTorch outputs ``ref`` (same inputs, same order)."""
    ref = np.asarray(ref, dtype=np.float64).reshape(len(ref), -1)
    out = np.asarray(out, dtype=np.float64).reshape(len(out), -1)
    if ref.shape != out.shape:
        raise EdgekitError(f"artifact output shape {list(out.shape)} differs from PyTorch's {list(ref.shape)}")
    err = np.abs(out - ref)
    denom = np.linalg.norm(ref, axis=1) * np.linalg.norm(out, axis=1)
    cos = np.where(denom > 0, (ref * out).sum(1) / np.maximum(denom, 1e-30), 1.0)
    nums: dict[str, Any] = {"n": int(len(ref)), "max_abs_err": float(err.max()), "mean_abs_err": float(err.mean()),
                            "max_rel_err": float(err.max() / max(np.abs(ref).max(), 1e-12)),
                            "cosine": float(cos.mean()), "min_cosine": float(cos.min())}
    if task == "classify" and ref.shape[1] > 1:
        a, b = ref.argmax(1), out.argmax(1)
        nums["top1_agreement"] = float((a == b).mean())
        if targets is not None and all(isinstance(t, (int, np.integer)) for t in targets):
            t = np.asarray(targets)
            nums["torch_top1"] = float((a == t).mean() * 100)
            nums["artifact_top1"] = float((b == t).mean() * 100)
    return nums


def thresholds_for(precision: str, overrides: dict[str, float] | None = None) -> dict[str, float]:
    if precision not in THRESHOLDS:
        raise EdgekitError(f"no parity thresholds for precision {precision!r}")
    return {**THRESHOLDS[precision], **(overrides or {})}


def failures(nums: dict[str, Any], limits: dict[str, float]) -> list[str]:
    """Human-readable threshold violations ([] when the gate passes)."""
    bad = []
    if "max_rel_err" in limits and nums["max_rel_err"] > limits["max_rel_err"]:
        bad.append(f"max rel err {nums['max_rel_err']:.3g} > {limits['max_rel_err']:.3g}")
    if "min_cosine" in limits and nums["cosine"] < limits["min_cosine"]:
        bad.append(f"cosine {nums['cosine']:.6f} < {limits['min_cosine']}")
    if "min_top1_agreement" in limits and "top1_agreement" in nums \
            and nums["top1_agreement"] < limits["min_top1_agreement"]:
        bad.append(f"top-1 agreement {nums['top1_agreement']:.1%} < {limits['min_top1_agreement']:.0%}")
    return bad


def format_numbers(nums: dict[str, Any]) -> str:
    parts = [f"n={nums['n']}", f"max abs err {nums['max_abs_err']:.3g}", f"mean abs err {nums['mean_abs_err']:.3g}",
             f"max rel err {nums['max_rel_err']:.3g}", f"cosine {nums['cosine']:.6f}"]
    if "top1_agreement" in nums:
        parts.append(f"top-1 agreement {nums['top1_agreement']:.1%}")
    if "artifact_top1" in nums:
        parts.append(f"top-1 {nums['torch_top1']:.1f}% torch vs {nums['artifact_top1']:.1f}% artifact")
    return ", ".join(parts)


def gate(name: str, precision: str, nums: dict[str, Any], overrides: dict[str, float] | None = None) -> dict[str, Any]:
    """Check ``nums`` against the precision's thresholds; raise with every number if it fails."""
    limits = thresholds_for(precision, overrides)
    bad = failures(nums, limits)
    if bad:
        raise EdgekitError(f"{name}: parity gate failed ({precision}): {'; '.join(bad)} [{format_numbers(nums)}]")
    return {**nums, "thresholds": limits, "passed": True}
