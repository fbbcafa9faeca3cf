"""The self-supervised method protocol and its registry.

A method is an ``nn.Module`` built around an embedding backbone (:mod:`edgekit.models.embedding`):
it owns its heads (projector, predictor), its momentum encoder and memory (queue), and its
loss. ``forward(views)`` takes a batch of two views, ``(B, 2, C, H, W)``, and returns the
loss and its named terms, so the shared fit engine (:func:`edgekit.training.loop.fit`) runs
it like any stage, under DDP too (the module is what DDP wraps). Everything but the
backbone is the method's *head state* (:meth:`SSLMethod.head_state`): a checkpoint keeps it
in ``extra["ssl"]["heads"]`` so that multi-stage pretraining (``--from``) continues with
the same heads and queue.

Adding a method is one module defining a subclass plus one :func:`register_method` call.
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, replace
from typing import Any, ClassVar

import torch
import torch.distributed as dist
from torch import nn

from ...errors import EdgekitError


@dataclass(frozen=True)
class Settings:
    """A method's hyper-parameters. Each method's ``DEFAULTS`` are its authors' (cited there);
    ``lr`` is the peak for ``ref_batch`` images per step, scaled linearly to the run's batch."""

    lr: float
    ref_batch: int
    weight_decay: float
    temperature: float | None = None
    queue: int | None = None
    momentum_encoder: float | None = None
    proj_dim: int = 128
    proj_hidden: int | None = None  # None: the backbone's width

    def record(self) -> dict[str, Any]:
        return asdict(self)


class SSLMethod(nn.Module, ABC):
    """Base class: ``backbone`` (an embedding net of width ``dim``) plus the method's heads."""

    name: ClassVar[str] = ""
    DEFAULTS: ClassVar[Settings]
    #: the smallest batch the loss is defined for (contrastive losses need negatives in the batch)
    min_batch: ClassVar[int] = 2
    #: why the batch must be at least :attr:`min_batch`, for the error line
    min_batch_reason: ClassVar[str] = "BatchNorm needs more than one image"

    def __init__(self, backbone: nn.Module, dim: int, settings: Settings, total_steps: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.dim = dim
        self.settings = settings
        self.total_steps = max(1, int(total_steps))
        self.register_buffer("step", torch.zeros((), dtype=torch.long))

    @abstractmethod
    def forward(self, views: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """The loss of a batch of two views ``(B, 2, C, H, W)`` and its named terms."""

    def head_state(self) -> dict[str, torch.Tensor]:
        """Everything of the state dict but the backbone (heads, momentum encoder, queue, step)."""
        return {k: v.detach().cpu().clone() for k, v in self.state_dict().items() if not k.startswith("backbone.")}

    def load_head_state(self, heads: dict[str, torch.Tensor]) -> None:
        """Continue from a checkpoint's :meth:`head_state` (multi-stage pretraining). The step
        counter restarts: the new stage has its own schedule."""
        own = self.state_dict()
        bad = [k for k, v in heads.items() if k not in own or own[k].shape != v.shape]
        if bad or not heads:
            raise EdgekitError(f"the heads of the --from checkpoint do not fit this {self.name} run "
                               f"({bad[0] if bad else 'none saved'}); pass the same --proj-dim, --proj-hidden "
                               "and --queue as its run")
        self.load_state_dict({**{k: v for k, v in heads.items() if k != "step"},
                              **{k: v for k, v in own.items() if k.startswith("backbone.") or k == "step"}})

    def progress(self) -> float:
        """The fraction of the run's steps done, in [0, 1] (for momentum schedules)."""
        return min(1.0, float(self.step) / self.total_steps)


def mlp(dim_in: int, hidden: int, dim_out: int, bn: bool) -> nn.Sequential:
    """A two-layer projection MLP: Linear, (BatchNorm1d), ReLU, Linear."""
    layers: list[nn.Module] = [nn.Linear(dim_in, hidden)]
    if bn:
        layers.append(nn.BatchNorm1d(hidden))
    layers += [nn.ReLU(inplace=True), nn.Linear(hidden, dim_out)]
    return nn.Sequential(*layers)


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, m: float) -> None:
    """``target <- m * target + (1 - m) * online``, parameter by parameter (buffers copied)."""
    for t, o in zip(target.parameters(), online.parameters()):
        t.mul_(m).add_(o.detach(), alpha=1 - m)
    for t, o in zip(target.buffers(), online.buffers()):
        t.copy_(o)


def frozen_copy(module: nn.Module) -> nn.Module:
    """A copy of ``module`` whose parameters take no gradient (a momentum / target encoder)."""
    import copy

    twin = copy.deepcopy(module)
    for p in twin.parameters():
        p.requires_grad_(False)
    return twin


def gather(x: torch.Tensor) -> torch.Tensor:
    """``x`` of every process, concatenated in rank order, without gradient (one process: ``x``)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    parts = [torch.zeros_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts)


def cosine_ramp(base: float, progress: float) -> float:
    """BYOL's target decay: ``1 - (1 - base) * (cos(pi * progress) + 1) / 2``, from ``base`` to 1."""
    return 1 - (1 - base) * (math.cos(math.pi * progress) + 1) / 2


_METHODS: dict[str, type[SSLMethod]] = {}


def register_method(cls: type[SSLMethod]) -> type[SSLMethod]:
    """Register a method class under its ``name`` (usable as a decorator)."""
    if not cls.name:
        raise EdgekitError(f"a self-supervised method needs a name, got {cls.name!r}")
    _METHODS[cls.name] = cls
    return cls


def get_method(name: str) -> type[SSLMethod]:
    try:
        return _METHODS[name]
    except KeyError:
        raise EdgekitError(f"unknown self-supervised method {name!r}; expected one of {', '.join(_METHODS)}") from None


def list_methods() -> tuple[str, ...]:
    return tuple(_METHODS)


def resolve_settings(method: type[SSLMethod], overrides: dict[str, Any]) -> Settings:
    """The method's defaults with the run's given (non-None) options on top."""
    given = {k: v for k, v in overrides.items() if v is not None and k in Settings.__dataclass_fields__}
    return replace(method.DEFAULTS, **given)
