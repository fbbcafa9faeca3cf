"""What a streaming classifier shows over time: a windowed logit sum and an agreement rule.

A per-frame model's raw argmax flickers: one odd frame changes the label shown. The
online demo of Lin, Gan & Han ("TSM: Temporal Shift Module for Efficient Video
Understanding", ICCV 2019; its released real-time gesture demo) steadies it in two steps,
which :func:`smooth` reproduces on a whole sequence at once:

1. **window**: the logits of the last ``window`` processed frames (this one included;
   fewer at the start of a stream) are summed and the argmax of the sum is this frame's
   *candidate* (the demo sums the last 12);
2. **agreement**: the label shown switches to a candidate only once ``agree`` consecutive
   candidates (this frame's and the ones before) name it (the issue's rule: a new label is
   accepted after 2 agreeing predictions). Until the first acceptance nothing is shown
   (:data:`NO_LABEL`, which counts as wrong in an evaluation). The demo's released code
   uses a close variant (a change is taken once the label shown has held for two frames);
   the rule here is the stated one, and ``agree=1`` turns it off.

Both steps are causal: the label at frame t depends on frames up to t only, so they run
as they are on a phone. Sequences are batched ``(N, L, classes)``; the agreement loop runs
over time only, vectorised over the N streams.
"""
from __future__ import annotations

import torch
from torch.nn import functional as F

from .config import DEFAULT_AGREE, DEFAULT_WINDOW  # declared with the eval options (EvalConfig)
from ..numbers import positive_int

#: the label shown before any candidate has been accepted
NO_LABEL = -1

__all__ = ["DEFAULT_AGREE", "DEFAULT_WINDOW", "NO_LABEL", "accept_agreeing", "smooth", "window_sum"]


def window_sum(logits: torch.Tensor, window: int) -> torch.Tensor:
    """``(N, L, C)`` -> ``(N, L, C)``: at frame t the sum of the logits of frames
    ``max(0, t - window + 1) .. t`` (a direct sum, not a difference of running sums, so
    no rounding drift decides an argmax)."""
    window = positive_int("window", window)
    if logits.dim() != 3:
        raise ValueError(f"window_sum takes (N, L, classes) logits, got shape {tuple(logits.shape)}")
    padded = F.pad(logits, (0, 0, window - 1, 0))  # zeros before the first frame
    return padded.unfold(1, window, 1).sum(-1)


def accept_agreeing(candidates: torch.Tensor, agree: int) -> torch.Tensor:
    """``(N, L)`` candidate labels -> ``(N, L)`` labels shown: :data:`NO_LABEL` until
    ``agree`` consecutive candidates are equal, then that label, kept until ``agree``
    consecutive candidates name another."""
    agree = positive_int("agree", agree)
    if candidates.dim() != 2:
        raise ValueError(f"accept_agreeing takes (N, L) labels, got shape {tuple(candidates.shape)}")
    shown = torch.full_like(candidates, NO_LABEL)
    current = shown[:, 0].clone()
    run = torch.zeros_like(current)
    for t in range(candidates.shape[1]):
        same = candidates[:, t] == candidates[:, t - 1] if t else torch.zeros_like(current, dtype=torch.bool)
        run = torch.where(same, run + 1, torch.ones_like(run))
        current = torch.where(run >= agree, candidates[:, t], current)
        shown[:, t] = current
    return shown


def smooth(logits: torch.Tensor, window: int = DEFAULT_WINDOW, agree: int = DEFAULT_AGREE) -> torch.Tensor:
    """Labels shown ``(N, L)`` for per-frame logits ``(N, L, C)``: the argmax of the logits
    summed over the last ``window`` frames, accepted after ``agree`` agreeing frames."""
    return accept_agreeing(window_sum(logits, window).argmax(-1), agree)
