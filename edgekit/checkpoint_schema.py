"""The checkpoint schema: every field a checkpoint may carry, its type and range, in one table.

:func:`edgekit.checkpoint.load_checkpoint` runs :func:`validate` on the loaded mapping before
anything is built from it, so a checkpoint with a missing key, a wrong type or an impossible
value (a negative input size) is one line naming the field, e.g. ``m.pt: field
'input_spec.shape' must be positive integers, got [-3, 32, 32]``, never a ``KeyError`` or a
traceback from deep inside a stage. :data:`SCHEMA` is declarative: a row per field (a dotted
path), a check, the words the error uses, and whether the field is required (always, never,
or depending on the checkpoint, e.g. ``input_spec.resize`` for image inputs only). A parent
row comes before its children, so a child is only looked up inside a mapping.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Real
from typing import Any, Callable

from .errors import EdgekitError
from .tasks import list_tasks

INPUT_KINDS = ("clip", "tabular")


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _positive_int(v: Any) -> bool:
    return _int(v) and v > 0


def _number(v: Any) -> bool:
    return isinstance(v, Real) and not isinstance(v, bool) and math.isfinite(float(v))


def _mapping(v: Any) -> bool:
    return isinstance(v, dict) and all(isinstance(k, str) for k in v)


def _list_of(check: Callable[[Any], bool], min_len: int = 0) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, (list, tuple)) and len(v) >= min_len and all(check(x) for x in v)


def _or_none(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: v is None or check(v)


def _size(v: Any) -> bool:
    """A side length or an (height, width) pair."""
    return _positive_int(v) or (_list_of(_positive_int, 2)(v) and len(v) == 2)


def _tensors(v: Any) -> bool:
    import torch

    return _mapping(v) and all(isinstance(t, torch.Tensor) for t in v.values())


def _plan_modules(v: Any) -> bool:
    """Per-module structural attributes: ``{"layer1.0.conv1": {"type": "Conv2d", "out_channels": 32}}``."""
    from .channel_plan import _STRUCT_ATTRS

    allowed = {"type"} | {name for _, names in _STRUCT_ATTRS for name in names}
    return _mapping(v) and all(
        _mapping(attrs) and set(attrs) <= allowed and all(
            isinstance(x, str) if k == "type" else (_positive_int(x) or _list_of(_positive_int, 1)(x))
            for k, x in attrs.items())
        for attrs in v.values())


def _image_spec(ckpt: dict[str, Any]) -> bool:
    spec = ckpt.get("input_spec") or {}
    return bool(spec) and spec.get("kind") != "tabular"


def _any_spec(ckpt: dict[str, Any]) -> bool:
    return bool(ckpt.get("input_spec"))


def _spec_kind(kind: str) -> Callable[[dict[str, Any]], bool]:
    return lambda ckpt: (ckpt.get("input_spec") or {}).get("kind") == kind


@dataclass(frozen=True)
class Field:
    """One row of the schema: ``path`` (dotted) must satisfy ``check``, described as ``expect``."""

    path: str
    check: Callable[[Any], bool]
    expect: str | Callable[[], str]  # a callable when the valid values are a registry's (read when needed)
    required: bool | Callable[[dict[str, Any]], bool] = True

    @property
    def expected(self) -> str:
        return self.expect() if callable(self.expect) else self.expect


#: Every field of a checkpoint (:meth:`edgekit.checkpoint.Checkpoint.to_dict`), parents first.
SCHEMA: tuple[Field, ...] = (
    Field("version", lambda v: _int(v) and v >= 0, "a non-negative integer", False),
    Field("arch", _mapping, "a mapping with name, kwargs and channel_plan"),
    Field("arch.name", lambda v: isinstance(v, str) and bool(v.strip()), "a non-empty architecture name"),
    Field("arch.kwargs", _mapping, "a mapping of architecture options"),
    Field("arch.kwargs.num_classes", _positive_int, "a positive integer", False),
    Field("arch.kwargs.feature_dim", _positive_int, "a positive integer", False),
    Field("arch.kwargs.frames", _positive_int, "a positive integer", False),
    Field("arch.kwargs.small_input", lambda v: isinstance(v, bool), "true or false", False),
    Field("arch.kwargs.head", _or_none(lambda v: isinstance(v, str)), "a head name", False),
    Field("arch.kwargs.label_range", _or_none(lambda v: isinstance(v, str)), "a label range lo:hi:step", False),
    Field("arch.channel_plan", _or_none(_mapping), "a mapping (the pruned widths)", False),
    Field("arch.channel_plan.modules", _plan_modules,
          "a mapping of layer -> structural widths (positive integers)", False),
    Field("arch.channel_plan.tensors", lambda v: _mapping(v) and all(
        _list_of(lambda d: _int(d) and d >= 0)(s) for s in v.values()),
          "a mapping of tensor -> shape (non-negative integers)", False),
    Field("state_dict", _tensors, "a mapping of names to tensors"),
    Field("task", lambda v: isinstance(v, str) and v in list_tasks(), lambda: f"one of {', '.join(list_tasks())}"),
    Field("labels", _list_of(lambda v: isinstance(v, str) or _number(v)), "a list of label names"),
    Field("input_spec", _mapping, "a mapping (shape, resize, mean, std...)"),
    Field("input_spec.kind", lambda v: v in INPUT_KINDS, f"one of {', '.join(INPUT_KINDS)} (or absent: images)", False),
    Field("input_spec.shape", _list_of(_positive_int, 1), "positive integers", _any_spec),
    Field("input_spec.resize", _size, "a positive size or [height, width]", _image_spec),
    Field("input_spec.crop", _or_none(_size), "null, a positive size or [height, width]", False),
    Field("input_spec.mean", _list_of(_number, 1), "a list of numbers", _any_spec),
    Field("input_spec.std", _list_of(lambda v: _number(v) and v > 0, 1), "a list of positive numbers", _any_spec),
    Field("input_spec.color", lambda v: v in ("RGB", "L"), "RGB or L", False),
    Field("input_spec.frames", _positive_int, "a positive integer", _spec_kind("clip")),
    Field("input_spec.features", _list_of(lambda v: isinstance(v, str), 1), "a list of feature names",
          _spec_kind("tabular")),
    Field("data", _or_none(_mapping), "a mapping (spec, val, seed)", False),
    Field("data.spec", _or_none(lambda v: isinstance(v, str)), "a data spec", False),
    Field("data.val", _or_none(lambda v: _number(v) and 0 <= v < 1), "a fraction in [0, 1)", False),
    Field("data.seed", _or_none(lambda v: _int(v) and v >= 0), "a non-negative integer", False),
    Field("data.labeled_fraction", _or_none(lambda v: _number(v) and 0 < v <= 1), "a fraction in (0, 1]", False),
    Field("data.labeled_seed", _or_none(lambda v: _int(v) and v >= 0), "a non-negative integer", False),
    Field("metrics", _mapping, "a mapping"),
    Field("provenance", _mapping, "a mapping"),
    Field("extra", _or_none(_mapping), "a mapping", False),
)

_MISSING = object()


def _lookup(obj: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(obj, dict) or part not in obj:
            return _MISSING
        obj = obj[part]
    return obj


def _show(value: Any) -> str:
    text = repr(value)
    if type(value).__name__ == "Tensor":
        text = f"a tensor of shape {list(value.shape)}"
    return text if len(text) <= 80 else text[:77] + "..."


def validate(ckpt: dict[str, Any], source: str) -> None:
    """Check ``ckpt`` against :data:`SCHEMA`; the first bad field is one :class:`EdgekitError`
    line naming ``source`` (the file), the field, what it must be and what it is."""
    for field in SCHEMA:
        parent, _, _ = field.path.rpartition(".")
        if parent and not isinstance(_lookup(ckpt, parent), dict):
            continue  # an absent optional parent (a checked parent that is not a mapping failed before)
        value = _lookup(ckpt, field.path)
        if value is _MISSING:
            required = field.required(ckpt) if callable(field.required) else field.required
            if required:
                raise EdgekitError(f"{source}: field {field.path!r} is missing (it must be {field.expected})")
            continue
        if not field.check(value):
            raise EdgekitError(f"{source}: field {field.path!r} must be {field.expected}, got {_show(value)}")
