"""Latency budgets: ``2ms@litert`` -> :class:`Budget` (milliseconds, runtime, export target).

A budget names the runtime the final artifact must run on and the median latency (batch 1)
it must meet there; the runtime decides the export target (litert -> tflite, onnxruntime ->
onnx, :func:`edgekit.formats.export_target_for`). Bad input is one line: a missing unit or
runtime, a latency that is zero, negative or not a number, an unknown runtime (with the
closest names), or one edgekit cannot export for. Torch-free, so the CLI parses it at once.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import formats
from ..errors import EdgekitError
from ..numbers import Checked, positive_float

EXAMPLE = "2ms@litert"


@dataclass(frozen=True)
class Budget:
    """The latency the final artifact must meet (``ms``, median at batch 1) on ``runtime``."""

    ms: float
    runtime: str

    @property
    def target(self) -> str:
        """The export target whose artifacts ``runtime`` runs (tflite for litert, ...)."""
        return formats.export_target_for(self.runtime)

    def met(self, p50_ms: float | None) -> bool:
        return p50_ms is not None and p50_ms <= self.ms

    def unavailable(self) -> str | None:
        """One line saying why this machine cannot export for or run on the budget's runtime, or None."""
        return formats.runtime_unavailable(self.runtime) or formats.export_unavailable(self.target)

    def __str__(self) -> str:
        return f"{self.ms:g}ms@{self.runtime}"


def parse_budget(text: str | Budget) -> Budget:
    """``"2ms@litert"`` (also ``"2 ms @ litert"``, ``"0.5ms@onnxruntime"``) -> :class:`Budget`."""
    if isinstance(text, Budget):
        return text
    raw = str(text)
    ms, at, runtime = raw.partition("@")
    ms, runtime = ms.strip().lower(), runtime.strip().lower()
    if not at or not runtime or not ms.endswith("ms"):
        raise EdgekitError(f"bad budget {raw!r}; expected milliseconds at a runtime, e.g. {EXAMPLE}")
    value = positive_float(f"budget {raw!r}: the latency (ms)", ms.removesuffix("ms").strip())
    try:
        formats.export_target_for(runtime)  # an unknown runtime: the closest names
    except EdgekitError as exc:
        raise EdgekitError(f"bad budget {raw!r}: {exc}") from None
    return Budget(value, runtime)


def _budget_option(name: str, value: Any) -> Budget:
    return parse_budget(value)


#: click type for ``--budget``: a bad budget is one usage line, exit 2.
BUDGET = Checked(_budget_option, "MS@RUNTIME")
