"""A dataset whose labels cannot be read: what pretraining and semi-supervised training see.

``HiddenLabels(base)`` yields ``(sample, i)``: the sample and its index in ``base`` (which keys a
per-sample table, such as R2-D2's pseudo-labels), never the target. Asking it for its
``targets`` raises, and so does reading a target through it, so a trainer handed the
unlabelled pool cannot use its labels by mistake; tests rely on that.
"""
from __future__ import annotations

from typing import Any

from torch.utils.data import Dataset

from ..errors import EdgekitError


class HiddenLabels(Dataset):
    """The samples of ``base`` with their labels hidden (``what`` names the reader in errors)."""

    def __init__(self, base: Dataset, what: str = "this stage") -> None:
        self._base = base
        self.what = what

    def __len__(self) -> int:
        return len(self._base)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> tuple[Any, int]:
        sample, _ = self._base[i]
        return sample, i

    @property
    def targets(self) -> Any:
        raise EdgekitError(f"{self.what} reads no labels of the unlabelled images")
