"""The parity gate: does an artifact compute what the PyTorch model computes, on real inputs?

Numbers (artifact output vs PyTorch output on the same preprocessed images):

* ``max_abs_err`` / ``mean_abs_err``; ``max_rel_err`` = max abs error / max |PyTorch output|;
* ``cosine`` (mean over samples of the cosine between output vectors) and ``min_cosine``;
* for classifiers, ``top1_agreement`` (fraction of samples whose argmax matches) and both
  top-1 accuracies against the labels (``torch_top1``, ``artifact_top1``);
* for label distributions (task ``label_distribution``: a ``[N, K + 1]`` output, columns
  ``0..K-1`` the distribution over the label set and column ``K`` the expectation, or a
  one-output regressor, ``[N, 1]``), each part on its own, since the whole-vector numbers
  mix probabilities (< 1) with a label-sized expectation that swamps them:
  the distribution's ``dist_cosine``, ``dist_min_cosine`` and ``dist_max_abs_err``; the
  expectation's ``exp_max_abs_err`` / ``exp_mean_abs_err`` in label units and
  ``exp_max_err`` / ``exp_mean_err`` as fractions of the label range (``label_span``:
  the recorded ``lo:hi:step``, else the labels' spread); and against the labels the MAE of
  both, ``torch_mae`` and ``artifact_mae``, with ``mae_gap`` = |artifact - torch| and
  ``mae_gap_rel`` = that gap as a fraction of the label range. Top-1 does not apply.

Thresholds per precision (:data:`THRESHOLDS`) are deliberately tight for fp32 (only
float re-association differs), looser for fp16 (10-bit mantissa) and int8 (8-bit
activations and weights: an int8 model may disagree on near-ties, never broadly).

Label distributions have their own table (:data:`LABEL_THRESHOLDS`), the expectation's
errors measured as a fraction of the label range ``hi - lo`` so one bound serves ages
0..100 and attractiveness 1..5 alike. fp32: 1e-4 of the range for the worst expectation
and for the MAE gap (float re-association leaves < 1e-6), the distribution's cosine
0.9999 and max abs error 1e-3. fp16: 1 % of the range for the worst expectation, 0.5 %
for the MAE gap, cosine 0.999 (measured: 0.04 % and < 0.001 %, TFLite and ONNX fp16).
int8: the distribution's cosine 0.95 (as for classifiers), the **mean** expectation error
within **3 % of the range** and the MAE gap within **2 %**; no bound on the single worst
sample, which at 8 bits is an outlier statistic. Measured (full-integer PT2E TFLite vs
PyTorch, the 160 validation images of an 800-image brightness-to-label CSV, labels
0..100, per-sample sigma 1..4, 32 px):

==========================  ==========  ==========  ============  ===========  ==========
model (epochs)              fp32 MAE    int8 MAE    MAE gap       mean |err|   worst
==========================  ==========  ==========  ============  ===========  ==========
tiny_age_net (8)            1.426       1.856       0.43 (0.43%)  0.80         3.47
compact_cnn w0.5 (12)       4.909       5.223       0.31 (0.31%)  0.79         5.16
==========================  ==========  ==========  ============  ===========  ==========

(distribution cosine 0.9995 and 0.994). The bounds leave 4-5x headroom over those gaps
while still failing an artifact whose MAE drifts by 2 labels on a 0..100 range (two
years of age: a model shipped clearly worse than it was evaluated) or whose read-out is
broken (a shifted or rescaled expectation column moves the mean error even where
errors cancel in the MAE).

Failing any threshold raises :class:`EdgekitError` with all the numbers.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import EdgekitError
from ..tasks import get_task
# the thresholds and task-specific numbers are owned by the tasks (edgekit.tasks); re-exported here
from ..tasks.base import PARITY_THRESHOLDS as THRESHOLDS, cosines as _cosines  # noqa: F401
from ..tasks.label_distribution import (LABEL_THRESHOLDS, _label_numbers, label_range_span,  # noqa: F401
                                        label_values)


def parity_numbers(ref: np.ndarray, out: np.ndarray, task: str = "classify",
                   targets: list[Any] | None = None, label_range: str | None = None) -> dict[str, Any]:
    """Compare artifact outputs ``out`` with PyTorch outputs ``ref`` (same inputs, same order).

    ``label_range`` (``lo:hi:step``, task ``label_distribution``) scales the expectation's
    errors; without it the labels' spread does."""
    ref = np.asarray(ref, dtype=np.float64).reshape(len(ref), -1)
    out = np.asarray(out, dtype=np.float64).reshape(len(out), -1)
    if ref.shape != out.shape:
        raise EdgekitError(f"artifact output shape {list(out.shape)} differs from PyTorch's {list(ref.shape)}")
    err = np.abs(out - ref)
    cos = _cosines(ref, out)
    nums: dict[str, Any] = {"n": int(len(ref)), "max_abs_err": float(err.max()), "mean_abs_err": float(err.mean()),
                            "max_rel_err": float(err.max() / max(np.abs(ref).max(), 1e-12)),
                            "cosine": float(cos.mean()), "min_cosine": float(cos.min())}
    nums.update(get_task(task).parity_numbers(ref, out, targets, label_range))
    return nums


def thresholds_for(precision: str, overrides: dict[str, float] | None = None,
                   task: str = "classify") -> dict[str, float]:
    table = get_task(task).parity_thresholds()
    if precision not in table:
        raise EdgekitError(f"no parity thresholds for precision {precision!r}")
    return {**table[precision], **(overrides or {})}


def failures(nums: dict[str, Any], limits: dict[str, float]) -> list[str]:
    """Human-readable threshold violations ([] when the gate passes); a limit whose number
    the task does not have (top-1 of a regressor, the distribution of a one-output model)
    does not apply."""
    bad = []
    if "max_rel_err" in limits and nums["max_rel_err"] > limits["max_rel_err"]:
        bad.append(f"max rel err {nums['max_rel_err']:.3g} > {limits['max_rel_err']:.3g}")
    if "min_cosine" in limits and nums["cosine"] < limits["min_cosine"]:
        bad.append(f"cosine {nums['cosine']:.6f} < {limits['min_cosine']}")
    if "min_top1_agreement" in limits and "top1_agreement" in nums \
            and nums["top1_agreement"] < limits["min_top1_agreement"]:
        bad.append(f"top-1 agreement {nums['top1_agreement']:.1%} < {limits['min_top1_agreement']:.0%}")
    if "min_dist_cosine" in limits and "dist_cosine" in nums and nums["dist_cosine"] < limits["min_dist_cosine"]:
        bad.append(f"distribution cosine {nums['dist_cosine']:.6f} < {limits['min_dist_cosine']}")
    if "max_dist_abs_err" in limits and "dist_max_abs_err" in nums \
            and nums["dist_max_abs_err"] > limits["max_dist_abs_err"]:
        bad.append(f"distribution max abs err {nums['dist_max_abs_err']:.3g} > {limits['max_dist_abs_err']:.3g}")
    if "max_exp_err" in limits and "exp_max_err" in nums and nums["exp_max_err"] > limits["max_exp_err"]:
        bad.append(f"expectation max abs err {nums['exp_max_abs_err']:.4g} ({nums['exp_max_err']:.3%} of the "
                   f"label range) > {limits['max_exp_err']:.3%}")
    if "max_exp_mean_err" in limits and "exp_mean_err" in nums and nums["exp_mean_err"] > limits["max_exp_mean_err"]:
        bad.append(f"expectation mean abs err {nums['exp_mean_abs_err']:.4g} ({nums['exp_mean_err']:.3%} of the "
                   f"label range) > {limits['max_exp_mean_err']:.3%}")
    if "max_mae_gap" in limits and "mae_gap_rel" in nums and nums["mae_gap_rel"] > limits["max_mae_gap"]:
        bad.append(f"MAE gap {nums['mae_gap']:.4g} ({nums['mae_gap_rel']:.3%} of the label range) > "
                   f"{limits['max_mae_gap']:.3%}")
    return bad


def format_numbers(nums: dict[str, Any]) -> str:
    parts = [f"n={nums['n']}", f"max abs err {nums['max_abs_err']:.3g}", f"mean abs err {nums['mean_abs_err']:.3g}",
             f"max rel err {nums['max_rel_err']:.3g}", f"cosine {nums['cosine']:.6f}"]
    if "top1_agreement" in nums:
        parts.append(f"top-1 agreement {nums['top1_agreement']:.1%}")
    if "artifact_top1" in nums:
        parts.append(f"top-1 {nums['torch_top1']:.1f}% torch vs {nums['artifact_top1']:.1f}% artifact")
    if "dist_cosine" in nums:
        parts.append(f"distribution cosine {nums['dist_cosine']:.6f} (min {nums['dist_min_cosine']:.6f}), "
                     f"max abs err {nums['dist_max_abs_err']:.3g}")
    if "exp_max_abs_err" in nums:
        parts.append(f"expectation max abs err {nums['exp_max_abs_err']:.4g} ({nums['exp_max_err']:.3%} of range "
                     f"{nums['label_span']:g}), mean {nums['exp_mean_abs_err']:.3g}")
    if "artifact_mae" in nums:
        parts.append(f"MAE {nums['torch_mae']:.4g} torch vs {nums['artifact_mae']:.4g} artifact "
                     f"(gap {nums['mae_gap']:.3g}, {nums['mae_gap_rel']:.3%} of range)")
    return ", ".join(parts)


def gate(name: str, precision: str, nums: dict[str, Any], overrides: dict[str, float] | None = None,
         task: str = "classify") -> dict[str, Any]:
    """Check ``nums`` against the precision's thresholds (the task's table); raise with every
    number if it fails."""
    limits = thresholds_for(precision, overrides, task)
    bad = failures(nums, limits)
    if bad:
        raise EdgekitError(f"{name}: parity gate failed ({precision}): {'; '.join(bad)} [{format_numbers(nums)}]")
    return {**nums, "thresholds": limits, "passed": True}
