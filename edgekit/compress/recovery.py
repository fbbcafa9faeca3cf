"""Recovering accuracy after pruning: plain fine-tuning and CURL's limited-data recipe.

``finetune``: cross-entropy with the standard augmentation on the training split,
SGD with warm-up + cosine, through the shared :func:`edgekit.training.loop.fit` engine.

``limited_data`` (CURL's CUB-200 pipeline, Luo & Wu, CVPR 2020; docs/methods.md section 1.3;
for when only a small labelled set exists):

1. **stage 2, mixup + KD**: mixup with alpha=1; the same mixed image goes to the unpruned
   teacher; loss = 0.7 * T^2 KL(p_T || p_S) at T=2 + 0.3 * mixed cross-entropy. With
   ``mixup=False`` (the default, :data:`DEFAULT_MIXUP`) the same loss on the augmented,
   unmixed images.
2. **stage 3, expanded set + label refinement**: every training image yields several
   versions, generated once (seeded). The paper's six (original; 2x2, 3x3, 4x4 patch
   shuffles; cutout; a rotation in [0, 360)) change the class of digits and shapes, so the
   versions are chosen per dataset to keep the label (:mod:`edgekit.compress.expansion`;
   the ``expansion`` argument overrides). The teacher's logits on each are stored in a
   table Z. Loss = 0.7 * KL(p_student || softmax(Z_i)) + 0.3 * CE, T=1; with ``label_lr`` > 0
   the table moves after every step by plain SGD on its own gradient, Z_i <- Z_i -
   label_lr * dL/dZ_i (the Deep-Decipher label refinement, :mod:`edgekit.training.label_table`,
   shared with R2-D2; the paper's lr is 1).
   ``label_lr=0`` (the default, :data:`DEFAULT_LABEL_LR`) keeps the teacher's logits fixed.
   The student's stage-3 learning rate is ``refine_lr`` (default :data:`REFINE_LR_RATIO`
   times stage 2's; the paper's ratio is 1/100).

Defaults chosen by measurement (benchmarks/limited_data.md: resnet18 pruned to 50 % MACs,
recovered on 10 % of digits and of the synthetic shapes, each run paired by seed with plain
fine-tuning): once stage 3 trains the student, the paper's expansion costs 1.4 points on
digits and 16 on the shapes (square <-> diamond, the bars turned) against the per-dataset
expansion, which was never worse in any pair; label refinement changed no final accuracy in
any of 14 paired runs (each table entry moves by about ``0.7 / batch`` per visit), so it is
off; mixup cost 5 points on digits and 0.5 on the shapes against KD alone, so it is off;
stage 3 at 1/10 of stage 2's rate beat both 1/100 and the full rate. With these defaults the
recipe is 0.96 points above plain fine-tuning on the shapes and level with it on digits
(-0.28, inside the seed spread), 6 seeds, where the recipe as published lost 4.1 on digits.

Epochs are the caller's budget. Both recipes end with precise BatchNorm statistics
(``precise_bn`` batches; :mod:`edgekit.training.precise_bn`), which also undoes the drift of
the running statistics that training on the expanded set in train mode causes.

**Label-distribution models** (``label_task``; DLDL-v2, Gao et al. 2020): the hard term is
the checkpoint's own loss (:func:`edgekit.training.label_distribution.label_loss`, KL + lambda
L1 by default) in place of cross-entropy, validation reports MAE, and the soft terms
compare label distributions (``log p_hat`` as logits, :func:`edgekit.compress.kd.soft_logits`).
Stage 2 drops mixup: a blend of two images has no blended label on an ordinal scale (the
trainer refuses ``--mix`` for this task for the same reason), so it is KD + the label
loss on the augmented images. Stage 3 keeps the expanded set and the refined table of
teacher log-distributions; its hard term uses the original image's label, which assumes
the label survives the expansion (the ``ordinal`` preset leaves out crops, cutouts and
shuffles, which change a size); for orientation-like targets use ``finetune``. Augmentation leaves flips out when the checkpoint's task says a
flip changes the label (``flip_test`` off).
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ..data import DataBundle, eval_transform, train_transform
from ..numbers import non_negative_float, positive_float
from ..training.label_distribution import LabelTask, label_loss
from ..training.label_table import LabelTable
from ..training.loop import OptimConfig, StepLoss, StepOutput, classification_loss, fit
from ..training.mix import Mixer
from ..training.precise_bn import bn_loader
from .expansion import Expansion, PRESETS, cutout, parse_expansion, patch_shuffle, without_flips
from .kd import kd_loss, kl_divergence, soft_logits
from .loss_terms import task_step

KD_T, KD_WEIGHT = 2.0, 0.7
REFINE_WEIGHT, LABEL_LR = 0.7, 1.0
#: the paper's six versions (the ``paper`` expansion preset)
VARIANTS = PRESETS["paper"].versions
#: stage 3's label-refinement rate when the caller gives none: 0, refinement off (module docstring)
DEFAULT_LABEL_LR = 0.0
#: whether stage 2 mixes images when the caller does not say: no (module docstring)
DEFAULT_MIXUP = False
#: stage 3's learning rate as a fraction of stage 2's when the caller gives none (paper: 1/100)
REFINE_LR_RATIO = 0.1
__all__ = ["finetune", "limited_data", "expansion_for", "ExpandedSet", "refine_loss", "mixup_kd_loss",
           "kd_label_loss", "teacher_logits", "patch_shuffle", "cutout", "VARIANTS", "DEFAULT_LABEL_LR",
           "DEFAULT_MIXUP", "REFINE_LR_RATIO"]


def _augment_name(bundle: DataBundle, label_task: LabelTask | None = None) -> str:
    if not bundle.flip_invariant or (label_task is not None and not label_task.flip_test):
        return "no_flip"
    return "standard"


def _task(label_task: LabelTask | None) -> str:
    return "classify" if label_task is None else "label_distribution"


def finetune(model: nn.Module, bundle: DataBundle, spec: dict[str, Any], *, epochs: int, lr: float = 0.01,
             batch_size: int = 64, seed: int = 0, device: torch.device | str = "cpu", progress: bool = True,
             log_path: str | None = None, val_loader: DataLoader | None = None,
             precise_bn: int = 0, label_task: LabelTask | None = None) -> list[dict[str, Any]]:
    """Plain fine-tuning for ``epochs`` with the task loss (cross-entropy, or ``label_task``'s);
    returns fit's per-epoch records."""
    torch.manual_seed(seed)
    loader = bundle.loader("train", train_transform(spec, _augment_name(bundle, label_task)), batch_size,
                           shuffle=True, drop_last=len(bundle.train) > batch_size)
    loss = classification_loss() if label_task is None else label_loss(label_task)
    return fit(model, loader, epochs=epochs, loss_fn=loss, device=torch.device(device),
               optim=OptimConfig(lr=lr, warmup_epochs=min(1.0, epochs / 5)), log_path=log_path,
               progress=progress, desc="fine-tune", val_loader=val_loader, precise_bn_batches=precise_bn,
               bn_loader=bn_loader(bundle, spec, batch_size), task=_task(label_task))


def mixup_kd_loss(teacher: nn.Module, seed: int = 0, temperature: float = KD_T,
                  weight: float = KD_WEIGHT) -> Callable[..., StepOutput]:
    """Stage 2: mixup (alpha=1) with the teacher on the same mixed image."""
    mixer = Mixer("mixup", alpha=1.0, seed=seed, fold=False)  # CURL's mixup keeps lambda ~ Beta(1, 1) unfolded
    ce = nn.CrossEntropyLoss()

    def step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epoch: int) -> StepOutput:
        xm, ya, yb, lam = mixer.mix(x, y)
        out = model(xm)
        with torch.no_grad():
            t = teacher(xm)
        hard = lam * ce(out, ya) + (1 - lam) * ce(out, yb)
        soft = kd_loss(out, t, temperature)
        loss = weight * soft + (1 - weight) * hard
        return StepOutput(loss, {"kd": float(soft.detach()), "ce": float(hard.detach())}, out,
                          ya if lam >= 0.5 else yb)

    return step


def kd_label_loss(teacher: nn.Module, label_task: LabelTask | None = None, temperature: float = KD_T,
                  weight: float = KD_WEIGHT) -> StepLoss:
    """Stage 2 without mixup: ``weight * T^2 KL(p_T^(1/T) || p_S^(1/T))`` + ``(1 - weight) *`` the
    task's loss (cross-entropy, or ``label_task``'s on the label distributions; module docstring)."""
    hard_loss = classification_loss() if label_task is None else label_loss(label_task)
    logits = soft_logits(_task(label_task), label_task)

    def step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epoch: int) -> StepOutput:
        hard, out = task_step(hard_loss, model, x, y, epoch)
        with torch.no_grad():
            t = teacher(x)
        soft = kd_loss(logits(out), logits(t), temperature)
        return StepOutput(weight * soft + (1 - weight) * hard.loss, {"kd": float(soft.detach()), **hard.terms},
                          hard.logits, hard.targets)

    return step


def expansion_for(bundle: DataBundle, expansion: str | Expansion | None = None,
                  label_task: LabelTask | None = None) -> Expansion:
    """The expanded set's versions for ``bundle``: ``expansion`` (an :class:`Expansion` or
    :func:`~edgekit.compress.expansion.parse_expansion` text) or the data's own preset, less
    mirrored versions when the task says a mirror changes the label."""
    policy = expansion if isinstance(expansion, Expansion) else \
        parse_expansion(expansion or "auto", bundle.spec, bundle.info)
    flip_ok = bundle.flip_invariant and (label_task is None or label_task.flip_test)
    return policy if flip_ok else without_flips(policy)


class ExpandedSet(Dataset):
    """The expanded training set; item ``i`` is version ``i % V`` of image ``i // V`` (``V`` versions
    of ``policy``), fixed by seed.

    Images are first resized to the model's input size (so a 4x4 shuffle cuts the
    picture the model sees), then the version is drawn from a per-item seeded RNG, so
    every epoch sees the same expanded set, as if it had been saved to disk once.
    Items are ``(transform(image), i)``: the index keys the stored-logit table.
    """

    def __init__(self, base: Dataset, size: tuple[int, int], transform: Callable, seed: int = 0,
                 numeric: bool = False, policy: Expansion = PRESETS["paper"]) -> None:
        self.base, self.size, self.transform, self.seed, self.numeric = base, size, transform, seed, numeric
        self.policy = policy
        if numeric:  # label-distribution targets: (label, sigma) rows as floats
            rows = torch.stack([torch.as_tensor(self.base[i][1], dtype=torch.float32).reshape(-1)
                                for i in range(len(base))])
        else:
            rows = torch.tensor([int(self.base[i][1]) for i in range(len(base))])
        self.targets = rows.repeat_interleave(len(policy), dim=0)

    def __len__(self) -> int:
        return len(self.base) * len(self.policy)

    def image(self, i: int) -> Image.Image:
        src, v = divmod(i, len(self.policy))
        img = self.base[src][0]
        img = img.convert("RGB") if img.mode not in ("RGB", "L") else img
        img = img.resize((self.size[1], self.size[0]), Image.BILINEAR)
        return self.policy.apply(img, v, np.random.default_rng([self.seed, i]))

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.transform(self.image(i)), i


@torch.no_grad()
def teacher_logits(teacher: nn.Module, expanded: ExpandedSet, spec: dict[str, Any], device: torch.device,
                   batch_size: int = 128, label_task: LabelTask | None = None) -> torch.Tensor:
    """The teacher's logits on every expanded image under the eval transform (the table Z);
    a label-distribution teacher's ``log p_hat``."""
    view = ExpandedSet(expanded.base, expanded.size, eval_transform(spec), expanded.seed, expanded.numeric,
                       expanded.policy)
    teacher.eval().to(device)
    logits = soft_logits(_task(label_task), label_task)
    out = [logits(teacher(x.to(device)).float()).cpu() for x, _ in DataLoader(view, batch_size=batch_size)]
    return torch.cat(out)


def refine_loss(table: torch.Tensor, targets: torch.Tensor, weight: float = REFINE_WEIGHT,
                label_lr: float = LABEL_LR, label_task: LabelTask | None = None) -> Callable[..., StepOutput]:
    """Stage 3: 0.7 KL(student || softmax(Z_i)) + 0.3 CE (or ``label_task``'s loss, the student's
    ``log p_hat`` in the KL); Z_i updated in place by SGD at ``label_lr``."""
    ce = nn.CrossEntropyLoss()
    hard_loss = label_loss(label_task) if label_task is not None else None
    logits = soft_logits(_task(label_task), label_task)

    rows = LabelTable(table)

    def step(model: nn.Module, x: torch.Tensor, idx: torch.Tensor, epoch: int) -> StepOutput:
        idx_cpu = idx.cpu()
        y = targets[idx_cpu].to(x.device)
        z = rows.batch(idx_cpu, x.device, grad=bool(label_lr))
        if hard_loss is None:
            out = model(x)
            hard, terms = ce(out, y), {}
        else:
            task_out, out = task_step(hard_loss, model, x, y, epoch)
            hard, terms = task_out.loss, task_out.terms
        soft = kl_divergence(logits(out), z).mean()
        loss = weight * soft + (1 - weight) * hard
        if label_lr:
            (gz,) = torch.autograd.grad(loss, z, retain_graph=True)
            rows.step(idx_cpu, gz, label_lr)
        if hard_loss is None:
            return StepOutput(loss, {"kl": float(soft.detach()), "ce": float(hard.detach())}, out, y)
        return StepOutput(loss, {**terms, "kl_refine": float(soft.detach())})

    return step


def limited_data(model: nn.Module, teacher: nn.Module, bundle: DataBundle, spec: dict[str, Any], *,
                 epochs: int, refine_epochs: int | None = None, lr: float = 0.01, batch_size: int = 32,
                 seed: int = 0, device: torch.device | str = "cpu", progress: bool = True,
                 log_path: str | None = None, val_loader: DataLoader | None = None,
                 precise_bn: int = 0, label_task: LabelTask | None = None,
                 expansion: str | Expansion | None = None, label_lr: float | None = None,
                 mixup: bool | None = None, refine_lr: float | None = None) -> dict[str, Any]:
    """CURL's limited-data recovery: ``epochs`` of KD (with mixup if ``mixup``, default
    :data:`DEFAULT_MIXUP`; never for ``label_task``), then ``refine_epochs`` on the expanded set
    (``expansion``: :func:`expansion_for`) with the teacher's logits refined at ``label_lr``
    (default :data:`DEFAULT_LABEL_LR`; 0 keeps them fixed), the student at ``refine_lr``
    (default :data:`REFINE_LR_RATIO` * ``lr``).

    Precise BN (``precise_bn`` batches) runs once, at the end of the last stage that runs."""
    label_lr = DEFAULT_LABEL_LR if label_lr is None else non_negative_float("label_lr", label_lr)
    refine_lr = lr * REFINE_LR_RATIO if refine_lr is None else positive_float("refine_lr", refine_lr)
    policy = expansion_for(bundle, expansion, label_task)
    dev = torch.device(device)
    teacher = teacher.eval().to(dev)  # used under no_grad only; its parameters are left untouched
    torch.manual_seed(seed)
    aug = train_transform(spec, _augment_name(bundle, label_task))
    loader = bundle.loader("train", aug, batch_size, shuffle=True, drop_last=len(bundle.train) > batch_size)
    if refine_epochs is None:
        refine_epochs = max(1, math.ceil(epochs / 8))
    bn = dict(val_loader=val_loader, bn_loader=bn_loader(bundle, spec, batch_size), task=_task(label_task))
    mixup = (DEFAULT_MIXUP if mixup is None else bool(mixup)) and label_task is None
    stage2_loss = mixup_kd_loss(teacher, seed) if mixup else kd_label_loss(teacher, label_task)
    stage2 = fit(model, loader, epochs=epochs, loss_fn=stage2_loss, device=dev,
                 optim=OptimConfig(lr=lr, warmup_epochs=min(1.0, epochs / 5)), log_path=log_path,
                 progress=progress, desc="mixup+KD" if mixup else "KD",
                 precise_bn_batches=0 if refine_epochs > 0 else precise_bn, **bn)
    stage3: list[dict[str, Any]] = []
    if refine_epochs > 0:
        h, w = spec["shape"][1:]
        expanded = ExpandedSet(bundle.train, (h, w), aug, seed, numeric=label_task is not None, policy=policy)
        table = teacher_logits(teacher, expanded, spec, dev, label_task=label_task)
        loader3 = DataLoader(expanded, batch_size=batch_size, shuffle=True, drop_last=len(expanded) > batch_size)
        stage3 = fit(model, loader3, epochs=refine_epochs,
                     loss_fn=refine_loss(table, expanded.targets, label_lr=label_lr, label_task=label_task),
                     device=dev, optim=OptimConfig(lr=refine_lr, warmup_epochs=0.0), log_path=log_path,
                     progress=progress, desc="label refine", precise_bn_batches=precise_bn, **bn)
    return {"stage2": stage2, "stage3": stage3, "expanded_images": len(bundle.train) * len(policy),
            "refine_epochs": refine_epochs, "expansion": policy.describe(), "label_lr": label_lr, "mixup": mixup,
            "refine_lr": refine_lr}
