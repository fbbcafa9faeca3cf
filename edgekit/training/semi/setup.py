"""From ``edgekit train``'s options to a semi-supervised run: the pool, the run, the checkpoint record.

The pool is the rest of the training split after ``--labeled-fraction`` (the same seeded,
stratified draw every later stage repeats, :meth:`~edgekit.data.DataBundle.labeled_split`)
and/or the training images of ``--unlabeled SPEC``, behind :class:`~edgekit.data.hidden.HiddenLabels`.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.data import ConcatDataset, Dataset

from ...data import DataBundle, load_data
from ...data.hidden import HiddenLabels
from ...errors import EdgekitError
from ...tasks import get_task
from ..config import TrainConfig
from ..loop import OptimConfig
from .base import SemiRun


def unlabelled_pool(full: DataBundle, cfg: TrainConfig) -> tuple[Dataset, dict[str, Any]]:
    """The pool (labels hidden) and what the checkpoint records of it."""
    parts: list[Dataset] = []
    record: dict[str, Any] = {"labeled_fraction": cfg.labeled_fraction, "labeled_seed": cfg.seed}
    if not get_task(full.task).class_labels:
        raise EdgekitError(f"--semi {cfg.semi} learns class labels; {full.spec} has numeric targets")
    if cfg.labeled_fraction < 1:
        _, rest = full.labeled_split(cfg.labeled_fraction, cfg.seed)
        parts.append(rest)
        record["from_training_split"] = len(rest)
    if cfg.unlabeled is not None:
        other = load_data(cfg.unlabeled, seed=cfg.seed)
        if get_task(other.task).clips != get_task(full.task).clips or (other.input_spec is None) != (full.input_spec is None):
            kind = "clips" if get_task(full.task).clips else "images"
            raise EdgekitError(f"--unlabeled {cfg.unlabeled}: its samples do not fit a model of {full.spec}'s {kind}")
        parts.append(other.train)
        record.update(unlabeled=cfg.unlabeled, from_unlabeled=len(other.train))
    pool = parts[0] if len(parts) == 1 else ConcatDataset(parts)
    if len(pool) == 0:  # type: ignore[arg-type]
        raise EdgekitError(f"--semi {cfg.semi}: the unlabelled pool is empty")
    record["pool"] = len(pool)  # type: ignore[arg-type]
    return HiddenLabels(pool, "semi-supervised training"), record


def semi_run(model: nn.Module, labelled: DataBundle, pool: Dataset, cfg: TrainConfig, train_tf: Any, eval_tf: Any,
             optim: OptimConfig, device: torch.device) -> SemiRun:
    settings = {"label_lr": cfg.label_lr, "repredict": cfg.repredict, "cycle_epochs": cfg.cycle_epochs,
                "threshold": cfg.pseudo_threshold}
    return SemiRun(model=model, labelled=labelled.train, pool=pool, classes=len(labelled.labels),
                   train_transform=train_tf, eval_transform=eval_tf, batch_size=cfg.batch_size, epochs=cfg.epochs,
                   lr=optim.resolved_lr(), optim=optim, device=device, seed=cfg.seed, workers=cfg.workers,
                   settings={k: v for k, v in settings.items() if v is not None})
