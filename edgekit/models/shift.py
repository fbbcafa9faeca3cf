"""The temporal shift operation of TSM, offline (whole clip) and online (one frame plus a state).

TSM (Lin, Gan & Han, "TSM: Temporal Shift Module for Efficient Video Understanding",
ICCV 2019, sections 3-4) moves a fraction of a feature map's channels along time so a
2D convolution that follows mixes neighbouring frames at no extra multiply-adds. Of the
C channels of a frame, with ``fold = C // fold_div`` (``fold_div=8``: 1/8 per direction,
the paper's 1/4 shifted in total):

* channels ``[0, fold)`` come from the **previous** frame (zero at the first frame);
* ``"bidirectional"``: channels ``[fold, 2 fold)`` come from the **next** frame (zero at
  the last frame); ``"causal"``: they stay, as do all others (only the past is read);
* the remaining channels are the frame's own.

The past channels come first in both modes (the paper's released code puts the future
first; the order is a convention), so the online form of a causal shift is the one of
the paper's online demo and of Zhang, Liu & Wu, "Towards Real-Time Action Recognition on
Mobile Devices Using Deep Models" (arXiv 1906.07052, 2019): keep the first ``fold``
channels of the current frame as the **state** and give the next frame the state of
this one in their place (:func:`shift_step`). Running a causal shift offline and
:func:`shift_step` frame by frame gives the same tensors exactly.

Everything here is shape-static tensor code (slices, concatenations, zero tensors): no
in-place writes and no branch on tensor values, so it exports.
"""
from __future__ import annotations

import torch

from ..errors import EdgekitError

#: shift modes of an offline TSM
MODES = ("bidirectional", "causal")


def check_mode(mode: str) -> str:
    """``mode`` if it is a shift mode, else a one-line :class:`EdgekitError`."""
    if mode not in MODES:
        raise EdgekitError(f"shift must be 'bidirectional' or 'causal', got {mode!r}")
    return mode


def fold_of(channels: int, fold_div: int) -> int:
    """How many channels move in each direction: ``channels // fold_div`` (at least one)."""
    return max(1, channels // fold_div)


def temporal_shift(x: torch.Tensor, frames: int | None = None, mode: str = "bidirectional",
                   fold_div: int = 8) -> torch.Tensor:
    """Shift ``x`` along time; ``x`` is ``(N, T, C, H, W)`` or ``(N*T, C, H, W)`` with ``frames=T``.

    Returns a tensor of ``x``'s shape. Clip ends are zero-padded: frame 0 receives zeros
    in its past channels, and (bidirectional) frame T-1 zeros in its future channels.
    """
    flat = x.dim() == 4
    if flat:
        if frames is None or x.shape[0] % frames:
            raise EdgekitError(f"a (N*T, C, H, W) tensor of {x.shape[0]} frames needs frames=T dividing it, "
                               f"got frames={frames}")
        x5 = x.reshape(x.shape[0] // frames, frames, *x.shape[1:])
    elif x.dim() == 5:
        x5 = x
    else:
        raise EdgekitError(f"temporal_shift takes (N, T, C, H, W) or (N*T, C, H, W), got shape {tuple(x.shape)}")
    fold = fold_of(x5.shape[2], fold_div)
    past = x5[:, :, :fold]
    parts = [torch.cat((torch.zeros_like(past[:, :1]), past[:, :-1]), dim=1)]
    if check_mode(mode) == "bidirectional":
        future = x5[:, :, fold:2 * fold]
        parts.append(torch.cat((future[:, 1:], torch.zeros_like(future[:, :1])), dim=1))
        parts.append(x5[:, :, 2 * fold:])
    else:
        parts.append(x5[:, :, fold:])
    out = torch.cat(parts, dim=2)
    return out.reshape(x.shape) if flat else out


def shift_step(x: torch.Tensor, state: torch.Tensor | None, fold_div: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """One frame of a causal shift: ``(shifted x, new state)``.

    ``x`` is one frame's map ``(N, C, H, W)``; ``state`` is the previous frame's first
    ``fold`` channels ``(N, fold, H, W)`` (``None``: the first frame, zeros). The new state
    is the first ``fold`` channels of ``x``; every state is a 4-D tensor.
    """
    fold = fold_of(x.shape[1], fold_div)
    head = x[:, :fold]
    if state is None:
        state = torch.zeros_like(head)
    return torch.cat((state, x[:, fold:]), dim=1), head
