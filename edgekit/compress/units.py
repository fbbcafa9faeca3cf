"""CURL's prunable units, read off Torch-Pruning's dependency graph.

Torch-Pruning (``tp.DependencyGraph``) traces a model and groups every layer whose
channels are coupled: a channel of a residual stream is one group item in the stem,
every block's last conv/BN, the projection shortcut and every consumer; a depthwise
convolution's channels are tied to the expansion conv that feeds it. One such
dependency group is what CURL calls a layer-group, and each of its root channel
indices is one **unit**: masking or removing unit ``j`` zeroes/removes the coupled
channel in every layer of the group at once (methods.md 1.1, "outside" channels are
one unit per stage, "inside" channels one per layer).

:class:`UnitGraph` holds, per group: where to mask its channels (the output of every
module whose out-channels the group prunes), how many MACs and parameters one
unit carries (for KL-per-MAC ranking and the target search), and whether it may be
pruned at all. Rules:

* the classifier's outputs are never pruned;
* the group feeding the classifier (CURL's last-stage output) is protected by default;
* grouped (non-depthwise) convolutions keep their widths: pruning them needs whole
  conv groups removed, which Torch-Pruning does not do in one dependency group, so
  every group touching one is held fixed and reported.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..errors import EdgekitError, require

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
    """One dependency group: ``size`` units (its root layer's channels)."""

    index: int
    name: str  # root module name
    size: int
    sites: list[Site]
    layers: list[tuple[str, str]]  # (module name, "out" | "in" | "dw") of weighted layers it resizes
    norms: list[str]  # norm layers whose features it resizes (parameter counting)
    protected: str | None = None  # reason it may not be pruned
    group: Any = field(default=None, repr=False)  # the tp Group with full indices

    @property
    def prunable(self) -> bool:
        return self.protected is None and self.size > 1

    def max_removable(self, min_keep: float, round_to: int | None = None) -> int:
        """Most units removable while keeping ``>= ceil(min_keep * size)`` (rounded up to ``round_to``)."""
        if not self.prunable:
            return 0
        import math

        keep = max(1, math.ceil(min_keep * self.size - 1e-9))
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
        tp = require("torch_pruning", "prune")
        self.model = model
        self.example = example
        names = {m: n for n, m in model.named_modules()}
        self.classifier = find_classifier(model, example)
        clf = model.get_submodule(self.classifier)
        try:
            self.dg = tp.DependencyGraph().build_dependency(model, example_inputs=example, verbose=False)
        except Exception as exc:  # tracing failures of exotic models
            raise EdgekitError(f"cannot trace {type(model).__name__} for pruning: "
                               f"{str(exc).splitlines()[0][:200]}") from exc
        self.base_macs, self.base_params, self.layer_macs = _layer_costs(model, example)
        self.groups: list[UnitGroup] = []
        for group in self.dg.get_all_groups(ignored_layers=[clf]):
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

    def _unit_group(self, group: Any, names: dict[nn.Module, str], index: int) -> UnitGroup | None:
        root = group[0].dep.target.module
        if not isinstance(root, nn.Module) or root not in names:
            return None
        size = len(set(group[0].root_idxs))
        sites: list[Site] = []
        layers: list[tuple[str, str]] = []
        norms: list[str] = []
        protected = None
        for item in group:
            dep, idxs = item.dep, item.idxs
            mod = dep.target.module
            if not isinstance(mod, nn.Module) or mod not in names:
                continue
            name = names[mod]
            out = self.dg.is_out_channel_pruning_fn(dep.handler)
            if _is_grouped(mod):
                protected = f"grouped convolution {name} (groups={mod.groups}) cannot lose single channels"
            if isinstance(mod, _WEIGHTED):
                kind = "dw" if _is_depthwise(mod) else ("out" if out else "in")
                if (name, kind) not in layers:
                    layers.append((name, kind))
            elif out and any(p.dim() == 1 for p in mod.parameters(recurse=False)):
                norms.append(name)
            if out:
                per_unit: list[list[int]] = [[] for _ in range(size)]
                for idx, root_idx in zip(idxs, item.root_idxs):
                    if 0 <= root_idx < size:
                        per_unit[root_idx].append(int(idx))
                if any(site.name == name for site in sites):
                    continue
                sites.append(Site(name, per_unit, _channel_dim(mod)))
        if not sites:
            return None
        return UnitGroup(index, names[root], size, sites, layers, norms, protected, group)

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
        out: dict[tuple[str, str], int] = {}
        for gi, n in removed.items():
            if n:
                for key in self.groups[gi].layers:
                    out[key] = out.get(key, 0) + n
        return out

    # -- applying ----------------------------------------------------------------------------------

    def prune(self, removal: dict[int, list[int]]) -> None:
        """Remove the given root channel indices of each group from the model, in place."""
        for gi, idxs in removal.items():
            if not idxs:
                continue
            g = self.groups[gi]
            root_dep = g.group[0].dep
            pg = self.dg.get_pruning_group(root_dep.target.module, root_dep.handler, sorted(idxs))
            if not self.dg.check_pruning_group(pg):
                raise EdgekitError(f"removing {len(idxs)} channels would empty layer group {g.name}")
            pg.prune()

    def describe(self) -> list[dict[str, Any]]:
        return [{"group": g.name, "units": g.size, "sites": [s.name for s in g.sites], "protected": g.protected}
                for g in self.groups]


def _layer_costs(model: nn.Module, example: torch.Tensor) -> tuple[int, int, dict[str, tuple[int, int, int, bool]]]:
    """Total MACs (registry count), parameters, and per conv/linear (MACs, in, out, depthwise)."""
    from ..registry import count_macs, count_params

    costs: dict[str, tuple[int, int, int, bool]] = {}

    def hook(mod: nn.Module, inp: Any, out: torch.Tensor, name: str) -> None:
        per_out = out[0].numel() if out.dim() > 1 else 1
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
