"""``PretrainConfig``: the options of ``edgekit pretrain`` (and :func:`edgekit.pretrain`), validated.

Free of torch, so the CLI lists the choices without importing the engine. ``None`` means
"the method's default": each method declares its authors' settings beside its code
(:mod:`edgekit.pretraining.methods`), and the run records the resolved values in the
checkpoint (``extra["ssl"]["settings"]``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..numbers import fraction, optional, positive_float, positive_int
from ..stage_config import choice
from ..training.config import FitOptions

#: the built-in self-supervised methods (registered in :mod:`edgekit.pretraining.methods`)
SSL_METHODS = ("simclr", "mocov2", "byol")


@dataclass
class PretrainConfig(FitOptions):
    """What to pretrain and how (the fit options: epochs, optimizer, lr, batch size, seed...)."""

    method: str = "mocov2"
    batch_size: int = 128
    warmup_epochs: float = 0.0  # MoCo v2 and S3L: cosine schedule from the first step
    input_size: int | None = None  # default: the dataset's (S3L: pretrain smaller than you fine-tune)
    small_input: bool | None = None  # default: on for inputs <= 64 px on ImageNet nets
    arch_kwargs: dict[str, Any] | None = None
    drop_last_stage: bool = False  # S3L's small architecture: the last stage removed while pretraining
    flip: bool | None = None  # horizontal flips in the views; default: the data's flip invariance
    # the method's own settings; None: its authors' default (see each method's DEFAULTS)
    temperature: float | None = None
    queue: int | None = None  # MoCo's K negatives
    momentum_encoder: float | None = None  # MoCo's m, BYOL's base tau
    proj_dim: int | None = None
    proj_hidden: int | None = None
    # the k-NN probe run after every epoch (labels used by the probe only, never by training)
    knn_k: int = 20
    knn_temperature: float = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        self.method = choice("method", self.method, list_methods())
        self.input_size = optional(positive_int, "input_size", self.input_size)
        self.temperature = optional(positive_float, "temperature", self.temperature)
        self.queue = optional(positive_int, "queue", self.queue)
        self.momentum_encoder = optional(fraction, "momentum_encoder", self.momentum_encoder, closed_right=False)
        self.proj_dim = optional(positive_int, "proj_dim", self.proj_dim)
        self.proj_hidden = optional(positive_int, "proj_hidden", self.proj_hidden)
        self.knn_k = positive_int("knn_k", self.knn_k)
        self.knn_temperature = positive_float("knn_temperature", self.knn_temperature)


def list_methods() -> tuple[str, ...]:
    """The registered method names; the built-ins without importing torch, plug-ins once registered."""
    import sys

    registry = sys.modules.get("edgekit.pretraining.methods.base")
    return tuple(registry.list_methods()) if registry is not None else SSL_METHODS
