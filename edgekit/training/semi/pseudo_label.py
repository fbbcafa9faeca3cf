"""Pseudo-labelling, the standard semi-supervised baseline (Lee, "Pseudo-Label", ICML-W 2013),
with a confidence threshold (Sohn et al., FixMatch, arXiv 2001.07685: 0.95).

Stage 1 is R2-D2's (supervised on the labelled set for the same share of ``--epochs``), so the two
regimes differ only after it. Then, at the start of every epoch, the network (eval mode)
predicts the pool; images whose top probability reaches the threshold get that hard label,
and the epoch trains on two-stream batches with cross-entropy on the labelled images and
the confident pool images, at a constant lr (as R2-D2's stage 2).
"""
from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import DataLoader

from ..loop import OptimConfig
from ..step import classification_loss
from .base import Phase, Regime, SemiRun, predict, register_regime
from .r2d2 import _transformed, hard_label_loss, supervised_epochs
from .streams import TwoStream

THRESHOLD = 0.95


@register_regime
class PseudoLabel(Regime):
    name = "pseudo-label"

    def __init__(self) -> None:
        self.hard: torch.Tensor | None = None
        self.confident: torch.Tensor | None = None
        self.pseudo_labels: dict[str, torch.Tensor] = {}
        self.used: list[float] = []
        self.settings: dict[str, Any] = {}

    def phases(self, run: SemiRun) -> list[Phase]:
        threshold = float(run.settings.get("threshold") or THRESHOLD)
        e1 = supervised_epochs(run.epochs)
        if self.hard is None:
            self.hard = torch.zeros(len(run.pool), dtype=torch.long)  # type: ignore[arg-type]
            self.confident = torch.zeros(len(run.pool), dtype=torch.bool)  # type: ignore[arg-type]
        hard, confident = self.hard, self.confident
        streams = TwoStream(run.pool, run.labelled, run.train_transform, run.batch_size, run.seed, workers=run.workers)
        labelled = DataLoader(_transformed(run.labelled, run.train_transform),
                              batch_size=min(run.batch_size, len(run.labelled)), shuffle=True,
                              drop_last=len(run.labelled) > run.batch_size, num_workers=run.workers)
        constant = OptimConfig(lr=run.lr, warmup_epochs=0.0, min_lr_ratio=1.0, optimizer=run.optim.optimizer,
                               weight_decay=run.optim.weight_decay)

        def repredict(epoch: int) -> Any:
            def start() -> None:
                logits, rows = predict(run.model, run.pool, run.eval_transform, run.batch_size, run.device)
                probs = logits.softmax(1)
                hard[rows] = probs.argmax(1)
                confident[rows] = probs.max(1).values >= threshold
                self.pseudo_labels[f"epoch{epoch}"] = torch.where(confident, hard, torch.full_like(hard, -1))
                self.used.append(float(confident.float().mean()))

            return start

        phases = [Phase("pseudo-label stage 1 (supervised)", e1, labelled, classification_loss(), run.optim)]
        for e in range(e1, run.epochs):
            phases.append(Phase(f"pseudo-label epoch {e + 1}/{run.epochs}", 1, streams,
                                hard_label_loss(hard, confident), constant, repredict(e + 1)))
        self.settings = {"threshold": threshold, "stage_epochs": [e1, run.epochs - e1], "lr": run.lr}
        return phases

    def state(self) -> dict[str, Any]:
        return {"hard": self.hard, "confident": self.confident, "pseudo_labels": dict(self.pseudo_labels),
                "used": list(self.used)}

    def load_state(self, state: dict[str, Any]) -> None:
        self.hard, self.confident = state.get("hard"), state.get("confident")
        self.pseudo_labels = dict(state.get("pseudo_labels") or {})
        self.used = list(state.get("used") or [])

    def record(self) -> dict[str, Any]:
        return {**self.settings, "confident_share": self.used, "pseudo_labels": self.pseudo_labels}
