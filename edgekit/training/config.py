"""``TrainConfig``: the options of ``edgekit train`` (and :func:`edgekit.train`), validated.

Also the choices the training engine offers (optimizers, mixing modes, augmentations, defined
in :mod:`edgekit.stage_config` below the engine and the data), free of torch, so the CLI
lists them without importing the engine.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import EdgekitError
from ..numbers import (epoch_count, fraction, milestones, non_negative_float, non_negative_int, optional,
                       positive_float, positive_int, unit_interval)
from ..stage_config import (AUGMENTS, LABEL_LOSSES, LR_SCHEDULES, MIX_MODES, OPTIMIZERS, SEMI_MODES, STEP_MILESTONES,
                            RunConfig, choice)

#: TSM's temporal shift (see edgekit.models.shift): both directions, or from the past only (streams)
SHIFTS = ("bidirectional", "causal")


@dataclass
class FitOptions(RunConfig):
    """The options of a run of the shared fit engine (:func:`edgekit.training.loop.fit`): epochs,
    optimizer and schedule, loader workers. ``train`` and ``distill`` share them."""

    epochs: int = 10
    optimizer: str = "sgd"
    lr: float | None = None  # peak; default 0.05 SGD, 2e-3 AdamW/Adam
    weight_decay: float | None = None
    warmup_epochs: float = 1.0
    workers: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        self.epochs = epoch_count("epochs", self.epochs)
        self.optimizer = choice("optimizer", self.optimizer, OPTIMIZERS)
        self.lr = optional(positive_float, "lr", self.lr)
        self.weight_decay = optional(non_negative_float, "weight_decay", self.weight_decay)
        self.warmup_epochs = non_negative_float("warmup_epochs", self.warmup_epochs)
        self.workers = non_negative_int("workers", self.workers)

    def optim(self) -> Any:
        """The engine's :class:`~edgekit.training.loop.OptimConfig` for these options."""
        from .loop import OptimConfig

        return OptimConfig(optimizer=self.optimizer, lr=self.lr, weight_decay=self.weight_decay,
                           warmup_epochs=self.warmup_epochs)


@dataclass
class TrainConfig(FitOptions):
    """What to train and how; ``None`` means "the default for this model and data"."""

    label_smoothing: float = 0.0
    lr_schedule: str = "cosine"  # or step: the mWh authors' lr / 10 at each milestone
    milestones: tuple[float, ...] | None = None  # step: fractions of epochs; default 0.5,0.75 (epochs 50, 75 of 100)
    mix: str = "none"  # mwh = mixup without hesitation
    mix_alpha: float | None = None  # Beta(alpha, alpha); default 0.5, CutMix 1.0
    input_size: int | None = None  # default: the dataset's
    small_input: bool | None = None  # default: on for inputs <= 64 px on ImageNet nets
    arch_kwargs: dict[str, Any] | None = None
    weights: str | None = None
    warmup_frozen: int | None = None  # epochs training only the layers --weights lack (S3L), before --epochs
    augment: str = "standard"
    labeled_fraction: float = 1.0  # train on a stratified, seeded fraction of the training split's labels
    # semi-supervised training (edgekit.training.semi): the labelled fraction above, the rest of the
    # training split (and/or the images of ``unlabeled``) as the pool whose labels stay hidden
    semi: str = "none"  # none | pseudo-label | r2d2
    unlabeled: str | None = None  # a data spec whose training images join the unlabelled pool
    label_lr: float | None = None  # r2d2: the authors' lambda; default: their effective per-row step 0.78
    repredict: int | None = None  # r2d2: reprediction cycles (the authors' 4)
    cycle_epochs: int | None = None  # r2d2: epochs per cycle (default: the authors' proportions of --epochs)
    pseudo_threshold: float | None = None  # pseudo-label: confidence for a hard label (0.95)
    # the label-distribution task (DLDL-v2; see edgekit.training.label_distribution)
    task: str | None = None  # None: the data's (classify, regression or label_distribution)
    label_range: str | None = None  # lo:hi:step; default: the data's suggestion
    sigma: float | None = None  # fixed sigma; default: the data's per-sample sigma, else 2 label steps
    loss: str | None = None  # dldl | kl | l1 | ce | ranking (default dldl)
    dldl_lambda: float = 1.0
    flip_test: bool | None = None  # average image + flip at evaluation; default: on unless no-flip augmentation
    # clip models (tsn_/tsm_ architectures on clip data; see edgekit.models.temporal)
    frames: int | None = None  # frames sampled per clip (TSN segments); default: the data's suggestion
    shift: str | None = None  # tsm_ only: bidirectional (the architecture's default) or causal (streams)

    def optim(self) -> Any:
        """The engine's :class:`~edgekit.training.loop.OptimConfig`, with the schedule."""
        optim = super().optim()
        optim.schedule = self.lr_schedule
        if self.milestones is not None:
            optim.milestones = self.milestones
        return optim

    def __post_init__(self) -> None:
        super().__post_init__()
        self.label_smoothing = unit_interval("label_smoothing", self.label_smoothing)
        if self.label_smoothing == 1:
            raise EdgekitError("label_smoothing must be below 1, got 1")
        self.lr_schedule = choice("lr_schedule", self.lr_schedule, LR_SCHEDULES)
        self.milestones = optional(milestones, "milestones", self.milestones)
        if self.lr_schedule == "step" and self.milestones is None:
            self.milestones = STEP_MILESTONES
        elif self.lr_schedule != "step" and self.milestones is not None:
            raise EdgekitError(f"--milestones belongs to --lr-schedule step, not {self.lr_schedule}")
        self.mix = choice("mix mode", self.mix, MIX_MODES)
        self.mix_alpha = optional(positive_float, "mix_alpha", self.mix_alpha)
        self.input_size = optional(positive_int, "input_size", self.input_size)
        self.warmup_frozen = optional(epoch_count, "warmup_frozen", self.warmup_frozen)
        self.labeled_fraction = fraction("labeled_fraction", self.labeled_fraction)
        self.augment = choice("augment", self.augment, AUGMENTS)
        self.semi = choice("semi", self.semi, SEMI_MODES)
        self.label_lr = optional(positive_float, "label_lr", self.label_lr)
        self.repredict = optional(positive_int, "repredict", self.repredict)
        self.cycle_epochs = optional(epoch_count, "cycle_epochs", self.cycle_epochs)
        self.pseudo_threshold = optional(fraction, "pseudo_threshold", self.pseudo_threshold)
        self._check_semi()
        if self.task is not None:
            from ..tasks import list_tasks  # the registry imports torch: only when a task is named

            self.task = choice("task", self.task, list_tasks(trainable=True))
        self.loss = optional(choice, "loss", self.loss, choices=LABEL_LOSSES)
        self.sigma = optional(non_negative_float, "sigma", self.sigma)
        self.dldl_lambda = non_negative_float("lambda", self.dldl_lambda)
        self.frames = optional(positive_int, "frames", self.frames)
        self.shift = optional(choice, "shift", self.shift, choices=SHIFTS)

    def _check_semi(self) -> None:
        """Semi-supervised options belong together: a regime that reads a pool needs one, its options need it."""
        own = {"label_lr": "r2d2", "repredict": "r2d2", "cycle_epochs": "r2d2", "pseudo_threshold": "pseudo-label"}
        for name, mode in own.items():
            if getattr(self, name) is not None and self.semi != mode:
                raise EdgekitError(f"--{name.replace('_', '-')} belongs to --semi {mode}")
        if self.semi == "none":
            if self.unlabeled is not None:
                raise EdgekitError("--unlabeled gives a semi-supervised run its pool; pass --semi r2d2 or pseudo-label")
            return
        if self.labeled_fraction == 1 and self.unlabeled is None:
            raise EdgekitError(f"--semi {self.semi} needs unlabelled images: --labeled-fraction below 1 (the rest of "
                               "the training split) or --unlabeled SPEC")
        if self.mix != "none" or self.warmup_frozen is not None:
            raise EdgekitError(f"--semi {self.semi} has its own losses and stages; it takes neither --mix nor "
                               "--warmup-frozen")
