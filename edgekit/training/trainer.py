"""``edgekit train``: train a registry architecture on a data spec into a checkpoint.

Seeded, resumable (``--resume`` continues after a kill from the per-epoch resume
state), DDP-aware under ``torchrun``. The checkpoint is rewritten atomically after
every epoch, so a killed run leaves the last complete epoch on disk.
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DistributedSampler

from ..checkpoint import Checkpoint, load_checkpoint
from ..data import DataBundle, load_data, make_input_spec, train_transform
from ..errors import EdgekitError
from ..fileio import atomic_path, check_writable
from ..registry import count_params, create_model, get_entry
from . import distributed as dist_utils
from .loop import OptimConfig, classification_loss, fit, regression_loss
from .mix import Mixer


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; anything else as given."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise EdgekitError(f"device {device!r} requested but CUDA is not available")
    return torch.device(device)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resume_path(output: str | Path) -> Path:
    """Where the resumable training state lives while a run is unfinished."""
    output = Path(output)
    return output.with_name(output.name + ".resume")


def metrics_path(output: str | Path) -> Path:
    output = Path(output)
    return output.with_name(output.name + ".metrics.jsonl")


def train(arch: str, data: str | DataBundle, output: str | Path, *, epochs: int = 10, batch_size: int = 64,
          optimizer: str = "sgd", lr: float | None = None, weight_decay: float | None = None,
          warmup_epochs: float = 1.0, label_smoothing: float = 0.0, mix: str = "none",
          mix_alpha: float | None = None, input_size: int | None = None, small_input: bool | None = None,
          arch_kwargs: dict[str, Any] | None = None, weights: str | Path | None = None, seed: int = 0,
          workers: int = 0, device: str = "auto", augment: str = "standard", train_fraction: float = 1.0,
          resume: bool = False, force: bool = False, progress: bool = True) -> Checkpoint:
    """Train ``arch`` on ``data`` and write the checkpoint to ``output``; returns it."""
    output = Path(output)
    state_file = resume_path(output)
    if resume:
        if not state_file.is_file():
            raise EdgekitError(f"nothing to resume: {state_file} not found (the run finished or never started)")
    else:
        check_writable(output, force)
        if metrics_path(output).exists():
            metrics_path(output).unlink()
    if epochs < 1 or batch_size < 1:
        raise EdgekitError("epochs and batch size must be positive")
    dev = resolve_device(device)
    distributed = dist_utils.setup(dev)
    dev = dist_utils.local_device(dev)
    seed_everything(seed)

    bundle = data if isinstance(data, DataBundle) else load_data(data, seed=seed)
    bundle = bundle.subset_train(train_fraction, seed)
    entry = get_entry(arch)
    size = input_size or bundle.default_input
    if small_input is None:
        small_input = size <= 64 and entry.default_input >= 128
    kwargs = {"num_classes": len(bundle.labels) if bundle.task == "classify" else 1, **(arch_kwargs or {})}
    if small_input:
        kwargs["small_input"] = True
    spec = make_input_spec(size, crop_ratio=None if size <= 64 else 0.875)
    model = create_model(arch, weights=weights, **kwargs)

    sampler = DistributedSampler(_Len(len(bundle.train)), seed=seed) if distributed else None
    aug = "no_flip" if bundle.spec.startswith("digits") and augment == "standard" else augment
    loader = bundle.loader("train", train_transform(spec, aug), batch_size, shuffle=True, workers=workers,
                           sampler=sampler, drop_last=len(bundle.train) > batch_size)
    from ..data import eval_transform

    val_loader = bundle.loader("val", eval_transform(spec), max(batch_size, 128), workers=workers)
    mixer = Mixer(mix, mix_alpha if mix_alpha is not None else (1.0 if "cutmix" in mix else 0.5), seed) \
        if mix != "none" else None
    loss_fn = classification_loss(mixer, label_smoothing, epochs) if bundle.task == "classify" else regression_loss()
    optim = OptimConfig(optimizer=optimizer, lr=lr, weight_decay=weight_decay, warmup_epochs=warmup_epochs)

    resume_state = None
    if resume:
        saved = torch.load(state_file, map_location="cpu", weights_only=True)
        model.load_state_dict(saved["model"])
        resume_state = saved["fit"]
    # A label-distribution CSV trains here as plain regression on its target (one output, L1).
    task = "classify" if bundle.task == "classify" else "regression"
    ckpt = Checkpoint(arch=arch, arch_kwargs=kwargs, state_dict={}, task=task, labels=bundle.labels,
                      input_spec=spec, data=bundle.record,
                      provenance={"stage": "train", "data": bundle.spec, "seed": seed, "epochs": epochs,
                                  "optimizer": optimizer, "mix": mix, "world_size": dist_utils.world_size(),
                                  "params": count_params(model)})

    def on_epoch_end(epoch: int, record: dict[str, Any], state: dict[str, Any]) -> None:
        ckpt.state_dict = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        ckpt.metrics = {k: v for k, v in record.items() if k.startswith("val_") or k in ("epoch", "loss")}
        ckpt.save(output, force=True)
        with atomic_path(state_file) as tmp:
            torch.save({"model": ckpt.state_dict, "fit": state}, tmp)

    history = fit(model, loader, epochs=epochs, loss_fn=loss_fn, optim=optim, device=dev, val_loader=val_loader,
                  task=task, log_path=str(metrics_path(output)), on_epoch_end=on_epoch_end,
                  resume_state=resume_state, progress=progress)
    agree = dist_utils.params_agree(model)
    if dist_utils.is_main():
        ckpt.metrics["images_per_s"] = float(np.median([h["images_per_s"] for h in history])) if history else None
        if distributed:
            ckpt.metrics["ddp"] = {"world_size": dist_utils.world_size(), "ranks_agree": agree}
        ckpt.save(output, force=True)
        state_file.unlink(missing_ok=True)
    dist_utils.barrier()
    dist_utils.cleanup()
    return load_checkpoint(output)


class _Len:
    """A sized placeholder so DistributedSampler can shard indices without touching images."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n
