"""CURL's importance criterion: KL divergence of the masked model from the original.

For each unit ``c`` (one channel index of one dependency group, see :mod:`.units`),

    s_c = 1/N * sum_n KL( p_masked_c(x_n) || p_orig(x_n) )

over a proxy set of N training images (default 256) under the evaluation transform,
softmax at T=1, model in eval mode, each unit masked on its own (Luo & Wu, "Neural Network
Pruning with Residual-Connections and Limited-Data", CVPR 2020; docs/methods.md section 1.1). A
unit is masked by zeroing its channels at the output of every layer of its group
(conv and BN alike), which is exactly the network with that channel removed.

Scoring every unit naively costs one full forward pass of the proxy set per unit
(about an hour for resnet18 on 2 CPU cores, docs/findings.md item 4). Two savings make it
minutes:

* **prefix caching**: the model is traced with ``torch.fx``; the graph runs once,
  unmasked, and at the first layer a group touches the live values are cached, so
  each masked pass runs only the suffix of the network after that layer;
* **mask batching**: K units of a group are scored in one pass by repeating the
  cached values K times along the batch and zeroing a different unit in each copy.

A model ``torch.fx`` cannot trace falls back to full passes (still batched).

**Models without a softmax over classes.** ``readout`` maps the model's output to what the
KL compares, as logits. For a label-distribution model (DLDL-v2, Gao et al. 2020; output
``[N, K + 1]``: the distribution ``p_hat`` over K label values, then its expectation) it is
``log p_hat`` (:func:`edgekit.compress.kd.soft_logits`), so the score is
``KL(p_hat_masked || p_hat_orig)`` of the label distributions themselves (the softmax of
``log p`` is ``p``), in the same masked-first direction as for classifiers; the expectation
column never enters it. The KL is zero exactly when masking a unit leaves every
proxy image's distribution unchanged (a dead channel scores 0).
"""
from __future__ import annotations

import logging
import time
from typing import Any, Callable

import torch
from torch import fx, nn

from .kd import kl_divergence
from .temporal import frame_forward
from .units import UnitGraph, UnitGroup

log = logging.getLogger("edgekit.prune")

#: Floats the repeated activations of one masked pass may hold on a CPU (about 32 MB). Smaller
#: batches of masks stay in the CPU's caches: measured on 2 cores (benchmarks/exact_batches.md),
#: 8 M floats scored mobilenet_v2 and compact_cnn 1.4-1.8x faster than 32 M, resnet18 level,
#: with identical scores. A CUDA device takes a quarter of its free memory instead.
ACTIVATION_BUDGET = 8 * 1024 * 1024


class _Masker:
    """Forward hooks that multiply site outputs by per-copy 0/1 masks while a group is active."""

    def __init__(self, model: nn.Module, sites: set[str]) -> None:
        self.masks: dict[str, tuple[torch.Tensor, int]] = {}
        self.k = 1
        self.handles = [model.get_submodule(n).register_forward_hook(self._hook(n)) for n in sorted(sites)]

    def _hook(self, name: str) -> Callable:
        def hook(mod: nn.Module, inp: Any, out: torch.Tensor) -> torch.Tensor | None:
            entry = self.masks.get(name)
            return None if entry is None else apply_mask(out, entry[0], entry[1])
        return hook

    def close(self) -> None:
        for h in self.handles:
            h.remove()


def apply_mask(out: torch.Tensor, mask: torch.Tensor, dim: int) -> torch.Tensor:
    """``out`` holds K copies of a batch stacked on dim 0; zero copy k's channels where ``mask[k]`` is 0."""
    k = mask.shape[0]
    view = out.reshape(k, out.shape[0] // k, *out.shape[1:])
    shape = [k] + [1] * (out.dim())
    shape[dim + 1 if dim >= 0 else out.dim() + 1 + dim] = mask.shape[1]
    return (view * mask.reshape(shape).to(out.device, out.dtype)).reshape(out.shape)


def _unit_masks(group: UnitGroup, units: list[int], channels: dict[str, int]) -> dict[str, tuple[torch.Tensor, int]]:
    masks = {}
    for site in group.sites:
        m = torch.ones(len(units), channels[site.name])
        for row, u in enumerate(units):
            m[row, site.channels[u]] = 0.0
        masks[site.name] = (m, site.dim)
    return masks


class _Tracer(fx.Tracer):
    """Keep every masked site (and torch.nn layers) as a call_module leaf so hooks fire."""

    def __init__(self, leaves: set[str]) -> None:
        from .temporal import _fx_leaf_functions

        super().__init__(autowrap_functions=_fx_leaf_functions())  # a TSM's temporal shift: one call
        self.leaves = leaves

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return qualname in self.leaves or super().is_leaf_module(m, qualname)


def _trace(model: nn.Module, leaves: set[str]) -> fx.GraphModule | None:
    try:
        graph = _Tracer(leaves).trace(model)
        return fx.GraphModule(model, graph)
    except Exception as exc:  # dynamic control flow etc.
        log.info("torch.fx cannot trace %s (%s); scoring with full forward passes", type(model).__name__,
                 str(exc).splitlines()[0][:120])
        return None


def _site_channels(model: nn.Module, graph: UnitGraph, example: torch.Tensor) -> dict[str, int]:
    """Channel count at every site's output (from one forward pass)."""
    sizes: dict[str, int] = {}
    dims = {s.name: s.dim for g in graph.groups for s in g.sites}
    handles = [model.get_submodule(n).register_forward_hook(
        lambda mod, i, o, n=n: sizes.__setitem__(n, o.shape[dims[n]])) for n in dims]
    try:
        with torch.no_grad():
            model(example[:1])
    finally:
        for h in handles:
            h.remove()
    return sizes


def _identity(out: torch.Tensor) -> torch.Tensor:
    return out


@torch.no_grad()
def kl_scores(model: nn.Module, graph: UnitGraph, images: torch.Tensor, *, chunk: int = 256,
              progress: bool = True, budget: int = ACTIVATION_BUDGET,
              readout: Callable[[torch.Tensor], torch.Tensor] = _identity,
              precision: str = "fp32") -> dict[int, torch.Tensor]:
    """KL(masked || original) per unit, averaged over ``images``; {group index: scores of its units}.

    Protected groups are not scored. ``model`` must be the one ``graph`` was built on.
    ``readout``: the model output -> the logits whose softmaxes the KL compares (the output
    itself for a classifier; ``log p_hat`` for a label-distribution model, see the module docstring).
    ``precision``: ``"fp32"``, or ``"bf16"``: every pass (the unmasked one too, so both sides of
    the KL round alike) under bfloat16 autocast on the images' device, the KL itself in float32.
    """
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"precision must be 'fp32' or 'bf16', got {precision!r}")
    with torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
        return _kl_scores(model, graph, images, chunk, progress, budget, readout)


def _kl_scores(model: nn.Module, graph: UnitGraph, images: torch.Tensor, chunk: int, progress: bool, budget: int,
               readout: Callable[[torch.Tensor], torch.Tensor]) -> dict[int, torch.Tensor]:
    model.eval()
    todo = [g for g in graph.groups if g.prunable]
    site_names = {s.name for g in todo for s in g.sites}
    channels = _site_channels(model, graph, images)
    runner, to_input = frame_forward(model, images)  # a clip model is traced on its frames
    gm = _trace(runner, site_names)
    masker = _Masker(gm if gm is not None else model, site_names)
    sums = {g.index: torch.zeros(g.size, dtype=torch.float64) for g in todo}
    total_units = sum(g.size for g in todo) * ((len(images) + chunk - 1) // chunk)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    t0 = time.perf_counter()
    with Progress(TextColumn("CURL scoring"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  disable=not progress) as bar:
        task = bar.add_task("score", total=total_units)
        for start in range(0, len(images), chunk):
            x = images[start:start + chunk]
            if gm is None:
                base = readout(model(x))
                for g in todo:
                    _score_full(model, masker, g, x, base, channels, sums[g.index], budget,
                                lambda n: bar.advance(task, n), readout)
            else:
                _score_traced(gm, masker, todo, to_input(x), channels, sums, budget, lambda n: bar.advance(task, n),
                              readout)
    masker.close()
    log.info("CURL scored %d units on %d images in %.1fs", sum(g.size for g in todo), len(images),
             time.perf_counter() - t0)
    return {gi: (s / len(images)).float() for gi, s in sums.items()}


def _k_for(per_sample: int, n: int, units: int, budget: int) -> int:
    return max(1, min(units, budget // max(1, per_sample * n), 64))


def _score_full(model: nn.Module, masker: _Masker, g: UnitGroup, x: torch.Tensor, base: torch.Tensor,
                channels: dict[str, int], acc: torch.Tensor, budget: int, advance: Callable[[int], None],
                readout: Callable[[torch.Tensor], torch.Tensor]) -> None:
    k = _k_for(x[0].numel() * 8, len(x), g.size, budget)
    for u0 in range(0, g.size, k):
        units = list(range(u0, min(u0 + k, g.size)))
        masker.masks = _unit_masks(g, units, channels)
        logits = readout(model(x.repeat(len(units), *[1] * (x.dim() - 1))))
        masker.masks = {}
        _accumulate(logits, base, units, acc)
        advance(len(units))


def _accumulate(logits: torch.Tensor, base: torch.Tensor, units: list[int], acc: torch.Tensor) -> None:
    """Add each masked copy's per-sample KL(masked || original) to its unit's sum (both read out as logits)."""
    dtype = torch.promote_types(logits.dtype, torch.float32)  # float64 models keep their precision
    kl = kl_divergence(logits.to(dtype), base.to(dtype).repeat(len(units), 1)).reshape(len(units), -1)
    acc[units] += kl.sum(1).double().cpu()  # sums live on the CPU whatever device scored


def _score_traced(gm: fx.GraphModule, masker: _Masker, todo: list[UnitGroup], x: torch.Tensor,
                  channels: dict[str, int], sums: dict[int, torch.Tensor], budget: int,
                  advance: Callable[[int], None], readout: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """One unmasked walk over the graph; at each group's first site, run its masked suffixes."""
    nodes = list(gm.graph.nodes)
    pos = {n: i for i, n in enumerate(nodes)}
    last_use = {n: max((pos[u] for u in n.users), default=pos[n]) for n in nodes}
    starts: dict[int, list[UnitGroup]] = {}
    for g in todo:
        names = {s.name for s in g.sites}
        first = min(i for i, n in enumerate(nodes) if n.op == "call_module" and n.target in names)
        starts.setdefault(first, []).append(g)
    interp = fx.Interpreter(gm)
    saved, masker.masks = masker.masks, {}
    # the unmasked run: env holds live values only
    env: dict[fx.Node, Any] = {}
    base_logits = readout(gm(x))
    arg_iter = iter([x])
    interp.args_iter = arg_iter
    for i, node in enumerate(nodes):
        interp.env = env
        env[node] = interp.run_node(node)
        for g in starts.get(i, []):
            _score_suffix(interp, nodes, i, env, last_use, g, channels, masker, base_logits,
                          sums[g.index], budget, advance, len(x), readout)
        for n in list(env):
            if last_use[n] <= i and n is not node and n.op != "output":
                del env[n]
    masker.masks = saved


def _score_suffix(interp: fx.Interpreter, nodes: list[fx.Node], start: int, env: dict[fx.Node, Any],
                  last_use: dict[fx.Node, int], g: UnitGroup, channels: dict[str, int], masker: _Masker,
                  base: torch.Tensor, acc: torch.Tensor, budget: int, advance: Callable[[int], None],
                  n: int, readout: Callable[[torch.Tensor], torch.Tensor]) -> None:
    live = {nd: v for nd, v in env.items() if last_use[nd] > start or nd is nodes[start]}
    per_sample = sum(v[0].numel() for v in live.values() if isinstance(v, torch.Tensor) and v.dim() > 0
                     and v.shape[0] == n) or 1
    k = _k_for(per_sample * 4, n, g.size, budget)
    first = nodes[start]
    free_at: dict[int, list[fx.Node]] = {}
    for nd, j in last_use.items():
        free_at.setdefault(j, []).append(nd)
    first_dim = next(s.dim for s in g.sites if s.name == first.target)
    for u0 in range(0, g.size, k):
        units = list(range(u0, min(u0 + k, g.size)))
        masks = _unit_masks(g, units, channels)
        rep = len(units)
        local = {nd: (v.repeat(rep, *[1] * (v.dim() - 1)) if isinstance(v, torch.Tensor) and v.dim() > 0
                      and v.shape[0] == n else v) for nd, v in live.items()}
        local[first] = apply_mask(local[first], masks[first.target][0], first_dim)
        masker.masks = masks
        interp.env = local
        out = None
        for j in range(start + 1, len(nodes)):
            node = nodes[j]
            if node.op == "output":
                out = interp.run_node(node)
                break
            local[node] = interp.run_node(node)
            for dead in free_at.get(j, ()):
                local.pop(dead, None)
        masker.masks = {}
        _accumulate(readout(out), base, units, acc)
        advance(rep)
