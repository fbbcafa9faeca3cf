"""Checked numbers: one rule for every numeric option of every command and API function.

Zero, negative and NaN are bad input, never "not given": ``None`` alone means "not given".
Each check raises :class:`~edgekit.errors.EdgekitError` with one line naming the option, so
the CLI (through the click parameter types below) and the Python API reject the same
values with the same words.
"""
from __future__ import annotations

import math
from typing import Any

import click

from .errors import EdgekitError

#: the largest integer an option may take: every count ends up in a 64-bit tensor, index or loop
INT64_MAX = 2**63 - 1
#: the most epochs any command trains. Far above any real run (the longest recipes train a few
#: hundred), so a count above it is a typo that would otherwise start a run that never ends.
MAX_EPOCHS = 100_000


def _number(name: str, value: Any, kind: type) -> float:
    try:
        num = kind(value)
    except (TypeError, ValueError, OverflowError):  # int(inf): OverflowError
        raise EdgekitError(f"{name} must be {'an integer' if kind is int else 'a number'}, got {value!r}") from None
    if kind is int and isinstance(value, float) and value != num:
        raise EdgekitError(f"{name} must be an integer, got {value!r}")
    if kind is int and abs(num) > INT64_MAX:
        raise EdgekitError(f"{name} must fit in 64 bits (at most {INT64_MAX}), got {value!r}")
    if isinstance(num, float) and not math.isfinite(num):
        raise EdgekitError(f"{name} must be a finite number, got {value!r}")
    return num


def positive_int(name: str, value: Any) -> int:
    """An integer >= 1."""
    n = int(_number(name, value, int))
    if n < 1:
        raise EdgekitError(f"{name} must be a positive integer, got {value!r}")
    return n


def non_negative_int(name: str, value: Any) -> int:
    """An integer >= 0."""
    n = int(_number(name, value, int))
    if n < 0:
        raise EdgekitError(f"{name} must be >= 0, got {value!r}")
    return n


def epoch_count(name: str, value: Any, *, allow_zero: bool = False) -> int:
    """An epoch count: an integer >= 1 (>= 0 with ``allow_zero``, "no training") and at most
    :data:`MAX_EPOCHS`."""
    n = non_negative_int(name, value) if allow_zero else positive_int(name, value)
    if n > MAX_EPOCHS:
        raise EdgekitError(f"{name} must be at most {MAX_EPOCHS:,} epochs, got {value!r}")
    return n


def positive_float(name: str, value: Any) -> float:
    """A finite number > 0."""
    x = _number(name, value, float)
    if x <= 0:
        raise EdgekitError(f"{name} must be > 0, got {value!r}")
    return x


def non_negative_float(name: str, value: Any) -> float:
    """A finite number >= 0."""
    x = _number(name, value, float)
    if x < 0:
        raise EdgekitError(f"{name} must be >= 0, got {value!r}")
    return x


def fraction(name: str, value: Any, *, closed_right: bool = True) -> float:
    """A number in (0, 1] (or (0, 1) with ``closed_right=False``)."""
    x = _number(name, value, float)
    if not (0 < x <= 1 if closed_right else 0 < x < 1):
        raise EdgekitError(f"{name} must be in (0, 1{']' if closed_right else ')'}, got {value!r}")
    return x


def unit_interval(name: str, value: Any) -> float:
    """A number in [0, 1] (a probability, a loss weight share)."""
    x = _number(name, value, float)
    if not 0 <= x <= 1:
        raise EdgekitError(f"{name} must be in [0, 1], got {value!r}")
    return x


def milestones(name: str, value: Any) -> tuple[float, ...]:
    """Learning-rate milestones as fractions of the run: ``"0.5,0.75"`` or ``(0.5, 0.75)``, each in
    (0, 1) and strictly increasing (a step schedule divides the rate at each; see
    :func:`edgekit.training.loop.build_scheduler`)."""
    if isinstance(value, str):
        items: list[Any] = [v.strip() for v in value.split(",")]
    elif isinstance(value, (int, float)):
        items = [value]
    else:
        items = list(value) if isinstance(value, (list, tuple)) else []
    if not items or any(v == "" for v in items):
        raise EdgekitError(f"{name} must be comma-separated fractions of the epochs such as 0.5,0.75, got {value!r}")
    try:
        out = tuple(fraction(name, v, closed_right=False) for v in items)
    except EdgekitError:
        raise EdgekitError(f"{name} are fractions of the epochs, each in (0, 1) (0.5 = half-way), "
                           f"got {value!r}") from None
    if any(b <= a for a, b in zip(out, out[1:])):
        raise EdgekitError(f"{name} must be strictly increasing fractions of the epochs, got {value!r}")
    return out


def optional(check: Any, name: str, value: Any, **kw: Any) -> Any:
    """``check(name, value)`` unless ``value`` is None (not given)."""
    return None if value is None else check(name, value, **kw)


class Checked(click.ParamType):
    """A click parameter type running one of the checks above; its error is one line."""

    def __init__(self, check: Any, label: str, **kw: Any) -> None:
        self.check, self.name, self.kw = check, label, kw

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if value is None or (not isinstance(value, str) and not isinstance(value, (int, float))):
            return value
        opt = param.opts[0] if param is not None and param.opts else "value"
        try:
            return self.check(opt, value, **self.kw)
        except EdgekitError as exc:
            self.fail(str(exc), param, ctx)


POSITIVE_INT = Checked(positive_int, "INTEGER>=1")
NON_NEGATIVE_INT = Checked(non_negative_int, "INTEGER>=0")
POSITIVE_FLOAT = Checked(positive_float, "NUMBER>0")
NON_NEGATIVE_FLOAT = Checked(non_negative_float, "NUMBER>=0")
FRACTION = Checked(fraction, "FRACTION")  # (0, 1]
UNIT_INTERVAL = Checked(unit_interval, "[0,1]")
#: the click type running each check, for CLI options made from a config's fields (``CHECKS``)
CLICK_TYPES = {positive_int: POSITIVE_INT, non_negative_int: NON_NEGATIVE_INT, positive_float: POSITIVE_FLOAT,
               non_negative_float: NON_NEGATIVE_FLOAT, fraction: FRACTION, unit_interval: UNIT_INTERVAL}
OPEN_FRACTION = Checked(fraction, "(0,1)", closed_right=False)  # strictly between 0 and 1 (a momentum)
MILESTONES = Checked(milestones, "F1,F2,...")  # increasing fractions of the epochs, each in (0, 1)
EPOCHS = Checked(epoch_count, "EPOCHS")  # 1..MAX_EPOCHS
EPOCHS_OR_ZERO = Checked(epoch_count, "EPOCHS>=0", allow_zero=True)  # 0..MAX_EPOCHS
