"""Turn a converter's exception into one line naming the operator and the module that produced it.

Converters fail deep inside their lowering with messages such as ``While executing
%_fft_r2c : ... target=torch.ops.aten._fft_r2c.default``. We pull the operator name out
of the message, find the graph node calling it in a ``torch.export`` trace of the model,
and read the module path from the node's ``nn_module_stack`` (``head.fft`` rather than
a line in the converter).
"""
from __future__ import annotations

import re
from typing import Any

import torch
from torch import nn

from ..errors import EdgekitError

_OP_PATTERNS = (
    re.compile(r"torch\.ops\.(?:aten|prims|quantized_decomposed)\.([A-Za-z0-9_]+)"),
    re.compile(r"\baten[.:]{1,2}([A-Za-z0-9_]+)"),
    re.compile(r"(?:op|operator|Op)\s*[`'\"]?(?:type)?\s*[:=]?\s*[`'\"]([A-Za-z0-9_.:]+)[`'\"]"),
)


def operator_in(message: str) -> str | None:
    """The first operator name mentioned in a converter message, if any."""
    for pat in _OP_PATTERNS:
        m = pat.search(message)
        if m:
            return m.group(1).split(".")[-1] if "." in m.group(1) and "::" not in m.group(1) else m.group(1)
    return None


def module_of(model: nn.Module, sample: torch.Tensor, op: str) -> str | None:
    """Dotted path of the module whose forward calls ``op`` (from a torch.export trace)."""
    try:
        ep = torch.export.export(model, (sample,), strict=False)
    except Exception:
        return None
    base = op.split("::")[-1]
    for graph in (ep.graph, _decomposed(ep)):
        found = _find(graph, base)
        if found:
            return found
    return None


def _decomposed(ep: Any) -> Any:
    try:
        return ep.run_decompositions().graph
    except Exception:
        return ep.graph


def _find(graph: Any, base: str) -> str | None:
    for node in graph.nodes:
        if node.op != "call_function":
            continue
        name = getattr(node.target, "__name__", str(node.target))
        if name.split(".")[0] == base or base in str(node.target):
            stack = node.meta.get("nn_module_stack") or {}
            if stack:
                path = list(stack.values())[-1][0]
                return str(path).replace("L['self'].", "").replace("L__self__.", "") or "<root>"
            return "<root>"
    return None


def converter_error(target: str, converter: str, exc: BaseException, model: nn.Module,
                    sample: torch.Tensor) -> EdgekitError:
    """An :class:`EdgekitError`: ``<target>: <converter> cannot convert operator X in module Y: <message>``."""
    msg = " ".join(str(exc).split("Original traceback")[0].split()) or type(exc).__name__
    op = operator_in(str(exc))
    where = module_of(model, sample, op) if op else None
    head = f"{target}: {converter} cannot convert"
    if op:
        head += f" operator {op}"
        if where:
            head += f" in module {where!r} ({_module_type(model, where)})"
    else:
        head += " this model"
    return EdgekitError(f"{head}: {type(exc).__name__}: {msg[:400]}")


def _module_type(model: nn.Module, path: str) -> str:
    try:
        mod: Any = model.get_submodule(path) if path != "<root>" else model
        return type(mod).__name__
    except AttributeError:
        return "?"
