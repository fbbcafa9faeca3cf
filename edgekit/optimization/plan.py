"""A candidate compression plan and its content key.

A :class:`Plan` says what to do to the original checkpoint: prune with CURL to a fraction
of its MACs (``None``: leave it whole), recover (:data:`RECOVERIES`: ``kd``, distillation from
the original, :mod:`edgekit.compress.distill`; ``finetune``, plain fine-tuning on the labels,
:func:`edgekit.compress.recovery.finetune`), and export at a
precision for a target. Every recovery of one MACs fraction starts from the same pruned
checkpoint (:func:`prune_key`), so trying both recoveries costs one pruning. A plan's
**key** is the sha256 of the parent checkpoint's sha256, the
plan's fields and the settings that change its result (proxy set, seeds, calibration and
parity sizes, recovery learning rate, ...): two runs that would compute the same
candidate find the same folder, and a changed setting never reuses a stale one.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any, Iterable

from ..errors import EdgekitError
from ..formats import PRECISIONS
from ..stage_config import choice

#: How a pruned candidate recovers: KD from the original, or plain fine-tuning on the labels.
RECOVERIES = ("kd", "finetune")


def parse_recoveries(value: str | Iterable[str]) -> tuple[str, ...]:
    """``"kd"``, ``"kd,finetune"`` or a list of :data:`RECOVERIES` -> a tuple without repeats, in the
    given order; nothing, or an unknown name, is a one-line error."""
    items = value.split(",") if isinstance(value, str) else list(value)
    names = [choice("recovery", str(v).strip(), RECOVERIES) for v in items if str(v).strip()]
    if not names:
        raise EdgekitError(f"recovery: name at least one of {', '.join(RECOVERIES)}")
    return tuple(dict.fromkeys(names))


def prune_key(parent_sha256: str, macs: float, settings: dict[str, Any]) -> str:
    """16 hex digits naming the pruned checkpoint of a MACs fraction: every recovery of that
    fraction starts from the same pruned model (the plan's recovery and precision are not in it)."""
    text = json.dumps({"parent": parent_sha256, "macs": round(float(macs), 4), "settings": settings}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Plan:
    """``macs``: kept fraction of the MACs (None: unpruned); ``recovery``: one of
    :data:`RECOVERIES` or None, for ``recovery_epochs``; ``precision``: the one asked for (the
    export falls back to the next wider one when its parity gate fails); ``target``: the export
    target; ``unrounded``: prune keeping any channel count instead of the search's multiple."""

    macs: float | None
    recovery: str | None
    recovery_epochs: int
    precision: str
    target: str
    unrounded: bool = False

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise EdgekitError(f"unknown precision {self.precision!r}; expected one of {', '.join(PRECISIONS)}")
        if self.recovery is not None and self.recovery not in RECOVERIES:
            raise EdgekitError(f"unknown recovery {self.recovery!r}; expected one of {', '.join(RECOVERIES)}")
        if self.macs is None and (self.recovery is not None or self.unrounded):
            raise EdgekitError("an unpruned plan has nothing to recover or round")

    @classmethod
    def unpruned(cls, precision: str, target: str) -> "Plan":
        return cls(None, None, 0, precision, target)

    @classmethod
    def pruned(cls, macs: float, recovery_epochs: int, precision: str, target: str, recovery: str = "kd",
               unrounded: bool = False) -> "Plan":
        return cls(round(float(macs), 4), recovery if recovery_epochs > 0 else None, recovery_epochs, precision, target,
                   unrounded)

    @property
    def label(self) -> str:
        """Short readable name: ``unpruned``, ``macs0.50+kd3``, ``macs0.35+finetune5``,
        ``macs0.50u+kd5`` (``u``: unrounded channel counts); also the artifact's model name."""
        if self.macs is None:
            return "unpruned"
        rec = f"+{self.recovery}{self.recovery_epochs}" if self.recovery else ""
        return f"macs{self.macs:.2f}{'u' if self.unrounded else ''}{rec}"

    def precisions(self) -> list[str]:
        """The precision asked for, then each wider one: int8 -> fp16 -> fp32."""
        order = ("int8", "fp16", "fp32")
        return list(order[order.index(self.precision):])

    def key(self, parent_sha256: str, settings: dict[str, Any]) -> str:
        """16 hex digits of sha256(parent sha256, plan fields, result-changing settings)."""
        fields = asdict(self)
        if not self.unrounded:
            del fields["unrounded"]  # rounded plans keep the keys they had before the field existed
        text = json.dumps({"parent": parent_sha256, "plan": fields, "settings": settings}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "label": self.label}
