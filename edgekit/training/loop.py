"""The training engine shared by ``train``, ``prune`` recovery and ``distill``.

:func:`fit` owns what every stage needs and none should repeat: optimizer and
warm-up + cosine (or step) schedule, AMP and channels_last on CUDA, a rich progress bar
(loss, accuracy, images/s), one JSON line of metrics per epoch, per-epoch
callbacks (atomic checkpoints, resume state), DDP samplers, and precise BatchNorm
statistics at the end of the run (:mod:`edgekit.training.precise_bn`), so no stage ships
the lagging moving averages of a short run. What differs between stages is only the
loss: a :data:`StepLoss` maps ``(model, x, y, epoch)`` to a :class:`StepOutput` whose
named terms are logged, each averaged over the epoch's images (the classification loss's
``mixed``, 1 for a mixed batch and 0 for a plain one, averages to the fraction of the epoch's
batches that were mixed: batches are equal in size, as the trainers drop the last partial one).
"""
from __future__ import annotations

import math
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import torch
from torch import nn
from torch.utils.data import DataLoader

from ..errors import EdgekitError
from ..fileio import append_jsonl
from . import distributed as dist_utils
from ..stage_config import LR_SCHEDULES, OPTIMIZERS, STEP_MILESTONES
from .metrics import evaluate_model
from .precise_bn import bn_layers, precise_bn
# the step contract and the built-in step losses live below the tasks (edgekit.training.step); re-exported
from .step import StepLoss, StepOutput, classification_loss, regression_loss  # noqa: F401


@dataclass
class OptimConfig:
    """Optimizer and schedule: SGD (momentum, Nesterov) or AdamW; linear warm-up, then cosine decay
    (``schedule="cosine"``) or steps (``"step"``: the rate times ``gamma`` at each of ``milestones``,
    fractions of the run; the mWh authors' 0.1 at epochs 50 and 75 of 100)."""

    optimizer: str = "sgd"
    lr: float | None = None  # default: 0.05 for SGD, 2e-3 for AdamW/Adam
    weight_decay: float | None = None
    momentum: float = 0.9
    warmup_epochs: float = 1.0
    min_lr_ratio: float = 0.0  # cosine only
    schedule: str = "cosine"
    milestones: tuple[float, ...] = STEP_MILESTONES  # step only
    gamma: float = 0.1  # step only

    def resolved_lr(self) -> float:
        if self.lr is not None:
            return self.lr
        return 0.05 if self.optimizer == "sgd" else 2e-3

    def record(self, epochs: int) -> dict[str, Any]:
        """The schedule as plain data for a checkpoint's provenance (milestones also in epochs)."""
        rec: dict[str, Any] = {"name": self.schedule, "lr": self.resolved_lr(), "warmup_epochs": self.warmup_epochs}
        if self.schedule == "step":
            rec.update(milestones=list(self.milestones), milestone_epochs=[m * epochs for m in self.milestones],
                       gamma=self.gamma)
        return rec


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    """Optimizer with weight decay off for norms and biases (standard practice)."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    wd = cfg.weight_decay if cfg.weight_decay is not None else (5e-4 if cfg.optimizer == "sgd" else 0.05)
    groups = [{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}]
    lr = cfg.resolved_lr()
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=lr)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=lr)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}; expected one of {', '.join(OPTIMIZERS)}")


def build_scheduler(opt: torch.optim.Optimizer, cfg: OptimConfig, epochs: int,
                    steps_per_epoch: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-iteration linear warm-up over ``warmup_epochs``, then the schedule ``cfg.schedule``.

    ``cosine``: from the peak down to ``min_lr_ratio`` of it at the end of the run. ``step``: the
    rate is multiplied by ``gamma`` at each milestone, iteration ``round(m * epochs * steps_per_epoch)``
    for milestone fraction ``m`` (the start of epoch ``m * epochs`` when that is whole: 0.5 and
    0.75 of 100 epochs are the mWh authors' epochs 50 and 75). A milestone inside the warm-up
    scales the ramp too. The mWh code warms up only when it scales the rate for several GPUs;
    edgekit keeps its warm-up (``warmup_epochs=0`` turns it off)."""
    if cfg.schedule not in LR_SCHEDULES:
        raise ValueError(f"unknown lr schedule {cfg.schedule!r}; expected one of {', '.join(LR_SCHEDULES)}")
    total = max(1, epochs * steps_per_epoch)
    warm = min(int(cfg.warmup_epochs * steps_per_epoch), total - 1)
    drops = [round(m * epochs * steps_per_epoch) for m in cfg.milestones]

    def step_factor(step: int) -> float:
        return cfg.gamma ** sum(step >= d for d in drops)

    def cosine_factor(step: int) -> float:
        t = (step - warm) / max(1, total - warm)
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))

    def factor(step: int) -> float:
        if cfg.schedule == "step":
            return step_factor(step) * ((step + 1) / warm if step < warm else 1.0)
        return (step + 1) / warm if step < warm else cosine_factor(step)

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


class Diverged(EdgekitError):
    """The loss (or a weight) stopped being a finite number: training cannot go on.

    Raised by :func:`fit` before the bad epoch is logged, handed to ``on_epoch_end`` or
    saved, so nothing NaN reaches a checkpoint; ``epoch`` is the 1-based epoch it happened in."""

    def __init__(self, message: str, epoch: int) -> None:
        super().__init__(message)
        self.epoch = epoch


def _diverged(what: str, desc: str, epoch: int, epochs: int, saved: str | None) -> Diverged:
    """The one-line error for a run that diverged in 0-based ``epoch``, naming the last good state:
    ``saved`` (where ``on_epoch_end`` writes after every epoch) when an epoch finished before."""
    from pathlib import Path

    if saved is not None and epoch > 0 and Path(saved).exists():
        last = f"the last good checkpoint is {saved} (epoch {epoch})"
    elif saved is not None:
        last = f"no epoch finished, so nothing was written to {saved}"
    else:
        last = "nothing of this run was saved"
    return Diverged(f"{desc}: {what} in epoch {epoch + 1}/{epochs}; training diverged (a lower --lr usually "
                    f"helps); {last}", epoch + 1)


def _weights_finite(model: nn.Module) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in model.state_dict().values() if t.is_floating_point())


@dataclass
class FitState:
    """What a resumed run needs besides the model weights."""

    epoch: int = 0  # next epoch to run
    history: list[dict[str, Any]] = field(default_factory=list)


def fit(model: nn.Module, loader: DataLoader, *, epochs: int, loss_fn: StepLoss, optim: OptimConfig,
        device: torch.device, val_loader: DataLoader | None = None, task: str = "classify",
        log_path: str | None = None, on_epoch_end: Callable[[int, dict[str, Any], dict[str, Any]], None] | None = None,
        resume_state: dict[str, Any] | None = None, progress: bool = True, desc: str = "train",
        extra_params: Iterable[nn.Parameter] = (), precise_bn_batches: int = 0,
        bn_loader: Iterable[Any] | None = None, saved: str | None = None,
        probe: Callable[[], dict[str, Any]] | None = None,
        record_extra: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Train ``model`` for ``epochs`` and return the per-epoch metric records.

    ``on_epoch_end(epoch, record, state)`` receives the resumable state (optimizer,
    scheduler, RNG, history) after each epoch; ``resume_state`` is such a dict to
    continue from. Under DDP (``torchrun``) the model is wrapped here, only rank 0
    logs, and validation runs on rank 0.

    After the last epoch, before it is logged and handed to ``on_epoch_end`` (so the
    checkpoint holds the result), BatchNorm statistics are re-estimated over up to
    ``precise_bn_batches`` batches of ``bn_loader`` (default: ``loader``; 0 disables);
    the record's ``val_*`` are the accuracy after, and ``precise_bn`` holds the
    batches, images and the validation metrics before and after.

    ``probe()``, when given, replaces the validation of ``val_loader`` after every epoch (rank
    0): its numbers are recorded as ``val_*`` (pretraining's k-NN probe). ``record_extra`` is
    added to every epoch's record (the phase of a multi-phase run).

    A loss that is not a finite number (or weights that stop being finite) raises
    :class:`Diverged` at once, naming the epoch and ``saved`` (the file ``on_epoch_end``
    writes after every epoch, the last good state), before the epoch is logged or saved.
    """
    model.to(device)
    use_cuda = device.type == "cuda"
    if use_cuda:
        model.to(memory_format=torch.channels_last)
    train_model = dist_utils.wrap(model, device)
    opt = build_optimizer(model, optim)
    for p in extra_params:
        opt.add_param_group({"params": [p], "weight_decay": 0.0})
    sched = build_scheduler(opt, optim, epochs, len(loader))
    scaler = torch.amp.GradScaler("cuda", enabled=use_cuda)
    history: list[dict[str, Any]] = []
    start = 0
    if resume_state:
        opt.load_state_dict(resume_state["optimizer"])
        sched.load_state_dict(resume_state["scheduler"])
        torch.set_rng_state(resume_state["rng"])
        history = list(resume_state.get("history", []))
        start = int(resume_state["epoch"])
    is_main = dist_utils.is_main()
    for epoch in range(start, epochs):
        sampler = getattr(loader, "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        train_model.train()
        record = _run_epoch(train_model, loader, loss_fn, opt, sched, scaler, device, epoch, epochs,
                            progress and is_main, desc, use_cuda, saved)
        if not _weights_finite(model):
            raise _diverged("the weights stopped being finite numbers", desc, epoch, epochs, saved)
        if (val_loader is not None or probe is not None) and is_main:
            val = probe() if probe is not None else evaluate_model(model, val_loader, task, device)
            record.update({f"val_{k}": v for k, v in val.items() if k != "n"})
        if epoch == epochs - 1 and is_main and precise_bn_batches > 0 and bn_layers(model):
            before = {k[4:]: v for k, v in record.items() if k.startswith("val_")}
            record.update(_precise_bn(model, bn_loader if bn_loader is not None else loader, precise_bn_batches,
                                      device, before, val_loader, task, progress))
        record["lr"] = opt.param_groups[0]["lr"]
        record.update(record_extra or {})
        history.append(record)
        if is_main and log_path:
            append_jsonl(log_path, record)
        state = {"epoch": epoch + 1, "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                 "rng": torch.get_rng_state(), "history": history}
        if on_epoch_end is not None and is_main:
            on_epoch_end(epoch, record, state)
        dist_utils.barrier()
    return history


def _precise_bn(model: nn.Module, batches: Iterable[Any], num_batches: int, device: torch.device,
                before: dict[str, Any], val_loader: DataLoader | None, task: str, show: bool) -> dict[str, Any]:
    """Re-estimate BN statistics (rank 0); the validation metrics after, and before/after under ``precise_bn``."""
    t0 = time.perf_counter()
    images = precise_bn(model, batches, num_batches, device)
    info: dict[str, Any] = {"max_batches": num_batches, "images": images, "seconds": time.perf_counter() - t0}
    out: dict[str, Any] = {}
    if val_loader is not None:
        after = {k: v for k, v in evaluate_model(model, val_loader, task, device).items() if k != "n"}
        info.update({"before": before, "after": after})
        out.update({f"val_{k}": v for k, v in after.items()})
    out["precise_bn"] = info
    if show:
        from rich import get_console

        if "top1" in before:
            change = f": val top-1 {before['top1']:.2f}% -> {info['after']['top1']:.2f}%"
        else:
            key = next(iter(before), None)
            change = f": val {key} {before[key]:.4g} -> {info['after'][key]:.4g}" if key else ""
        get_console().print(f"precise BN over {images} training images{change}")
    return out


def _run_epoch(model: nn.Module, loader: DataLoader, loss_fn: StepLoss, opt: torch.optim.Optimizer,
               sched: Any, scaler: torch.amp.GradScaler, device: torch.device, epoch: int, epochs: int,
               show: bool, desc: str, use_cuda: bool, saved: str | None = None) -> dict[str, Any]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    n_seen, n_correct, n_scored, loss_sum = 0, 0, 0, 0.0
    term_sums: dict[str, float] = {}
    t0 = time.perf_counter()
    columns = (TextColumn(f"{desc} epoch {epoch + 1}/{epochs}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[stats]}"), TimeRemainingColumn())
    with Progress(*columns, disable=not show, transient=False) as bar:
        task = bar.add_task(desc, total=len(loader), stats="")
        for step, (x, y) in enumerate(loader, 1):
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if use_cuda and x.ndim == 4:  # images; feature rows (tabular) have no channels
                x = x.to(memory_format=torch.channels_last)
            ctx = torch.autocast("cuda", dtype=torch.float16) if use_cuda else nullcontext()
            with ctx:
                out = loss_fn(model, x, y, epoch)
            loss_value = float(out.loss.detach())
            if not math.isfinite(loss_value):
                raise _diverged(f"the loss became {loss_value} at step {step}/{len(loader)}",
                                desc, epoch, epochs, saved)
            opt.zero_grad(set_to_none=True)
            scaler.scale(out.loss).backward()
            scaler.step(opt)
            scaler.update()
            sched.step()
            b = x.shape[0]
            n_seen += b
            loss_sum += loss_value * b
            for k, v in out.terms.items():
                term_sums[k] = term_sums.get(k, 0.0) + v * b
            if out.logits is not None and out.targets is not None and out.targets.dtype == torch.long:
                n_correct += int((out.logits.argmax(1) == out.targets).sum())
                n_scored += len(out.targets)  # a step may score part of its batch (the labelled images)
            rate = n_seen / max(time.perf_counter() - t0, 1e-9)
            acc = f" acc {100.0 * n_correct / n_scored:.1f}%" if n_scored else ""
            bar.update(task, advance=1, stats=f"loss {loss_sum / n_seen:.4f}{acc} {rate:.0f} img/s")
    elapsed = time.perf_counter() - t0
    world = dist_utils.world_size()
    record: dict[str, Any] = {"epoch": epoch + 1, "loss": loss_sum / max(n_seen, 1),
                              "epoch_seconds": elapsed, "images_per_s": world * n_seen / max(elapsed, 1e-9)}
    record.update({k: v / max(n_seen, 1) for k, v in term_sums.items()})
    if n_scored:
        record["train_top1"] = 100.0 * n_correct / n_scored
    return record
