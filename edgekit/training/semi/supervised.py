"""``--semi none``: the labelled set alone, for all of ``--epochs`` (the baseline every semi-supervised
regime is compared with at equal epochs)."""
from __future__ import annotations

from torch.utils.data import DataLoader

from ..step import classification_loss
from .base import Phase, Regime, SemiRun, register_regime
from .r2d2 import _transformed


@register_regime
class Supervised(Regime):
    name = "none"
    uses_pool = False

    def phases(self, run: SemiRun) -> list[Phase]:
        loader = DataLoader(_transformed(run.labelled, run.train_transform),
                            batch_size=min(run.batch_size, len(run.labelled)), shuffle=True,
                            drop_last=len(run.labelled) > run.batch_size, num_workers=run.workers)
        return [Phase("labelled only", run.epochs, loader, classification_loss(), run.optim)]
