"""Global one-shot selection of the units to remove (CURL: Luo & Wu, CVPR 2020; docs/methods.md section 1.2).

All units of all prunable groups are pooled and sorted by importance, lowest first;
units are taken in that order until the model meets its MACs or parameter target.
The minimum keep ratio per layer group (default 0.3) is a **hard** constraint: a
group that has reached it is skipped, never exceeded (Torch-Pruning's
``max_pruning_ratio`` alone let a KL ranking strip layer4 of resnet18 to 8 of 512
channels, docs/findings.md item 2). The number of removed units is not a knob: the walk stops
at the first prefix whose exact cost (:meth:`UnitGraph.macs`) meets the target, so
the result lands within one unit's cost of it.

Rankings: ``kl`` sorts by the raw score (as in the paper); ``kl-per-mac`` divides each
unit's score by the MACs its removal saves, so cheap-to-keep channels in expensive
layers go first (better at equal MACs, docs/findings.md item 3); ``kl-norm`` divides each
unit's score by its group's mean score, so every group competes on how its units compare
with each other rather than on the scale of its KLs (Torch-Pruning's per-group importance
normalisation; Fang et al., "DepGraph: Towards Any Structural Pruning", CVPR 2023).
Baseline criteria rank by their raw importance.

``floors``: units each group (by name) must keep, overriding ``min_keep`` of its current
size; multi-step pruning passes the floors of the original widths so that the minimum
keep ratio holds against the original network, not the thinned one.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..errors import EdgekitError
from .criteria.curl import RANKS
from .units import UnitGraph


@dataclass(frozen=True)
class Target:
    """What the pruned model must meet: ``kind`` macs | params | latency, and a ratio or a value."""

    kind: str
    value: float  # ratio of the original (<= 1) for macs/params; milliseconds for latency
    runtime: str | None = None

    def __str__(self) -> str:
        if self.kind == "latency":
            return f"latency={self.value:g}ms@{self.runtime}"
        return f"{self.kind}={self.value:g}"


def parse_target(text: str) -> Target:
    """``macs=0.5`` | ``params=0.5`` (fraction of the original) | ``latency=5ms@litert``."""
    kind, eq, value = str(text).partition("=")
    kind = kind.strip().lower()
    if not eq or kind not in ("macs", "params", "latency"):
        raise EdgekitError(f"bad target {text!r}; expected macs=0.5, params=0.5 or latency=5ms@RUNTIME")
    if kind == "latency":
        ms, at, runtime = value.partition("@")
        ms = ms.strip().lower().removesuffix("ms")
        try:
            v = float(ms)
        except ValueError:
            raise EdgekitError(f"bad latency target {text!r}; expected e.g. latency=5ms@litert") from None
        if not math.isfinite(v) or v <= 0 or not runtime:
            raise EdgekitError(f"bad latency target {text!r}; expected a positive number of ms, e.g. latency=5ms@litert")
        return Target("latency", v, runtime.strip())
    try:
        v = float(value)
    except ValueError:
        raise EdgekitError(f"bad target {text!r}: {value!r} is not a number") from None
    if not 0 < v < 1:  # NaN fails too
        raise EdgekitError(f"target {text!r} must be a fraction of the original in (0, 1)")
    return Target(kind, v)


@dataclass
class Selection:
    """Root channel indices to remove per group, and the predicted cost after removal."""

    removal: dict[int, list[int]]
    macs: float
    params: float
    units_removed: int

    def counts(self) -> dict[int, int]:
        return {g: len(v) for g, v in self.removal.items()}


def _effective(n: int, size: int, round_to: int | None) -> int:
    if not round_to:
        return n
    kept = size - n
    return size - min(size, math.ceil(kept / round_to) * round_to)


def select(graph: UnitGraph, scores: dict[int, torch.Tensor], *, kind: str, ratio: float, rank: str = "kl-per-mac",
           min_keep: float = 0.3, round_to: int | None = None, floors: dict[str, int] | None = None) -> Selection:
    """Remove the lowest-ranked units until ``kind`` (macs | params) is at most ``ratio`` of the original."""
    if rank not in RANKS + ("raw",):
        raise EdgekitError(f"unknown ranking {rank!r}; expected one of {', '.join(RANKS)}")
    if not 0 < min_keep <= 1:
        raise EdgekitError(f"min_keep must be in (0, 1], got {min_keep}")
    cost = graph.macs if kind == "macs" else graph.params
    base = cost({})
    goal = ratio * base
    entries: list[tuple[float, int, int]] = []
    for g in graph.groups:
        if not g.prunable or g.index not in scores:
            continue
        s = scores[g.index].double()
        if rank == "kl-per-mac":
            s = s / max(graph.unit_macs(g), 1.0)
        elif rank == "kl-norm":
            s = s / max(float(s.mean()), 1e-30)
        entries += [(float(v), g.index, j) for j, v in enumerate(s)]
    entries.sort()
    caps = {g.index: g.max_removable(min_keep, round_to, (floors or {}).get(g.name)) for g in graph.groups}
    picked: dict[int, list[int]] = {}
    eff: dict[int, int] = {}
    now = base
    for _, gi, j in entries:
        if now <= goal:
            break
        lst = picked.setdefault(gi, [])
        if len(lst) >= caps[gi]:
            continue
        lst.append(j)
        e = _effective(len(lst), graph.groups[gi].size, round_to)
        if e != eff.get(gi, 0):
            eff[gi] = e
            now = cost(eff)
    if now > goal * 1.0000001:
        raise EdgekitError(
            f"target {kind}={ratio:g} is unreachable with min_keep={min_keep:g}: removing everything allowed "
            f"leaves {now / base:.3f} of the original {kind} (lower min_keep or raise the target)")
    removal = {gi: picked[gi][:n] for gi, n in eff.items() if n}
    return Selection(removal, graph.macs(eff), graph.params(eff), sum(eff.values()))
