"""CURL's prunable units, read off Torch-Pruning's dependency graph.

Torch-Pruning (``tp.DependencyGraph``) traces a model and groups every layer whose
channels are coupled: a channel of a residual stream is one group item in the stem,
every block's last conv/BN, the projection shortcut and every consumer; a depthwise
convolution's channels are tied to the expansion conv that feeds it. One such
dependency group is what CURL calls a layer-group, and each of its root channel
indices is one **unit**: masking or removing unit ``j`` zeroes/removes the coupled
channel in every layer of the group at once (Luo & Wu, "Neural Network Pruning with
Residual-Connections and Limited-Data", CVPR 2020; docs/methods.md section 1.1: "outside" channels are
one unit per stage, "inside" channels one per layer).

:class:`UnitGraph` holds, per group: where to mask its channels (the output of every
module whose out-channels the group prunes), how many MACs and parameters one
unit carries (for KL-per-MAC ranking and the target search), and whether it may be
pruned at all. Rules:

* the classifier's outputs are never pruned;
* the group feeding the classifier (CURL's last-stage output) is protected by default;
* an NFL layer (:mod:`edgekit.models.nfl`) is not prunable and is left intact: its
  convolutions are never roots, and a group that resizes any of its modules (the
  channels its fixed random-permutation index gathers from) is held fixed;
* a group touching a grouped (non-depthwise) convolution of ``G`` conv groups is pruned
  by channel *position*: its unit ``j`` is channel ``j`` of every conv group (root
  channels ``j, j + C/G, j + 2C/G, ...``), so each conv group loses the same channels,
  ``groups`` stays ``G`` and the convolution stays valid (Torch-Pruning's own treatment
  of grouped layers: its pruners average importance over the ``G`` groups and remove the
  same in-group indices from each). Groups whose grouped convolutions disagree on ``G``,
  or whose widths are not a multiple of it, are held fixed and reported.

The classifier is the model's declared one (its registry layout) when it has one, else
the last weighted layer run in a forward pass.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..errors import EdgekitError
from ..models.layout import declared

log = logging.getLogger("edgekit.prune")

_WEIGHTED = (nn.modules.conv._ConvNd, nn.Linear)


@dataclass
class Site:
    """A module whose output carries the group's channels: ``channels[j]`` = unit j's indices there."""

    name: str
    channels: list[list[int]]
    dim: int  # channel dimension of the module's output (1 = NCHW, -1 = channels-last / features)


@dataclass
class UnitGroup:
    """One dependency group: ``size`` units of ``per_unit`` root channels each.

    ``per_unit`` is 1 except next to a grouped convolution of ``G`` groups, where a unit
    is one channel position in every conv group: unit ``j`` = root channels
    ``j + k * size`` for ``k < G``.
    """

    index: int
    name: str  # root module name
    size: int
    sites: list[Site]
    layers: list[tuple[str, str]]  # (module name, "out" | "in" | "dw") of weighted layers it resizes
    norms: list[str]  # norm layers whose features it resizes (parameter counting)
    protected: str | None = None  # reason it may not be pruned
    group: Any = field(default=None, repr=False)  # the tp Group with full indices
    per_unit: int = 1

    def root_indices(self, units: list[int]) -> list[int]:
        """The root channel indices that units ``units`` stand for."""
        return sorted(j + k * self.size for j in units for k in range(self.per_unit))

    def fold(self, channel_scores: torch.Tensor) -> torch.Tensor:
        """Per-root-channel scores -> per-unit scores (mean over a unit's channels)."""
        if self.per_unit == 1:
            return channel_scores
        return channel_scores.reshape(self.per_unit, self.size).mean(dim=0)

    @property
    def prunable(self) -> bool:
        return self.protected is None and self.size > 1

    def max_removable(self, min_keep: float, round_to: int | None = None, floor: int | None = None) -> int:
        """Most units removable while keeping ``>= ceil(min_keep * size)`` (rounded up to ``round_to``),
        or ``>= floor`` units when a floor is given."""
        if not self.prunable:
            return 0
        import math

        keep = max(1, floor if floor is not None else math.ceil(min_keep * self.size - 1e-9))
        if round_to:
            keep = min(self.size, math.ceil(keep / round_to) * round_to)
        return max(0, self.size - keep)


def _is_depthwise(m: nn.Module) -> bool:
    return isinstance(m, nn.modules.conv._ConvNd) and m.groups > 1 and m.groups == m.in_channels == m.out_channels


def _is_grouped(m: nn.Module) -> bool:
    return isinstance(m, nn.modules.conv._ConvNd) and m.groups > 1 and not _is_depthwise(m)


def _channel_dim(m: nn.Module) -> int:
    return -1 if isinstance(m, nn.Linear) or type(m) is nn.LayerNorm else 1


def find_classifier(model: nn.Module, example: torch.Tensor) -> str:
    """Name of the last weighted layer run in a forward pass (whose outputs are the logits)."""
    order: list[str] = []
    handles = [m.register_forward_hook(lambda mod, i, o, n=n: order.append(n))
               for n, m in model.named_modules() if isinstance(m, _WEIGHTED)]
    try:
        with torch.no_grad():
            model.eval()(example)
    finally:
        for h in handles:
            h.remove()
    if not order:
        raise EdgekitError("the model has no convolution or linear layer: nothing to prune")
    return order[-1]


class UnitGraph:
    """Dependency groups of ``model`` (traced at ``example``) as scored, selectable units."""

    def __init__(self, model: nn.Module, example: torch.Tensor, protect_last_stage: bool = True) -> None:
        import torch_pruning as tp  # a core dependency
        self.model = model
        self.example = example
        names = {m: n for n, m in model.named_modules()}
        self.classifier = declared(model, "classifier") or find_classifier(model, example)
        clf = model.get_submodule(self.classifier)
        self.fixed = _nfl_modules(model)
        from .temporal import traceable

        try:
            with traceable(model, example) as traced:  # a clip model is traced on its frame view
                self.dg = tp.DependencyGraph().build_dependency(model, example_inputs=traced, verbose=False)
        except Exception as exc:  # tracing failures of exotic models
            raise EdgekitError(f"cannot trace {type(model).__name__} for pruning: {_trace_reason(exc)}") from exc
        self.base_macs, self.base_params, self.layer_macs = _layer_costs(model, example)
        self.groups: list[UnitGroup] = []
        for group in self.dg.get_all_groups(ignored_layers=[clf, *self.fixed]):
            ug = self._unit_group(group, names, len(self.groups))
            if ug is not None:
                self.groups.append(ug)
        if protect_last_stage:
            for g in self.groups:
                if any(n == self.classifier and kind == "in" for n, kind in g.layers):
                    g.protected = g.protected or "feeds the classifier (CURL keeps the last stage's output)"
        if not any(g.prunable for g in self.groups):
            fixed = "; ".join(f"{g.name}: {g.protected}" for g in self.groups if g.protected) or "no channel groups"
            raise EdgekitError(f"nothing prunable in {type(model).__name__} ({fixed})")
        for g in self.groups:
            if g.protected and "grouped" in g.protected:
                log.warning("layer group %s is held fixed: %s", g.name, g.protected)
            elif g.per_unit > 1:
                log.info("layer group %s is pruned by channel position in each of %d conv groups", g.name,
                         g.per_unit)

    def _unit_group(self, group: Any, names: dict[nn.Module, str], index: int) -> UnitGroup | None:
        root = group[0].dep.target.module
        if not isinstance(root, nn.Module) or root not in names:
            return None
        channels = len(set(group[0].root_idxs))
        per_unit, protected = _conv_groups(group, names, channels, self.dg)
        nfl = next((self.fixed[item.dep.target.module] for item in group
                    if item.dep.target.module in self.fixed), None)
        if nfl is not None:
            per_unit, protected = 1, f"feeds NFL layer {nfl}, whose random-subspace index is fixed (not prunable)"
        size = channels // per_unit
        sites: list[Site] = []
        layers: list[tuple[str, str]] = []
        norms: list[str] = []
        for item in group:
            dep, idxs = item.dep, item.idxs
            mod = dep.target.module
            if not isinstance(mod, nn.Module) or mod not in names:
                continue
            name = names[mod]
            out = self.dg.is_out_channel_pruning_fn(dep.handler)
            if isinstance(mod, _WEIGHTED):
                kind = "dw" if _is_depthwise(mod) else ("out" if out else "in")
                if (name, kind) not in layers:
                    layers.append((name, kind))
            elif out and any(p.dim() == 1 for p in mod.parameters(recurse=False)):
                norms.append(name)
            if out:
                unit_channels: list[list[int]] = [[] for _ in range(size)]
                for idx, root_idx in zip(idxs, item.root_idxs):
                    if 0 <= root_idx < channels:
                        unit_channels[root_idx % size].append(int(idx))
                if any(site.name == name for site in sites):
                    continue
                sites.append(Site(name, unit_channels, _channel_dim(mod)))
        if not sites:
            return None
        return UnitGroup(index, names[root], size, sites, layers, norms, protected, group, per_unit)

    # -- costs -------------------------------------------------------------------------------------

    def unit_macs(self, g: UnitGroup) -> float:
        """MACs one unit of ``g`` carries in the unpruned model (what removing it saves, to first order)."""
        return self.macs({g.index: 1}, base_only=True)

    def macs(self, removed: dict[int, int], base_only: bool = False) -> float:
        """Exact MACs after removing ``removed[g]`` units from each group (convs and linears scale
        bilinearly with their in/out widths, depthwise linearly); other ops are constant."""
        ratios = self._ratios(removed)
        total = 0.0
        for name, (macs, cin, cout, dw) in self.layer_macs.items():
            rin, rout = ratios.get((name, "in"), 0), ratios.get((name, "out"), 0) + ratios.get((name, "dw"), 0)
            if dw:
                total += macs * (cout - rout) / cout
            else:
                total += macs * (cin - rin) / cin * (cout - rout) / cout
        if base_only:
            return sum(v[0] for v in self.layer_macs.values()) - total
        return self.base_macs - sum(v[0] for v in self.layer_macs.values()) + total

    def params(self, removed: dict[int, int]) -> float:
        """Parameters after removal (weights bilinear in widths, biases and norms linear)."""
        ratios = self._ratios(removed)
        total = float(self.base_params)
        for name, (_, cin, cout, dw) in self.layer_macs.items():
            m = self.model.get_submodule(name)
            rin, rout = ratios.get((name, "in"), 0), ratios.get((name, "out"), 0) + ratios.get((name, "dw"), 0)
            w = m.weight.numel()
            keep_w = (cout - rout) / cout if dw else (cin - rin) / cin * (cout - rout) / cout
            total -= w * (1 - keep_w)
            if getattr(m, "bias", None) is not None:
                total -= m.bias.numel() * rout / cout
        for g in self.groups:
            n = removed.get(g.index, 0)
            for name in g.norms:
                m = self.model.get_submodule(name)
                for p in m.parameters(recurse=False):
                    total -= p.numel() * n / g.size
        return total

    def _ratios(self, removed: dict[int, int]) -> dict[tuple[str, str], int]:
        """Channels removed per (layer, kind) when ``removed[g]`` units leave each group."""
        out: dict[tuple[str, str], int] = {}
        for gi, n in removed.items():
            if n:
                g = self.groups[gi]
                for key in g.layers:
                    out[key] = out.get(key, 0) + n * g.per_unit
        return out

    # -- applying ----------------------------------------------------------------------------------

    def prune(self, removal: dict[int, list[int]]) -> None:
        """Remove the given units of each group (all their root channels) from the model, in place."""
        for gi, units in removal.items():
            if not units:
                continue
            g = self.groups[gi]
            idxs = g.root_indices(units)
            root_dep = g.group[0].dep
            pg = self.dg.get_pruning_group(root_dep.target.module, root_dep.handler, idxs)
            if not self.dg.check_pruning_group(pg):
                raise EdgekitError(f"removing {len(idxs)} channels would empty layer group {g.name}")
            pg.prune()

    def describe(self) -> list[dict[str, Any]]:
        return [{"group": g.name, "units": g.size, "channels_per_unit": g.per_unit,
                 "sites": [s.name for s in g.sites], "protected": g.protected} for g in self.groups]


def _nfl_modules(model: nn.Module) -> dict[nn.Module, str]:
    """Every module inside an NFL layer -> that layer's name (left intact by pruning)."""
    from ..models.nfl import NFLLayer

    return {sub: name for name, mod in model.named_modules() if isinstance(mod, NFLLayer)
            for sub in mod.modules()}


def _trace_reason(exc: Exception) -> str:
    """One line on why Torch-Pruning could not trace a model."""
    import traceback

    frames = {f.name for f in traceback.extract_tb(exc.__traceback__)}
    if isinstance(exc, ZeroDivisionError) and "update_reshape_index_mapping" in frames:
        # ShuffleNet's channel shuffle (view -> transpose -> view) permutes channels across the two
        # branches; Torch-Pruning's index mapping only follows reshapes that merge or split the
        # channel dimension (upstream issue VainF/Torch-Pruning#14, ShuffleNet architecture)
        return ("a reshape permutes its channels (a channel shuffle, as in ShuffleNet), which Torch-Pruning's "
                "dependency graph cannot follow; this architecture cannot be pruned structurally")
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__


def _conv_groups(group: Any, names: dict[nn.Module, str], channels: int, dg: Any) -> tuple[int, str | None]:
    """(root channels per unit, reason to hold the group fixed or None) for a dependency group.

    1 without grouped convolutions; ``G`` when every grouped convolution it resizes has
    ``G`` conv groups over exactly the group's ``channels`` (so root channel ``c`` is
    channel ``c`` of the convolution, position ``c mod C/G`` of conv group ``c div C/G``)."""
    counts: set[int] = set()
    for item in group:
        mod = item.dep.target.module
        if not isinstance(mod, nn.Module) or mod not in names or not _is_grouped(mod):
            continue
        out = dg.is_out_channel_pruning_fn(item.dep.handler)
        width = mod.out_channels if out else mod.in_channels
        if width != channels or channels % mod.groups:
            return 1, (f"grouped convolution {names[mod]} (groups={mod.groups}, {width} channels) is not "
                       f"aligned with its layer group of {channels} channels")
        counts.add(mod.groups)
    if len(counts) > 1:
        return 1, f"grouped convolutions with different group counts {sorted(counts)} share a layer group"
    return (counts.pop() if counts else 1), None


def _layer_costs(model: nn.Module, example: torch.Tensor) -> tuple[int, int, dict[str, tuple[int, int, int, bool]]]:
    """Total MACs (registry count), parameters, and per conv/linear (MACs, in, out, depthwise)."""
    from ..registry import count_macs, count_params

    costs: dict[str, tuple[int, int, int, bool]] = {}

    def hook(mod: nn.Module, inp: Any, out: torch.Tensor, name: str) -> None:
        per_out = out.numel() if out.dim() > 1 else 1  # one input sample (a clip model's: all its frames)
        if isinstance(mod, nn.Linear):
            macs, cin, cout = per_out * mod.in_features, mod.in_features, mod.out_features
        else:
            k = 1
            for s in mod.kernel_size:
                k *= s
            macs, cin, cout = per_out * (mod.in_channels // mod.groups) * k, mod.in_channels, mod.out_channels
        prev = costs.get(name)
        costs[name] = (macs + (prev[0] if prev else 0), cin, cout, _is_depthwise(mod))

    handles = [m.register_forward_hook(lambda mod, i, o, n=n: hook(mod, i, o, n))
               for n, m in model.named_modules() if isinstance(m, _WEIGHTED)]
    try:
        with torch.no_grad():
            model.eval()(example[:1])
    finally:
        for h in handles:
            h.remove()
    return count_macs(model, tuple(example[:1].shape)), count_params(model), costs
