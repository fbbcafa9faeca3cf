"""``edgekit eval``: score a checkpoint on a data spec's validation split."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..checkpoint import Checkpoint, load_checkpoint
from ..data import DataBundle
from ..device import resolve_device
from ..errors import EdgekitError
from .config import EvalConfig
from ..stage_config import default
from ..tasks import get_task
from ..training.label_distribution import LabelTask
from ..training.metrics import evaluate_model


def evaluate(checkpoint: str | Path | Checkpoint, data: str | DataBundle | None = None, *, split: str = "val",
             batch_size: int = default(EvalConfig, "batch_size"), device: str = default(EvalConfig, "device"),
             flip: bool | None = None) -> dict[str, Any]:
    """Top-1/top-5 (classifiers), MAE/RMSE (regression) or MAE, RMSE, Pearson and epsilon-error
    (label distributions) with the checkpoint's own eval transform.

    A label-distribution model averages its prediction for each image and its horizontal
    flip when its checkpoint says so (``flip_test``, recorded at training) or ``flip=True``.

    ``data`` defaults to the checkpoint's own dataset; either way it is split as the
    checkpoint's training split it (:meth:`~edgekit.checkpoint.Checkpoint.load_data`), so the
    validation images are ones the model never trained on."""
    batch_size = EvalConfig(split=split, batch_size=batch_size, device=device).batch_size
    ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint)
    bundle = data if isinstance(data, DataBundle) else ckpt.load_data(data)
    check_labels(ckpt, bundle)
    dev = resolve_device(device)
    own = get_task(ckpt.task).evaluate_split(ckpt.model.to(dev), bundle, ckpt.eval_transform, split, batch_size, dev)
    if own is not None:
        return own
    loader = bundle.loader(split, ckpt.eval_transform, batch_size)
    if flip is None:
        task = LabelTask.of(ckpt.extra)
        flip = bool(task and task.flip_test)
    res = evaluate_model(ckpt.model.to(dev), loader, ckpt.task, dev, flip=flip)
    return {**res, "flip_test": flip} if get_task(ckpt.task).flip_test else res


def check_labels(ckpt: Checkpoint, bundle: DataBundle) -> None:
    """Refuse to score a classifier on data whose class labels are not the model's.

    Targets are indices into the data's label list, so on another list (other names, another
    count or order) a score would compare the model's classes with foreign ones: a 10-class
    model scored on a one-class folder reads as accuracy but means nothing."""
    if not get_task(ckpt.task).class_labels:
        return
    if not get_task(bundle.task).class_labels:
        raise EdgekitError(f"{bundle.spec} has numeric targets and {ckpt.path or 'the model'} is a classifier")
    same = list(bundle.labels) == list(ckpt.labels) if ckpt.labels else len(bundle.labels) == ckpt.num_outputs
    if not same:
        def show(n: int, labels: list[str]) -> str:
            names = ", ".join(map(str, labels[:6])) + (", ..." if len(labels) > 6 else "")
            return f"{n} class{'es' if n != 1 else ''}" + (f" ({names})" if names else "")

        raise EdgekitError(f"{bundle.spec} has {show(len(bundle.labels), bundle.labels)} and the model "
                           f"{show(ckpt.num_outputs, ckpt.labels)}; evaluation data must have the model's labels")
