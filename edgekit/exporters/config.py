"""``ExportConfig``: the options of ``edgekit export`` (and :func:`edgekit.export`), validated.

Torch-free (like :mod:`edgekit.stage_config`), so the CLI reads its defaults and the optimizer
its sample sizes without importing a converter. :func:`edgekit.exporters.pipeline.export`
builds one from its arguments over a deployment profile's values over these defaults
(explicit > profile > default), so ``None`` in an argument means "not given" and every
default below is declared once.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ..errors import EdgekitError
from ..numbers import positive_int
from ..stage_config import check_numbers

#: images int8 calibration reads (training split) and the parity gate compares (validation split),
#: for export, ``verify -n`` and each candidate of ``optimize``
SAMPLE_IMAGES = 256
#: the same for a streaming export, in whole clips (each clip is every frame)
STREAM_CLIPS = 32
#: the ONNX opset written when none is asked for (:mod:`edgekit.exporters.onnx`)
DEFAULT_OPSET = 18


@dataclass
class ExportConfig:
    """What to export and how to check it.

    ``targets``/``precision``: format and precision names (an empty ``precision``: each target's
    own, fp32 for onnx and tflite, fp16 for coreml and tensorrt); names are checked against
    :mod:`edgekit.formats` by the export itself, which also expands ``all``. ``calib_size``,
    ``parity_size``: calibration and parity-gate samples, None: :data:`SAMPLE_IMAGES` images, or
    :data:`STREAM_CLIPS` whole clips with ``streaming``. ``opset``: None is the exporter's
    :data:`DEFAULT_OPSET`. ``nhwc``: TFLite float NHWC input; ``dynamic_batch``: ONNX batch
    dimension symbolic (False: fixed batch 1); ``max_batch``: TensorRT profile's largest batch.
    """

    targets: tuple[str, ...] = ("onnx",)
    precision: tuple[str, ...] = ()
    calib_size: int | None = None
    parity_size: int | None = None
    opset: int | None = None
    nhwc: bool = False
    dynamic_batch: bool = True
    max_batch: int | None = None
    streaming: bool = False

    #: each number's check (:func:`~edgekit.stage_config.check_numbers`; the CLI's option types)
    CHECKS: ClassVar[dict[str, Any]] = {"calib_size": positive_int, "parity_size": positive_int,
                                        "opset": positive_int, "max_batch": positive_int}

    def __post_init__(self) -> None:
        self.targets, self.precision = tuple(self.targets), tuple(self.precision)
        check_numbers(self)
        samples = STREAM_CLIPS if self.streaming else SAMPLE_IMAGES
        self.calib_size = samples if self.calib_size is None else self.calib_size
        self.parity_size = samples if self.parity_size is None else self.parity_size
        for name in ("nhwc", "dynamic_batch", "streaming"):
            if not isinstance(getattr(self, name), bool):
                raise EdgekitError(f"{name} must be true or false, got {getattr(self, name)!r}")

    def options(self) -> dict[str, object]:
        """The options a target's exporter takes (:data:`edgekit.formats.Format.options`)."""
        return {k: getattr(self, k) for k in ("nhwc", "opset", "dynamic_batch", "max_batch")}

