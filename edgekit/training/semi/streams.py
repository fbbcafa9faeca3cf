"""Two-stream batches: a fixed share of labelled images in every batch of unlabelled ones.

As the R2-D2 authors' code (and Mean Teacher's, on which it is built): each batch holds
``batch - labelled`` images of the unlabelled pool (an epoch is one pass over the pool) and
``labelled`` images drawn from the labelled set, cycled as often as it takes (32 of 128 in the
authors' CIFAR runs: :data:`LABELLED_SHARE`). Batches are ``(x, y)`` with ``x`` the pool images
then the labelled ones, and ``y`` a ``(B, 2)`` long tensor: the row of each image in the
per-sample table (pool images first, then the labelled set) and its label, ``-1`` for a pool
image: the pool's labels are hidden and never reach a batch.
"""
from __future__ import annotations

from typing import Any, Callable, Iterator

import torch
from torch.utils.data import DataLoader, Dataset

from ...data.datasets import Transformed

#: the labelled share of a two-stream batch (R2-D2's 32 of 128)
LABELLED_SHARE = 0.25
HIDDEN = -1


def split_batch(batch: int) -> tuple[int, int]:
    """``(unlabelled, labelled)`` images per batch of ``batch``."""
    labelled = max(1, round(batch * LABELLED_SHARE))
    return max(1, batch - labelled), labelled


class TwoStream:
    """An epoch of two-stream batches (``len``: the pool's batches, the last partial one dropped)."""

    def __init__(self, pool: Dataset, labelled: Dataset, transform: Callable, batch: int, seed: int = 0,
                 target_transform: Callable | None = None, workers: int = 0) -> None:
        self.n_pool = len(pool)  # type: ignore[arg-type]
        self.b_pool, self.b_lab = split_batch(batch)
        self.b_pool = min(self.b_pool, self.n_pool)
        self.pool = DataLoader(Transformed(pool, transform), batch_size=self.b_pool, shuffle=True, drop_last=True,
                               num_workers=workers)
        self.labelled = DataLoader(Transformed(labelled, transform, target_transform), batch_size=self.b_lab,
                                   shuffle=True, drop_last=len(labelled) > self.b_lab,  # type: ignore[arg-type]
                                   num_workers=workers)
        self.seed = seed

    def __len__(self) -> int:
        return len(self.pool)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        labelled = _cycle(self.labelled)
        for x_pool, rows in self.pool:
            x_lab, y_lab = next(labelled)
            lab_rows = torch.full((len(x_lab),), -1, dtype=torch.long)  # labelled rows: after the pool's
            y = torch.cat([torch.stack([torch.as_tensor(rows), torch.full_like(torch.as_tensor(rows), HIDDEN)], 1),
                           torch.stack([lab_rows, torch.as_tensor(y_lab).long()], 1)])
            yield torch.cat([x_pool, x_lab]), y


def _cycle(loader: DataLoader) -> Iterator[Any]:
    while True:
        yield from loader
