"""Clip models (TSN, TSM; :mod:`edgekit.models.temporal`) under pruning and distillation.

A clip model runs its 2D backbone on ``(N*T, C, H, W)`` frames inside; two things of that
concern compression.

**The dependency graph.** Torch-Pruning follows channels through reshapes only where they
merge or split the channel dimension, so the ``(N, T) -> (N*T)`` flattening and the temporal
shift's ``(N*T) -> (N, T)`` reshape, channel slices and concatenation (Lin, Gan & Han, "TSM:
Temporal Shift Module for Efficient Video Understanding", ICCV 2019, section 3) stop its
trace. Neither couples channels: the shift moves a channel along time and keeps its
position. So the graph is traced on the **frame view** of the model (:func:`traceable`):
the backbone on ``T`` frames with every shift an identity, which has exactly the channel
couplings of the clip model; the groups, sites and module objects are the clip model's own.
Scoring (CURL's masked KL and its Fisher estimate, the baselines) runs the real clip
forward: a masked copy zeroes a channel in every frame of its clips, so a clip's KL is the
one of removing the channel for the whole clip; Fisher's per-(sample, channel) masks are
per clip, repeated over its ``T`` frames inside the backbone (:mod:`edgekit.compress.fisher`).

**The shifted fold.** A shifted block moves its input's first ``fold = C // fold_div``
channels one frame along time (the next ``fold`` the other way when bidirectional), with
``fold`` computed from the width at run time. Pruning the residual stream that feeds a
shifted block to ``C'`` channels therefore shifts its first ``C' // fold_div``. edgekit
keeps the shift intact: :func:`keep_shift_folds` re-chooses, at the kept width ``C'`` the
global selection decided, which units each such stream keeps so that exactly
``C' // fold_div`` of the originally past-shifted channels survive (the highest-scored of
them), as many future-shifted ones when bidirectional, and the rest from the unshifted
channels. Pruning keeps channel order, so the kept shifted channels stay first: every
shifted channel of the pruned model is one that was shifted in training, the 1/8
proportion holds, the online model's state tensors shrink to ``(N, C' // fold_div, H, W)``
and no fold needs recording (the channel plan holds widths only). The cost is unchanged:
the group's kept count, hence its MACs, is the selection's (to within one unit in a rare
bidirectional case, see :func:`quotas`).
"""
from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Any, Iterator

import torch
from torch import nn

from ..errors import EdgekitError
from ..tasks import get_task

log = logging.getLogger("edgekit.prune")

#: segments of a shifted block's input: read from the past, from the future, unshifted
PAST, FUTURE, REST = 0, 1, 2


def is_clip_model(model: nn.Module) -> bool:
    """Whether ``model`` is an offline clip model (TSN or TSM) taking ``(N, T, C, H, W)``."""
    from ..models.temporal import ClipNet

    return isinstance(model, ClipNet)


def check_prunable_arch(arch: str) -> None:
    """A one-line error for an online TSM checkpoint: it is the streaming form of a causal TSM."""
    if arch.startswith("tsm_online_"):
        base = arch[len("tsm_online_"):]
        raise EdgekitError(f"{arch} is the streaming form of a causal tsm_{base}; compress the tsm_{base} "
                           "checkpoint (its online model follows with the same weights)")


def shifted_blocks(model: nn.Module) -> list[tuple[str, Any]]:
    """``(name, block)`` of every shifted residual block of a clip model, in depth order."""
    from ..models.temporal import ShiftedResidual, trunk

    if not is_clip_model(model) or model.shift is None:
        return []
    names = {m: n for n, m in model.named_modules()}
    return [(names[m], m) for m in trunk(model.backbone) if isinstance(m, ShiftedResidual)]


def _unshifted(block: Any, x: torch.Tensor, frames: int | None = None) -> torch.Tensor:
    return block.residual(x, x)


@contextlib.contextmanager
def traceable(model: nn.Module, example: torch.Tensor) -> Iterator[torch.Tensor]:
    """The input to trace ``model``'s channel dependencies with (the module doc: frame view).

    For a clip model: ``example`` ``(N, T, C, H, W)`` flattened to frames, and while the
    context lasts the model's forward is its backbone's with every shift an identity
    (instance attributes, removed on exit). Other models: ``example`` as it is."""
    if not is_clip_model(model):
        yield example
        return
    blocks = [b for _, b in shifted_blocks(model)]
    patched = [model, *blocks]
    for b in blocks:
        b.forward = lambda x, frames=None, b=b: _unshifted(b, x)
    model.forward = model.backbone.forward
    try:
        yield example.flatten(0, 1)
    finally:
        for m in patched:
            del m.forward


# ---------------------------------------------------------------------------------- shifted folds

@dataclass
class ShiftedStream:
    """A unit group whose channels are the input of shifted blocks: each unit's segment there."""

    group: int
    segments: torch.Tensor  # per unit: PAST, FUTURE or REST
    fold_div: int
    bidirectional: bool
    blocks: list[str]


def _first_convs(model: nn.Module, example: torch.Tensor) -> dict[str, str]:
    """Shifted block -> the first convolution it runs (the one reading the shifted input)."""
    first: dict[str, str] = {}

    def seen(block: str, conv: str) -> None:
        first.setdefault(block, conv)

    handles = [conv.register_forward_pre_hook(lambda mod, inp, b=bname, c=f"{bname}.{cname}": seen(b, c))
               for bname, block in shifted_blocks(model) for cname, conv in block.named_modules()
               if isinstance(conv, nn.modules.conv._ConvNd)]
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()(example[:1])
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return first


def shifted_streams(model: nn.Module, graph: Any) -> dict[int, ShiftedStream]:
    """Per unit group (by index) feeding shifted blocks: the segment of every unit at their input.

    Read off the dependency group: the channel index at the block's first convolution's
    input of each root channel. Blocks sharing a stream must agree (they do: a stream
    reaches every block of a stage at the same positions)."""
    from ..models.shift import fold_of

    blocks = dict(shifted_blocks(model))
    if not blocks:
        return {}
    convs = _first_convs(model, graph.example)
    out: dict[int, ShiftedStream] = {}
    for bname, cname in convs.items():
        block, conv = blocks[bname], model.get_submodule(cname)
        depthwise = conv.groups > 1 and conv.groups == conv.in_channels == conv.out_channels
        for g in graph.groups:
            item = next((it for it in g.group if it.dep.target.module is conv
                         and (depthwise or not graph.dg.is_out_channel_pruning_fn(it.dep.handler))), None)
            if item is None:
                continue
            fold = fold_of(conv.in_channels, block.fold_div)
            bidir = block.mode == "bidirectional"
            seg = torch.full((g.size,), -1, dtype=torch.long)
            for idx, root in zip(item.idxs, item.root_idxs):
                unit, idx = int(root) % g.size, int(idx)
                if seg[unit] < 0:
                    seg[unit] = PAST if idx < fold else FUTURE if bidir and idx < 2 * fold else REST
            if (seg < 0).any():
                raise EdgekitError(f"layer group {g.name} does not reach all {conv.in_channels} input channels of "
                                   f"shifted block {bname}; cannot keep its temporal shift intact")
            known = out.get(g.index)
            if known is None:
                out[g.index] = ShiftedStream(g.index, seg, block.fold_div, bidir, [bname])
            elif torch.equal(known.segments, seg) and known.fold_div == block.fold_div:
                known.blocks.append(bname)
            else:
                raise EdgekitError(f"shifted blocks {known.blocks[0]} and {bname} shift different channels of "
                                   f"layer group {g.name}; cannot keep the temporal shift intact")
    return out


def quotas(kept: int, fold_div: int, bidirectional: bool) -> tuple[int, int, int]:
    """Units to keep per segment (past, future, rest) at a kept width ``kept``: the shift's own fold."""
    from ..models.shift import fold_of

    fold = fold_of(kept, fold_div)
    future = fold if bidirectional else 0
    return fold, future, kept - fold - future


def keep_shift_folds(model: nn.Module, graph: Any, scores: dict[int, torch.Tensor], sel: Any) -> Any:
    """``sel`` (a :class:`~edgekit.compress.selection.Selection`) with the units each stream feeding
    shifted blocks removes re-chosen so that its shifted channels keep their identity and proportion.

    Per such group the kept count is the selection's; within each segment the highest-scored
    units are kept (``scores``: lower = removed first, as for the selection). Only where a
    bidirectional stream cannot hold the quotas at that count (a width of ``8k`` pruned by
    one) one more unit is removed."""
    streams = shifted_streams(model, graph)
    changed = False
    for gi, stream in streams.items():
        removed = sel.removal.get(gi, [])
        if not removed:
            continue
        g = graph.groups[gi]
        avail = [int((stream.segments == s).sum()) for s in (PAST, FUTURE, REST)]
        kept = g.size - len(removed)
        want = quotas(kept, stream.fold_div, stream.bidirectional)
        while kept > 1 and any(w > a for w, a in zip(want, avail)):
            kept -= 1
            want = quotas(kept, stream.fold_div, stream.bidirectional)
        if kept < g.size - len(removed):
            log.info("layer group %s: one more unit removed to keep its bidirectional shift's quotas", g.name)
        score = scores[gi].double()
        new: list[int] = []
        for seg, n in zip((PAST, FUTURE, REST), want):
            units = torch.nonzero(stream.segments == seg).flatten()
            order = units[torch.argsort(score[units], descending=True, stable=True)]
            new += order[n:].tolist()
        new.sort()
        if new != sorted(removed):
            changed = True
            sel.removal[gi] = new
    if changed:
        counts = {gi: len(v) for gi, v in sel.removal.items() if v}
        sel.macs, sel.params, sel.units_removed = graph.macs(counts), graph.params(counts), sum(counts.values())
    return sel


# ---------------------------------------------------------------------------------- traced scoring

class FrameForward(nn.Module):
    """A clip model's forward from its frames: ``(N*T, C, H, W)`` -> clip logits ``(N, classes)``.

    The same modules (under the same names) and the same computation as the clip model's
    forward, minus the flattening of ``(N, T)`` and the shape checks, so ``torch.fx`` can
    trace it (the temporal shift stays one call, :func:`edgekit.models.shift.temporal_shift`,
    see :data:`FX_LEAF_FUNCTIONS`): CURL's exact scoring then caches the unmasked prefix of
    the network and runs only the masked suffixes, as for image models. Every tensor inside
    has ``N*T`` rows, clip-major, so ``K`` masked copies repeated along the rows stay whole clips.
    """

    def __init__(self, model: nn.Module, frames: int) -> None:
        super().__init__()
        self.backbone = model.backbone
        self.frames = frames
        self.shifted = model.shift is not None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from ..models.temporal import ShiftedResidual, head, trunk

        if self.shifted:
            for module in trunk(self.backbone):
                x = module(x, self.frames) if isinstance(module, ShiftedResidual) else module(x)
            out = head(self.backbone, x)
        else:
            out = self.backbone(x)
        return out.reshape(-1, self.frames, out.shape[-1]).mean(1)


def _fx_leaf_functions() -> tuple[Any, ...]:
    from ..models.shift import temporal_shift

    return (temporal_shift,)


def frame_forward(model: nn.Module, example: torch.Tensor) -> tuple[nn.Module, Any]:
    """``(module to trace, input of it from a batch of the model's inputs)``: a clip model's
    :class:`FrameForward` and the flattening of its clips; any other model and the identity."""
    if not is_clip_model(model):
        return model, lambda x: x
    return FrameForward(model, int(example.shape[1])), lambda x: x.flatten(0, 1)


# ---------------------------------------------------------------------------------- distillation

def clip_student(teacher: Any, arch: str, shift: str | None = None, task: str | None = None) -> dict[str, Any]:
    """Architecture kwargs a student ``arch`` of ``teacher`` (a checkpoint) needs for clip inputs.

    A clip teacher (TSN, TSM) distils into a clip student, an image teacher into an image
    student (one line otherwise). A student built from a registry name takes the teacher's
    ``frames`` and, for ``tsm_``, ``shift`` (default: the teacher's when it is a TSM, else
    ``causal``: a distilled student is the model meant for the device, and only a causal TSM
    streams frame by frame). ``task``: a student checkpoint's, which keeps its own shift
    (an empty dict is returned)."""
    from ..models.shift import check_mode
    from ..models.temporal import is_clip_arch

    if shift is not None:
        check_mode(shift)
    clip_teacher = get_task(teacher.task).clips
    if not clip_teacher:
        if is_clip_arch(arch) or (task is not None and get_task(task).clips):
            raise EdgekitError(f"student {arch} classifies clips and the teacher images; distil a clip model from a "
                               "clip teacher (tsn_/tsm_<backbone>)")
        if shift is not None:
            raise EdgekitError("shift is for a TSM student of a clip teacher")
        return {}
    check_prunable_arch(arch)
    if not is_clip_arch(arch):
        raise EdgekitError(f"the teacher classifies clips and student {arch} images; use tsm_{arch} (temporal shift) "
                           f"or tsn_{arch}")
    if task is not None:
        if shift is not None:
            raise EdgekitError("a student checkpoint keeps its own shift; shift is for a student built by name")
        return {}
    if not arch.startswith("tsm_"):
        if shift is not None:
            raise EdgekitError(f"{arch} has no temporal shift; shift is for a tsm_<backbone> student")
        return {"frames": int(teacher.input_spec["frames"])}
    if shift is None:
        shift = teacher.arch_kwargs.get("shift", "bidirectional") if teacher.arch.startswith("tsm_") else "causal"
    return {"frames": int(teacher.input_spec["frames"]), "shift": shift}
