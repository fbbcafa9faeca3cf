"""Checks that stop a training run on input it cannot learn from or cannot pay for.

Each one turns what would be a silent, useless result (a one-class "100 %" model) or a
traceback from deep inside torch (the allocator refusing a batch) into one line naming
what was asked for. Shared by ``train``, ``prune`` (its recovery) and ``distill``.
"""
from __future__ import annotations

import math
import os
from contextlib import contextmanager
from typing import Any, Iterator, Sequence

import torch

from ..errors import EdgekitError

#: what torch's allocators say when a tensor cannot be had (CPU, CUDA, MPS)
_ALLOCATOR_WORDS = ("can't allocate memory", "out of memory", "not enough memory", "failed to allocate")


def require_classes(bundle: Any, what: str) -> None:
    """Refuse classification data whose training split holds fewer than two classes.

    A model trained on one class scores 100 % by predicting it and has learnt nothing;
    ``what`` names the stage ("training", "pruning", "distillation")."""
    from ..tasks import get_task

    targets = getattr(bundle.train, "targets", None)
    if not get_task(bundle.task).class_labels or targets is None:
        return
    present = sorted({int(t) for t in targets})
    if len(present) < 2:
        names = ", ".join(repr(bundle.labels[i]) if i < len(bundle.labels) else str(i) for i in present) or "none"
        raise EdgekitError(f"{bundle.spec}: the training split holds {len(present)} class ({names}) in "
                           f"{len(targets)} samples; {what} needs at least two classes")


def _memory_limit(device: torch.device) -> tuple[int, str]:
    """The most bytes one tensor could possibly take on ``device`` and what that is."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory, f"the {device} memory"
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"), "the machine's memory"
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return 0, ""


def describe_batch(batch: int, shape: Sequence[int]) -> str:
    """``batch 64 x input 3x32x32``: the size asked for, as errors name it."""
    return f"batch {batch} x input {'x'.join(str(int(d)) for d in shape)}"


def check_batch_fits(batch: int, shape: Sequence[int], device: torch.device, dataset_size: int | None = None) -> None:
    """Refuse up front a float32 input batch larger than the device's whole memory.

    ``batch`` is capped by ``dataset_size`` (a loader never builds more). The batch itself
    is a lower bound of what a step needs, so a refusal here is certain; it saves a run
    that would otherwise page for minutes or die in the allocator with a traceback."""
    if dataset_size is not None:
        batch = min(batch, max(dataset_size, 1))
    need = batch * math.prod(int(d) for d in shape) * 4
    limit, where = _memory_limit(device)
    if limit and need > limit:
        raise EdgekitError(f"{describe_batch(batch, shape)} needs {need / 2**30:,.1f} GiB for the input alone, more "
                           f"than {where} ({limit / 2**30:,.1f} GiB); use a smaller --batch-size or --input-size")


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is an allocator's refusal (MemoryError, or torch's RuntimeError about memory)."""
    if isinstance(exc, MemoryError):
        return True
    return isinstance(exc, RuntimeError) and any(w in str(exc).lower() for w in _ALLOCATOR_WORDS)


@contextmanager
def allocation_guard(asked: str) -> Iterator[None]:
    """Turn an allocator's refusal inside the block into one line naming ``asked``
    (e.g. :func:`describe_batch`'s words)."""
    try:
        yield
    except (MemoryError, RuntimeError) as exc:
        if not is_out_of_memory(exc):
            raise
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise EdgekitError(f"cannot allocate memory for {asked} ({first}); use a smaller --batch-size or "
                           "--input-size") from None
