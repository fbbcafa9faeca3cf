"""A fast estimate of CURL's importance: the Fisher (second-order) expansion of the masked KL.

CURL scores unit ``c`` by ``s_c = E_x KL(p_masked_c(x) || p(x))`` (Luo & Wu, "Neural
Network Pruning with Residual-Connections and Limited-Data", CVPR 2020), which costs one
masked forward pass of the proxy set per unit (:mod:`.curl`). Write the mask of unit ``c``
as ``m_c`` (1 = kept) and the logits as ``z(m)``. The KL is 0 with zero gradient at
``m = 1``, and its Hessian there is the Fisher information of the model's own predictive
distribution, so to second order

    KL(p(m) || p(1)) ~= 1/2 * dz^T (diag p - p p^T) dz,   dz ~= -dz/dm_c
                      = 1/2 * E_{y ~ p(x)} [ (d log p_y(x) / d m_c)^2 ]

(Amari, "Natural Gradient Works Efficiently in Learning", 1998, for the KL-Fisher identity;
Theis et al., "Faster gaze prediction with dense networks and Fisher pruning", 2018, and
Liu et al., "Group Fisher Pruning for Practical Network Compression", ICML 2021, for
Fisher pruning of channel masks). ``y`` is drawn from the model's **own** prediction,
never the label, so this estimates the same label-free quantity as CURL's exact KL.

**All units at once.** A mask ``m_s`` of ones, one per image and channel, multiplies the
output of every masked site ``s``; one backward pass of ``sum_n log p_{y_n}(x_n)`` gives
``d log p_{y_n}(x_n) / d m_s[n, c]`` for every image and channel of every site (in eval
mode images do not interact). A unit's derivative is the sum over the sites where its
deletion acts: a site whose output feeds another site of the **same** group (a conv into
its BN, a BN through an activation into the depthwise conv that follows) is skipped, since
zeroing the later site already removes the channel (counting both would linearise the
deletion twice). The expectation over ``y`` is exact (one backward per class,
``sum_y p_y g_y^2``) when the model has at most ``exact_classes`` outputs, else a Monte-Carlo
average over ``samples`` draws. Cost: one forward and ``K`` (or ``samples``) backward
passes of the proxy set, against one suffix pass per unit for the exact KL.

**What it is not.** It is a local estimate: a unit whose removal moves the logits far
(large, non-linear changes) is under- or over-estimated; ``benchmarks/fisher_scoring.md``
measures the rank correlation with the exact KL and the accuracy after pruning with each.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Callable

import torch
from torch import nn

from .units import UnitGraph, UnitGroup

log = logging.getLogger("edgekit.prune")

#: Models with at most this many outputs get the exact expectation over classes.
EXACT_CLASSES = 16
#: Monte-Carlo draws of y per image above that.
SAMPLES = 8

#: Modules that pass a channel through unchanged in position (a site's output reaching the next
#: site of its group only through these still "feeds" it).
_PASS_THROUGH = (nn.ReLU, nn.ReLU6, nn.Hardtanh, nn.SiLU, nn.Hardswish, nn.GELU, nn.LeakyReLU, nn.ELU,
                 nn.Mish, nn.Identity, nn.Dropout, nn.Dropout2d, nn.Hardsigmoid, nn.Sigmoid, nn.Tanh)


def _identity(out: torch.Tensor) -> torch.Tensor:
    return out


class _MaskSites:
    """Forward hooks that multiply each site's output by a per-(image, channel) mask of ones.

    In probe mode they record which site's output reaches which site's input (directly or
    through :data:`_PASS_THROUGH` modules), to find the sites whose deletion is already
    implied by a later site of the same group."""

    def __init__(self, model: nn.Module, groups: list[UnitGroup]) -> None:
        self.dims = {s.name: s.dim for g in groups for s in g.sites}
        self.group_of = {s.name: g.index for g in groups for s in g.sites}
        self.masks: dict[str, torch.Tensor] = {}
        self.origin: dict[int, tuple[str, torch.Tensor]] | None = None  # probe: id(tensor) -> site
        self.feeds: set[str] = set()
        self.channels: dict[str, int] = {}  # probe: channel count at each site's output
        self.handles = [model.get_submodule(n).register_forward_hook(self._site(n)) for n in self.dims]
        self.handles += [m.register_forward_hook(self._pass) for m in model.modules()
                         if isinstance(m, _PASS_THROUGH)]

    def _site(self, name: str) -> Callable:
        def hook(mod: nn.Module, inp: Any, out: torch.Tensor) -> torch.Tensor | None:
            if self.origin is not None:
                src = self.origin.get(id(inp[0])) if inp and isinstance(inp[0], torch.Tensor) else None
                if src is not None and src[0] != name and self.group_of[src[0]] == self.group_of[name]:
                    self.feeds.add(src[0])
                self.origin[id(out)] = (name, out)
                self.channels[name] = out.shape[self.dims[name]]
                return None
            m = self.masks.get(name)
            if m is None:
                return None
            if out.shape[0] != m.shape[0]:  # a clip model's backbone: T frames per clip, one mask per clip
                m = m.repeat_interleave(out.shape[0] // m.shape[0], dim=0)
            shape = [1] * out.dim()
            shape[0] = out.shape[0]
            shape[self.dims[name]] = out.shape[self.dims[name]]
            return out * m.reshape(shape)
        return hook

    def _pass(self, mod: nn.Module, inp: Any, out: torch.Tensor) -> None:
        if self.origin is not None and inp and isinstance(inp[0], torch.Tensor):
            src = self.origin.get(id(inp[0]))
            if src is not None and isinstance(out, torch.Tensor):
                self.origin[id(out)] = (src[0], out)

    def close(self) -> None:
        for h in self.handles:
            h.remove()


def fisher_scores(model: nn.Module, graph: UnitGraph, images: torch.Tensor, *, chunk: int = 64,
                  progress: bool = True, readout: Callable[[torch.Tensor], torch.Tensor] = _identity,
                  samples: int | None = None, exact_classes: int = EXACT_CLASSES, seed: int = 0,
                  device: torch.device | str | None = None) -> dict[int, torch.Tensor]:
    """Fisher estimate of KL(masked || original) per unit, averaged over ``images``; {group: scores}.

    Same contract as :func:`edgekit.compress.curl.kl_scores` (protected groups are not
    scored; ``readout`` maps the output to the logits the KL compares). ``samples``: draws
    of ``y`` per image; None = exact over classes when there are at most ``exact_classes``
    outputs, else :data:`SAMPLES` draws. ``device``: where the passes run (the model's
    own device by default); the returned scores are on the CPU.
    """
    model.eval()
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    todo = [g for g in graph.groups if g.prunable]
    hooks = _MaskSites(model, todo)
    gen = torch.Generator().manual_seed(seed)
    sums = {g.index: torch.zeros(g.size, dtype=torch.float64) for g in todo}
    grads_needed = [p for p in model.parameters() if p.requires_grad]
    for p in grads_needed:  # only the masks need gradients
        p.requires_grad_(False)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    t0 = time.perf_counter()
    try:
        hooks.origin = {}
        with torch.no_grad():
            model(images[:1].to(dev))
        hooks.origin = None
        feeds = _feeding_sites(model, todo, images[:1])
        terminal = _terminal_sites(todo, hooks.feeds if feeds is None else feeds)
        index = _unit_index(todo, terminal, dev)
        with Progress(TextColumn("CURL scoring (fisher)"), BarColumn(), MofNCompleteColumn(),
                      TimeRemainingColumn(), disable=not progress) as bar:
            task = bar.add_task("score", total=len(images))
            for start in range(0, len(images), chunk):
                x = images[start:start + chunk].to(dev)
                _chunk_scores(model, hooks, x, index, sums, readout, samples, exact_classes, gen)
                bar.advance(task, len(x))
    finally:
        hooks.close()
        for p in grads_needed:
            p.requires_grad_(True)
    log.info("CURL fisher-scored %d units on %d images in %.1fs", sum(g.size for g in todo), len(images),
             time.perf_counter() - t0)
    return {gi: (s / len(images)).float() for gi, s in sums.items()}


_PASS_FUNCTIONS = {torch.relu, torch.sigmoid, torch.tanh, nn.functional.relu, nn.functional.relu6,
                   nn.functional.hardtanh, nn.functional.silu, nn.functional.hardswish, nn.functional.gelu,
                   nn.functional.leaky_relu, nn.functional.dropout, nn.functional.hardsigmoid,
                   nn.functional.sigmoid}
_PASS_METHODS = {"relu", "relu_", "sigmoid", "sigmoid_", "clamp", "clamp_"}


def _feeding_sites(model: nn.Module, groups: list[UnitGroup],
                   example: torch.Tensor | None = None) -> set[str] | None:
    """Sites whose output's **only** use is, through pass-through ops, another site of the same group.

    Read off the ``torch.fx`` graph (every use counted, functional ones such as a residual
    ``add`` included); None when the model cannot be traced (the forward-hook probe is then
    used, which sees module inputs only and so may miss a second, functional use). A clip model
    (``example``: one of its inputs) is traced on its frames (:mod:`edgekit.compress.temporal`)."""
    from .curl import _trace
    from .temporal import frame_forward

    group_of = {s.name: g.index for g in groups for s in g.sites}
    gm = _trace(model if example is None else frame_forward(model, example)[0], set(group_of))
    if gm is None:
        return None
    feeds = set()
    for node in gm.graph.nodes:
        if node.op != "call_module" or node.target not in group_of:
            continue
        cur = node
        while len(cur.users) == 1:
            (user,) = cur.users
            if user.op == "call_module" and user.target in group_of:
                if group_of[user.target] == group_of[node.target]:
                    feeds.add(node.target)
                break
            if not _passes_through(gm, user):
                break
            cur = user
    return feeds


def _passes_through(gm: Any, node: Any) -> bool:
    """An op that keeps every channel where it is and depends on that channel alone."""
    if node.op == "call_module":
        return isinstance(gm.get_submodule(node.target), _PASS_THROUGH)
    if node.op == "call_function":
        return node.target in _PASS_FUNCTIONS
    return node.op == "call_method" and node.target in _PASS_METHODS


def _terminal_sites(groups: list[UnitGroup], feeds: set[str]) -> dict[int, list[str]]:
    """Per group, the sites whose output does not just feed another site of the group."""
    out = {}
    for g in groups:
        names = [s.name for s in g.sites if s.name not in feeds]
        out[g.index] = names or [g.sites[-1].name]
    return out


def _unit_index(groups: list[UnitGroup], terminal: dict[int, list[str]],
                dev: torch.device) -> dict[str, tuple[int, torch.Tensor, torch.Tensor]]:
    """site -> (group, channel indices, their unit indices): how channel gradients sum into units."""
    index = {}
    for g in groups:
        for s in g.sites:
            if s.name not in terminal[g.index]:
                continue
            chans = [c for u in range(g.size) for c in s.channels[u]]
            units = [u for u in range(g.size) for _ in s.channels[u]]
            index[s.name] = (g.index, torch.as_tensor(chans, device=dev), torch.as_tensor(units, device=dev))
    return index


def _chunk_scores(model: nn.Module, hooks: _MaskSites, x: torch.Tensor,
                  index: dict[str, tuple[int, torch.Tensor, torch.Tensor]], sums: dict[int, torch.Tensor],
                  readout: Callable[[torch.Tensor], torch.Tensor], samples: int | None, exact_classes: int,
                  gen: torch.Generator) -> None:
    """One forward of ``x`` with mask leaves, then one backward per class (or draw) of log p_y."""
    n = len(x)
    masks = {s: torch.ones(n, hooks.channels[s], device=x.device, dtype=x.dtype, requires_grad=True) for s in index}
    hooks.masks = masks
    try:
        with torch.enable_grad():
            z = readout(model(x))
            logp = torch.log_softmax(z.to(torch.promote_types(z.dtype, torch.float32)), dim=1)
            p = logp.detach().exp()
            k = logp.shape[1]
            if samples is None and k <= exact_classes:
                draws = [(torch.full((n,), c, device=x.device, dtype=torch.long), p[:, c]) for c in range(k)]
            else:
                s = samples or SAMPLES
                ys = torch.multinomial(p.cpu(), s, replacement=True, generator=gen).to(x.device)
                draws = [(ys[:, j], torch.full((n,), 1.0 / s, device=x.device)) for j in range(s)]
            names = list(masks)
            for i, (y, weight) in enumerate(draws):
                picked = logp.gather(1, y[:, None]).sum()
                grads = torch.autograd.grad(picked, [masks[s] for s in names], retain_graph=i < len(draws) - 1)
                per_unit: dict[int, torch.Tensor] = {}
                for s, gr in zip(names, grads):
                    gi, chans, units = index[s]
                    acc = per_unit.get(gi)
                    if acc is None:
                        acc = per_unit[gi] = torch.zeros(n, sums[gi].numel(), device=x.device, dtype=torch.float64)
                    acc.index_add_(1, units, gr[:, chans].double())
                for gi, g_unit in per_unit.items():
                    sums[gi] += (0.5 * weight.double()[:, None] * g_unit.square()).sum(0).cpu()
    finally:
        hooks.masks = {}
