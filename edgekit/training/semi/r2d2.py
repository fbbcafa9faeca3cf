"""R2-D2 (Wang & Wu, "Repetitive Reprediction Deep Decipher for Semi-Supervised Learning",
AAAI 2020, arXiv 1908.04345), as the authors' code runs it (DoctorKey/R2D2.pytorch:
``src/semi_supervised/R2_D2_2_3.py``, ``src/model/DeepDecipher.py``, the CIFAR-10 experiment
scripts ``semi_4000_{1,2_3,4}*.py``).

Four stages; ``--epochs`` is split across them in the authors' proportions, 300 : 300 : 300 : 50
(stage 3 being ``K`` cycles of equal length):

1. **supervised** on the labelled set (cross-entropy; warm-up + cosine at the run's lr);
2. **D2**: a table of pseudo-label logits for the pool (:class:`~edgekit.training.label_table.LabelTable`),
   initialised from the stage-1 network's predictions; labelled images keep logit 10 on their
   class. Two-stream batches (:mod:`.streams`). The loss of every image is
   ``0.1 * KL(softmax(f(x)) || softmax(Z)) + 0.03 * H(softmax(f(x)))`` (the authors'
   ``kl_reverse`` and entropy weights); the network learns at a constant lr, and the pool's rows
   move by ``label_lr`` times their gradient (the authors' 4000 at batch 512: an effective
   per-row step of 0.78, :func:`~edgekit.training.label_table.effective_step`, which is the default
   at every batch size);
3. **R2**: ``K`` cycles (``--repredict``, the authors' 4); each starts by repredicting the pool's
   rows from the network (eval mode), with the lr of cycle k stepping down as the authors'
   (1, 2/3, 1/3, 1/30 of the run's lr for K = 4);
4. **fine-tune** with cross-entropy on the labelled set and the final network's hard
   pseudo-labels (the authors' ``finetune_all_by_pseudo_label.py``: lr 1/12 of stage 2's, cosine).

The table's hard labels after each stage and cycle are kept (``pseudo_labels``) so a
benchmark can score them against the hidden labels after training; training itself never
reads those.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...errors import EdgekitError
from ..label_table import LabelTable, effective_step
from ..loop import OptimConfig
from ..step import StepOutput, classification_loss
from .base import Phase, Regime, SemiRun, predict, register_regime
from .streams import HIDDEN, TwoStream

#: the authors' epochs per stage (CIFAR-10): supervised, D2, R2 cycles (all of them), fine-tune
STAGE_EPOCHS = (300, 300, 300, 50)
CLASS_WEIGHT, ENTROPY_WEIGHT = 0.1, 0.03
#: the authors' label_lr 4000 on a batch-mean loss of weight 0.1 at batch 512 (4 GPUs x 128)
EFFECTIVE_STEP = effective_step(4000, CLASS_WEIGHT, 512)
REPREDICT = 4
LABELLED_LOGIT = 10.0
#: stage 4's lr against stage 2's (0.0025 / 0.03)
FINETUNE_LR_RATIO = 0.0025 / 0.03


def cycle_lr_ratios(k: int) -> list[float]:
    """The lr of each of ``k`` R2 cycles against the run's: 1, 2/3, 1/3, 1/30 for the authors' 4."""
    return [1.0] if k == 1 else [float(r) for r in np.linspace(1.0, 1 / 3, k - 1)] + [1 / 30]


def stage_epochs(total: int, repredict: int, cycle_epochs: int | None) -> tuple[int, int, int, int]:
    """``(stage 1, stage 2, each cycle, stage 4)`` epochs out of ``total``, in the authors' proportions."""
    s1, s2, s3, s4 = STAGE_EPOCHS
    if cycle_epochs is None:
        cycle_epochs = max(1, round(total * s3 / sum(STAGE_EPOCHS) / repredict))
    rest = total - repredict * cycle_epochs
    e1, e4 = max(1, round(rest * s1 / (s1 + s2 + s4))), max(1, round(rest * s4 / (s1 + s2 + s4)))
    e2 = rest - e1 - e4
    if e2 < 1:
        need = repredict * cycle_epochs + 3
        raise EdgekitError(f"--epochs {total} is too few for r2d2's four stages with {repredict} cycles of "
                           f"{cycle_epochs} epoch(s); use --epochs {need} or more")
    return e1, e2, cycle_epochs, e4


def supervised_epochs(total: int) -> int:
    """Stage 1's epochs out of ``total`` as r2d2 splits them with its default cycles, so that a
    baseline sharing stage 1 (pseudo-label) differs from r2d2 only after it."""
    try:
        return stage_epochs(total, REPREDICT, None)[0]
    except EdgekitError:  # too short for r2d2's four stages: the same share of the whole run
        return max(1, round(total * STAGE_EPOCHS[0] / sum(STAGE_EPOCHS)))


def d2_loss(table: LabelTable, label_lr: float, classes: int) -> Any:
    """Stage 2 and 3's step: reverse KL to the rows + entropy; the pool's rows step after the backward."""

    def step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epoch: int) -> StepOutput:
        out = model(x)
        rows, labels = y[:, 0], y[:, 1]
        pool = labels == HIDDEN
        z = torch.zeros(len(y), classes, device=out.device)
        z_pool = table.batch(rows[pool], out.device, grad=True)
        z = z.index_put((pool.nonzero().squeeze(1),), z_pool)
        lab = ~pool
        z[lab] = LABELLED_LOGIT * F.one_hot(labels[lab], classes).float()
        logp = F.log_softmax(out.float(), 1)
        p = logp.exp()
        kl = (p * (logp - F.log_softmax(z, 1))).sum(1).mean()
        entropy = -(p * logp).sum(1).mean()
        loss = CLASS_WEIGHT * kl + ENTROPY_WEIGHT * entropy
        (grad,) = torch.autograd.grad(loss, z_pool, retain_graph=True)
        table.step(rows[pool], grad, label_lr)
        return StepOutput(loss, {"kl_reverse": float(kl.detach()), "entropy": float(entropy.detach())},
                          out[lab], labels[lab])

    return step


def hard_label_loss(pseudo: torch.Tensor, confident: torch.Tensor) -> Any:
    """Cross-entropy on the labelled images and on the pool images whose pseudo-label is confident."""

    def step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epoch: int) -> StepOutput:
        out = model(x)
        rows, labels = y[:, 0], y[:, 1]
        pool = labels == HIDDEN
        target = labels.clone()
        target[pool] = pseudo[rows[pool].cpu()].to(labels.device)
        use = ~pool
        use[pool] = confident[rows[pool].cpu()].to(labels.device)
        loss = F.cross_entropy(out[use], target[use]) if bool(use.any()) else out.sum() * 0.0
        return StepOutput(loss, {"pseudo_used": float(use[pool].float().mean()) if bool(pool.any()) else 0.0},
                          out[~pool], labels[~pool])

    return step


@register_regime
class R2D2(Regime):
    name = "r2d2"

    def __init__(self) -> None:
        self.table: LabelTable | None = None
        self.hard: torch.Tensor | None = None
        self.pseudo_labels: dict[str, torch.Tensor] = {}
        self.settings: dict[str, Any] = {}

    def phases(self, run: SemiRun) -> list[Phase]:
        k = int(run.settings.get("repredict") or REPREDICT)
        e1, e2, ec, e4 = stage_epochs(run.epochs, k, run.settings.get("cycle_epochs"))
        # the authors' lambda; by default the one giving their effective per-row step at this batch size
        label_lr = float(run.settings.get("label_lr") or EFFECTIVE_STEP * run.batch_size / CLASS_WEIGHT)
        if self.table is None:
            self.table = LabelTable(torch.zeros(len(run.pool), run.classes))  # type: ignore[arg-type]
        self.hard = self.hard if self.hard is not None else torch.zeros(len(run.pool), dtype=torch.long)  # type: ignore[arg-type]
        table, hard = self.table, self.hard
        streams = TwoStream(run.pool, run.labelled, run.train_transform, run.batch_size, run.seed, workers=run.workers)
        labelled = torch.utils.data.DataLoader(
            _transformed(run.labelled, run.train_transform), batch_size=min(run.batch_size, len(run.labelled)),
            shuffle=True, drop_last=len(run.labelled) > run.batch_size, num_workers=run.workers)
        constant = {"warmup_epochs": 0.0, "min_lr_ratio": 1.0, "optimizer": run.optim.optimizer,
                    "weight_decay": run.optim.weight_decay}

        def repredict(name: str) -> Any:
            def start() -> None:
                logits, rows = predict(run.model, run.pool, run.eval_transform, run.batch_size, run.device)
                table.assign(rows, logits)

            return start

        def keep(name: str) -> Any:
            def start() -> None:
                self.pseudo_labels[name] = table.labels().clone()

            return start

        def finetune_labels() -> None:
            self.pseudo_labels["cycle%d" % k] = table.labels().clone()
            logits, rows = predict(run.model, run.pool, run.eval_transform, run.batch_size, run.device)
            hard[rows] = logits.argmax(1)
            self.pseudo_labels["final"] = hard.clone()

        phases = [Phase("r2d2 stage 1 (supervised)", e1, labelled, classification_loss(), run.optim),
                  Phase("r2d2 stage 2 (D2)", e2, streams, d2_loss(table, label_lr, run.classes),
                        OptimConfig(lr=run.lr, **constant), _chain(repredict("init"), keep("d2_init")))]
        for c, ratio in enumerate(cycle_lr_ratios(k)):
            phases.append(Phase(f"r2d2 stage 3 (R2 cycle {c + 1}/{k})", ec, streams,
                                d2_loss(table, label_lr, run.classes), OptimConfig(lr=run.lr * ratio, **constant),
                                _chain(keep("stage2" if c == 0 else f"cycle{c}"), repredict(f"cycle{c + 1}"))))
        phases.append(Phase("r2d2 stage 4 (fine-tune)", e4, streams,
                            hard_label_loss(hard, torch.ones(len(hard), dtype=torch.bool)),
                            OptimConfig(lr=run.lr * FINETUNE_LR_RATIO, warmup_epochs=0.0,
                                        optimizer=run.optim.optimizer, weight_decay=run.optim.weight_decay),
                            finetune_labels))
        self.settings = {"stage_epochs": [e1, e2, [ec] * k, e4], "repredict": k, "cycle_epochs": ec,
                         "label_lr": label_lr, "effective_step": effective_step(label_lr, CLASS_WEIGHT, run.batch_size),
                         "class_weight": CLASS_WEIGHT, "entropy_weight": ENTROPY_WEIGHT,
                         "cycle_lr": [run.lr * r for r in cycle_lr_ratios(k)], "lr": run.lr,
                         "finetune_lr": run.lr * FINETUNE_LR_RATIO}
        return phases

    def state(self) -> dict[str, Any]:
        return {"table": self.table.rows.clone() if self.table else None,
                "hard": None if self.hard is None else self.hard.clone(),
                "pseudo_labels": {k: v.clone() for k, v in self.pseudo_labels.items()}}

    def load_state(self, state: dict[str, Any]) -> None:
        if state.get("table") is not None:
            self.table = LabelTable(state["table"])
        if state.get("hard") is not None:
            self.hard = state["hard"]
        self.pseudo_labels = dict(state.get("pseudo_labels") or {})

    def record(self) -> dict[str, Any]:
        return {**self.settings, "pseudo_labels": self.pseudo_labels}


def _chain(*hooks: Any) -> Any:
    def run() -> None:
        for hook in hooks:
            hook()

    return run


def _transformed(ds: Any, transform: Any) -> Any:
    from ...data.datasets import Transformed

    return Transformed(ds, transform)
