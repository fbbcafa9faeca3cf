"""Distributed data parallel helpers for runs launched by ``torchrun``.

``torchrun --nproc_per_node N -m edgekit train ...`` sets ``WORLD_SIZE``/``RANK``;
:func:`setup` then joins the process group (NCCL on CUDA, gloo on CPU). Every
helper is a no-op in a single process, so the trainer has one code path.
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import nn


def enabled() -> bool:
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    return dist.get_world_size() if enabled() else 1


def rank() -> int:
    return dist.get_rank() if enabled() else 0


def is_main() -> bool:
    return rank() == 0


def setup(device: torch.device) -> bool:
    """Join the process group when launched by torchrun; True if distributed."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or enabled():
        return enabled()
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend)
    return True


def local_device(device: torch.device) -> torch.device:
    """This rank's device: ``cuda:LOCAL_RANK`` on GPUs, the given device otherwise."""
    if device.type == "cuda" and enabled():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    if not enabled():
        return model
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def barrier() -> None:
    if enabled():
        dist.barrier()


def params_agree(model: nn.Module) -> bool:
    """True when every rank holds identical parameters (checked with an all-gather of checksums)."""
    if not enabled():
        return True
    vec = torch.stack([p.detach().double().sum() for p in model.parameters()]).cpu()
    gathered = [torch.zeros_like(vec) for _ in range(world_size())]
    dist.all_gather(gathered, vec)
    return all(torch.equal(gathered[0], g) for g in gathered[1:])


def cleanup() -> None:
    if enabled():
        dist.destroy_process_group()
