"""``EvalConfig``: the options of ``edgekit eval`` (:func:`edgekit.evaluation.evaluate` and, with
``--streaming``, :func:`edgekit.evaluation.streaming.evaluate_streaming`), validated.

Torch-free (like :mod:`edgekit.stage_config`), so the CLI reads its defaults from here; the
smoother's window and agreement (:mod:`edgekit.evaluation.smoothing`, also the demo's) are declared here
too, below every module that uses them. Zero, negative and NaN are one-line errors
(:mod:`edgekit.numbers`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ..errors import EdgekitError
from ..numbers import non_negative_int, positive_int
from ..stage_config import check_numbers, device_name

#: the demo's window: logits summed over the last 12 processed frames
DEFAULT_WINDOW = 12
#: a new label is accepted after this many agreeing predictions
DEFAULT_AGREE = 2
#: points of the accuracy-over-the-clip curve
DEFAULT_BINS = 10
#: the splits a checkpoint's data divides into
SPLITS = ("val", "train")
#: clips per batch of :func:`~edgekit.evaluation.streaming.evaluate_streaming` called without ``batch_size``:
#: a batch there is whole clips (``frames`` images each offline, every processed frame online), so
#: a quarter of :class:`EvalConfig`'s image batch. The CLI passes its one ``--batch-size`` to both.
STREAM_BATCH_SIZE = 32


def parse_stride(stride: int | str) -> int | str:
    """``"auto"`` (the training segment spacing, resolved per dataset) or a positive integer (``"3"`` too)."""
    if stride == "auto":
        return stride
    if isinstance(stride, str):
        if not stride.strip().isdigit():
            raise EdgekitError(f"stride must be a positive integer or 'auto', got {stride!r}")
        stride = int(stride)
    return positive_int("stride", stride)


@dataclass
class EvalConfig:
    """How to evaluate: ``split`` of the checkpoint's data, ``batch_size`` images per batch on
    ``device``; with streaming, the smoother (sum of the last ``window`` processed frames' logits,
    a new label after ``agree`` agreeing predictions), ``bins`` points of the accuracy-over-the-clip
    curve, every ``stride``-th frame processed and ``workers`` data-loading processes."""

    split: str = "val"
    batch_size: int = 128
    device: str = "auto"
    window: int = DEFAULT_WINDOW
    agree: int = DEFAULT_AGREE
    bins: int = DEFAULT_BINS
    stride: int | str = "auto"
    workers: int = 0

    #: each number's check (:func:`~edgekit.stage_config.check_numbers`; the CLI's option types)
    CHECKS: ClassVar[dict[str, Any]] = {"window": positive_int, "agree": positive_int, "bins": positive_int,
                                        "batch_size": positive_int, "workers": non_negative_int}

    def __post_init__(self) -> None:
        check_numbers(self)
        if self.split not in SPLITS:
            raise EdgekitError(f"split must be 'val' or 'train', got {self.split!r}")
        self.stride = parse_stride(self.stride)
        self.device = device_name(self.device)
