"""``edgekit eval``: score a checkpoint on a data spec's validation split."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .checkpoint import Checkpoint, load_checkpoint
from .data import DataBundle
from .device import resolve_device
from .errors import EdgekitError
from .numbers import positive_int
from .tasks import get_task
from .training.label_distribution import LabelTask
from .training.metrics import evaluate_model


def evaluate(checkpoint: str | Path | Checkpoint, data: str | DataBundle | None = None, *, split: str = "val",
             batch_size: int = 128, device: str = "auto", flip: bool | None = None) -> dict[str, Any]:
    """Top-1/top-5 (classifiers), MAE/RMSE (regression) or MAE, RMSE, Pearson and epsilon-error
    (label distributions) with the checkpoint's own eval transform.

    A label-distribution model averages its prediction for each image and its horizontal
    flip when its checkpoint says so (``flip_test``, recorded at training) or ``flip=True``.

    ``data`` defaults to the checkpoint's own dataset; either way it is split as the
    checkpoint's training split it (:meth:`~edgekit.checkpoint.Checkpoint.load_data`), so the
    validation images are ones the model never trained on."""
    batch_size = positive_int("batch_size", batch_size)
    if split not in ("val", "train"):
        raise EdgekitError(f"split must be 'val' or 'train', got {split!r}")
    ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint)
    bundle = data if isinstance(data, DataBundle) else ckpt.load_data(data)
    dev = resolve_device(device)
    loader = bundle.loader(split, ckpt.eval_transform, batch_size)
    if flip is None:
        task = LabelTask.of(ckpt.extra)
        flip = bool(task and task.flip_test)
    res = evaluate_model(ckpt.model.to(dev), loader, ckpt.task, dev, flip=flip)
    return {**res, "flip_test": flip} if get_task(ckpt.task).flip_test else res
