"""Semi-supervised regimes: how a run uses a labelled set and an unlabelled pool.

A regime turns a :class:`SemiRun` (the model, the labelled set, the pool whose labels are
hidden, the run's budget of epochs and its fit options) into a list of :class:`Phase`\\ s,
each one call of the shared fit engine with its own loader, loss, optimizer schedule and
a hook run when the phase starts (reprediction of pseudo-labels). :func:`run_phases` runs
them in order, resumable at any epoch of any phase; the regime's own state (its pseudo-label
table) travels in the resume file. ``--epochs`` is the whole run's budget for every regime,
so that runs compared at equal epochs differ only in ``--semi``.

Adding a regime is one module defining a :class:`Regime` subclass plus one :func:`register_regime`.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ...errors import EdgekitError
from ..loop import OptimConfig, StepLoss, fit


@dataclass
class SemiRun:
    """What a regime needs: the model, the data and the run's settings."""

    model: nn.Module
    labelled: Dataset  # (image, label) of the labelled part of the training split
    pool: Dataset  # (image, index): the unlabelled pool, labels hidden (edgekit.data.hidden)
    classes: int
    train_transform: Callable
    eval_transform: Callable
    batch_size: int
    epochs: int
    lr: float
    optim: OptimConfig
    device: torch.device
    seed: int = 0
    workers: int = 0
    settings: dict[str, Any] = field(default_factory=dict)  # the regime's options (label_lr, repredict...)


@dataclass
class Phase:
    """One call of :func:`~edgekit.training.loop.fit`."""

    name: str
    epochs: int
    loader: Any
    loss: StepLoss
    optim: OptimConfig
    start: Callable[[], None] | None = None  # run when the phase starts (not when it resumes)


class Regime(ABC):
    """Base class: ``phases(run)`` plus the state that must survive a resume."""

    name: ClassVar[str] = ""
    #: whether the regime reads the unlabelled pool (``none`` trains on the labelled set alone)
    uses_pool: ClassVar[bool] = True

    @abstractmethod
    def phases(self, run: SemiRun) -> list[Phase]:
        """The run's phases in order (a regime's whole schedule)."""

    def state(self) -> dict[str, Any]:
        """Tensors and numbers to restore on resume (a pseudo-label table)."""
        return {}

    def load_state(self, state: dict[str, Any]) -> None:
        pass

    def record(self) -> dict[str, Any]:
        """What the checkpoint records of the run (settings, stages, pseudo-labels per cycle)."""
        return {}


def run_phases(regime: Regime, run: SemiRun, *, resume_state: dict[str, Any] | None,
               on_epoch_end: Callable[[int, dict[str, Any], dict[str, Any]], None] | None,
               **fit_options: Any) -> list[dict[str, Any]]:
    """Run the regime's phases in order; ``on_epoch_end(epoch, record, state)`` receives a resumable
    state (phase index, the fit state, the regime's state) and ``resume_state`` is such a state.
    Precise BN runs at the end of the last phase only. Records carry their phase's name."""
    if resume_state:
        regime.load_state(resume_state.get("regime") or {})
    phases = regime.phases(run)
    first = int(resume_state["phase"]) if resume_state else 0
    precise = fit_options.pop("precise_bn_batches", 0)
    history: list[dict[str, Any]] = []
    for i, phase in enumerate(phases):
        if i < first:
            continue
        resumed = resume_state["fit"] if resume_state and i == first else None
        if resumed is None and phase.start is not None:
            phase.start()

        def end(epoch: int, record: dict[str, Any], state: dict[str, Any], i: int = i) -> None:
            if on_epoch_end is not None:
                last = i == len(phases) - 1 and epoch + 1 == phases[i].epochs
                on_epoch_end(epoch, record, None if last else {"phase": i if epoch + 1 < phases[i].epochs else i + 1,
                                                                "fit": state if epoch + 1 < phases[i].epochs else None,
                                                                "regime": regime.state()})

        history += fit(run.model, phase.loader, epochs=phase.epochs, loss_fn=phase.loss, optim=phase.optim,
                       device=run.device, on_epoch_end=end, resume_state=resumed, desc=phase.name,
                       record_extra={"phase": phase.name},
                       precise_bn_batches=precise if i == len(phases) - 1 else 0, **fit_options)
    return history


@torch.no_grad()
def predict(model: nn.Module, pool: Dataset, transform: Callable, batch_size: int,
            device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's logits on every pool image (eval mode, ``transform``) and the pool indices."""
    from ...data.datasets import Transformed

    was = model.training
    model.eval()
    logits, rows = [], []
    try:
        for x, idx in DataLoader(Transformed(pool, transform), batch_size=max(batch_size, 128)):
            logits.append(model(x.to(device)).float().cpu())
            rows.append(torch.as_tensor(idx))
    finally:
        model.train(was)
    return torch.cat(logits), torch.cat(rows)


_REGIMES: dict[str, Regime] = {}


def register_regime(cls: type[Regime]) -> type[Regime]:
    if not cls.name:
        raise EdgekitError(f"a semi-supervised regime needs a name, got {cls.name!r}")
    _REGIMES[cls.name] = cls()
    return cls


def get_regime(name: str) -> Regime:
    """A fresh regime object of that name (regimes hold a run's state)."""
    try:
        return type(_REGIMES[name])()
    except KeyError:
        raise EdgekitError(f"unknown semi-supervised regime {name!r}; expected one of {', '.join(_REGIMES)}") from None


def list_regimes() -> tuple[str, ...]:
    return tuple(_REGIMES)
