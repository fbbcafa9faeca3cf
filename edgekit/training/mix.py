"""Mixup, CutMix and the mixup-without-hesitation (mWh) schedule.

mWh (Yu, Wang & Wu, "Mixup Without Hesitation", arXiv:2101.04342, 2021; docs/methods.md
section 3), from the authors'
100-epoch code, with the epoch thresholds scaled to any length E:

* epochs ``[0, round(0.6E))``: mix every mini-batch;
* epochs ``[round(0.6E), round(0.9E))``: alternate by epoch, even epochs mix, odd
  epochs use basic augmentation only;
* epochs ``[round(0.9E), E)``: mix each mini-batch with probability
  ``(E - epoch) / (E - round(0.9E))``, a linear ramp from 1 down to 1/(0.1E).

The scaling of the 0.6/0.9 split to other E is edgekit's inference, not the authors'.

Mixup's lambda is folded to ``max(lambda, 1 - lambda)`` as in the authors' ``mixup_data``
(``utils.py``), so the un-permuted image always dominates its mix. Their mixup baseline and mWh
share that function, so the fold applies to plain ``mixup`` as well as ``mwh``: the two differ
only in the schedule. CutMix (``cutmix``, ``mwh-cutmix``; the authors' repository has no CutMix
code) follows Yun et al.'s reference: the box is drawn from the unfolded lambda and lambda is
re-measured from the pasted area. CURL's mixup (``compress/recovery.py``) does not fold, as
its authors' code does not (``fold=False``). For a symmetric Beta(alpha, alpha) the fold leaves
the distribution of mixing weights of the pair unchanged; it fixes which label is ``y_a``.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass

import numpy as np
import torch

from ..stage_config import MIX_MODES


def mwh_probability(epoch: int, total_epochs: int) -> float:
    """Probability that a mini-batch of ``epoch`` (0-based) is mixed under mWh."""
    if total_epochs <= 0 or not 0 <= epoch < total_epochs:
        raise ValueError(f"epoch {epoch} outside 0..{total_epochs - 1}")
    t_alt, t_ramp = round(0.6 * total_epochs), round(0.9 * total_epochs)
    if epoch < t_alt:
        return 1.0
    if epoch < t_ramp:
        return 1.0 if epoch % 2 == 0 else 0.0
    return (total_epochs - epoch) / (total_epochs - t_ramp)


@dataclass
class Mixer:
    """Draws the per-batch mixing decision and mixes a batch.

    ``mode``: none | mixup | cutmix | mwh (mixup under the mWh schedule) | mwh-cutmix.
    ``alpha``: Beta(alpha, alpha) for lambda; mWh's default is 0.5, CutMix's 1.0.
    ``fold``: lambda = max(lambda, 1 - lambda) (the mWh code's mixup); default on for the
    interpolating modes (mixup, mwh), off for CutMix.
    """

    mode: str = "none"
    alpha: float = 0.5
    seed: int = 0
    fold: bool | None = None

    def __post_init__(self) -> None:
        if self.mode not in MIX_MODES:
            raise ValueError(f"unknown mix mode {self.mode!r}; expected one of {', '.join(MIX_MODES)}")
        if self.fold is None:
            self.fold = not self.mode.endswith("cutmix")
        self._rng = random.Random(self.seed)
        self._np = np.random.default_rng(self.seed)

    def probability(self, epoch: int, total_epochs: int) -> float:
        if self.mode == "none":
            return 0.0
        if self.mode.startswith("mwh"):
            return mwh_probability(epoch, total_epochs)
        return 1.0

    def should_mix(self, epoch: int, total_epochs: int) -> bool:
        p = self.probability(epoch, total_epochs)
        return p >= 1.0 or (p > 0.0 and self._rng.random() < p)

    def record(self) -> dict[str, object]:
        """The mixing settings as plain data (a checkpoint's provenance)."""
        return {"mode": self.mode, "alpha": self.alpha, "fold": self.fold, "seed": self.seed}

    def mix(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
        """Return (mixed x, y_a, y_b, lam); loss = lam*L(y_a) + (1-lam)*L(y_b)."""
        lam = float(self._np.beta(self.alpha, self.alpha)) if self.alpha > 0 else 1.0
        perm = torch.from_numpy(self._np.permutation(x.shape[0])).to(x.device)
        if self.mode.endswith("cutmix"):
            x, lam = _cutmix(x, perm, fold_lambda(lam) if self.fold else lam, self._np)
        else:
            lam = fold_lambda(lam) if self.fold else lam
            x = interpolate(x, perm, lam)
        return x, y, y[perm], lam


def fold_lambda(lam: float) -> float:
    """``max(lam, 1 - lam)``: the mWh code's mixup weight, so the first image dominates."""
    return max(lam, 1.0 - lam)


def interpolate(x: torch.Tensor, perm: torch.Tensor, lam: float) -> torch.Tensor:
    """Mixup's images: ``lam * x + (1 - lam) * x[perm]``."""
    return lam * x + (1 - lam) * x[perm]


def _cutmix(x: torch.Tensor, perm: torch.Tensor, lam: float, rng: np.random.Generator
            ) -> tuple[torch.Tensor, float]:
    """Paste a box of area (1-lam) from the permuted batch; lam is re-measured from the box."""
    h, w = x.shape[-2:]
    cut = math.sqrt(1.0 - lam)
    ch, cw = int(h * cut), int(w * cut)
    cy, cx = int(rng.integers(h)), int(rng.integers(w))
    y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, h)
    x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, w)
    x = x.clone()
    x[..., y0:y1, x0:x1] = x[perm][..., y0:y1, x0:x1]
    return x, 1.0 - (y1 - y0) * (x1 - x0) / float(h * w)
