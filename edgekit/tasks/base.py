"""The task protocol and its registry: what a checkpoint's ``task`` name means to every stage.

A checkpoint (and a data bundle) stores its task as a name (``"classify"``, ...); every stage
turns that name into a :class:`Task` with :func:`get_task` and asks the object, never the
name: its training loss, its metrics and headline metric, its readout (output -> prediction),
the numbers export parity compares and their thresholds, the output layout a manifest
records, what pruning and distillation compare, the dtype of its targets, whether its
targets are class labels (stratified splits, top-k), and which stages support it. Adding a
task is one module defining a subclass plus one :func:`register_task` call.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import torch
from torch import nn

from ..errors import EdgekitError

if TYPE_CHECKING:
    from torch.utils.data import DataLoader

    from ..training.label_distribution import LabelTask
    from ..training.mix import Mixer


#: the parity gate's limits per precision for the tasks that keep the defaults (see
#: :mod:`edgekit.exporters.parity`, which re-exports them as ``THRESHOLDS``)
PARITY_THRESHOLDS: dict[str, dict[str, float]] = {
    "fp32": {"max_rel_err": 1e-3, "min_cosine": 0.9999, "min_top1_agreement": 0.99},
    "fp16": {"max_rel_err": 3e-2, "min_cosine": 0.999, "min_top1_agreement": 0.97},
    "int8": {"min_cosine": 0.95, "min_top1_agreement": 0.90},
}


def cosines(ref: np.ndarray, out: np.ndarray) -> np.ndarray:
    """The cosine between each row of ``ref`` and of ``out`` (1 where a row is all zeros), for parity."""
    denom = np.linalg.norm(ref, axis=1) * np.linalg.norm(out, axis=1)
    return np.where(denom > 0, (ref * out).sum(1) / np.maximum(denom, 1e-30), 1.0)


class Task:
    """Base class of a task; subclasses set ``name`` and override what differs.

    The defaults describe a model whose targets are numbers (float tensors) and whose
    metrics come from :meth:`metrics` over all validation outputs."""

    #: the name checkpoints, data bundles and manifests store
    name: str = ""
    #: targets are class indices: loaders keep them as ints, splits are stratified, the
    #: model has one output per label, metrics are top-k
    class_labels: bool = False
    #: samples are clips of frames (video models; the streaming form runs one frame per call)
    clips: bool = False
    #: ``edgekit train --task`` offers it
    trainable: bool = False
    #: ``edgekit prune`` (and its recovery) supports it
    prunable: bool = False
    #: ``edgekit optimize`` (chooses candidates by top-1) supports it
    optimizable: bool = False
    #: ``edgekit bench --data`` scores its accuracy
    bench_accuracy: bool = False
    #: its metrics may average each image with its mirror, and report whether they did (``flip_test``)
    flip_test: bool = False
    #: key in a checkpoint's ``extra`` where the task's own settings are recorded (None: it has none)
    settings_key: str | None = None
    #: the metric that ranks models of this task, and whether higher is better
    headline: str = "mae"
    higher_is_better: bool = False
    #: what pruning (CURL) and distillation compare between two models' outputs:
    #: ``"kl"`` (KL of softmax(:meth:`soft_logits`)) or ``"mse"`` (the raw outputs)
    compare: str = "mse"
    #: what the output holds, in words (a Core ML model's output description)
    output_description: str = "model output"
    #: its state dict is a backbone that seeds other models (``--weights``): every tensor of it
    #: must fit the model it seeds, or the backbone would be loaded in part without a word
    backbone_only: bool = False
    #: names of the data-bundle tasks a model of this task can be trained or scored on
    data_tasks: tuple[str, ...] = ()

    # -- data -------------------------------------------------------------------------------------
    def accepts_data(self, data_task: str) -> bool:
        """Whether a data bundle of task ``data_task`` holds targets this model can be scored on."""
        return data_task in (self.data_tasks or (self.name,))

    def target_transform(self) -> Callable[[Any], Any] | None:
        """What a loader applies to each target: None keeps class indices as they are (ints,
        collated to int64); numeric targets become float32 tensors."""
        if self.class_labels:
            return None
        return _float_target

    def model_task(self, label_task: "LabelTask | None") -> str:
        """The task name of a model trained on data of this task (``label_task``: the
        label-distribution settings the run chose, if any)."""
        return self.name

    def settings(self, extra: dict[str, Any]) -> "LabelTask | None":
        """The task's own settings recorded in a checkpoint's ``extra`` (None when it has none)."""
        return None

    def record(self, extra: dict[str, Any]) -> dict[str, Any]:
        """The raw settings record of :meth:`settings` ({} when the task has none), for manifests."""
        return dict(extra.get(self.settings_key) or {}) if self.settings_key else {}

    # -- training ---------------------------------------------------------------------------------
    def loss(self, *, mixer: "Mixer | None" = None, label_smoothing: float = 0.0, epochs: int = 1,
             label_task: "LabelTask | None" = None) -> Callable:
        """The training step loss (a ``StepLoss`` for :func:`edgekit.training.loop.fit`)."""
        raise EdgekitError(f"task {self.name!r} has no training loss")

    # -- evaluation -------------------------------------------------------------------------------
    def readout(self, out: torch.Tensor) -> torch.Tensor:
        """The prediction of each sample from the model's output (a number: the last column)."""
        return out.reshape(len(out), -1)[:, -1]

    def metrics(self, out: torch.Tensor, target: torch.Tensor) -> dict[str, Any]:
        """Metrics of all outputs ``out`` against ``target`` (used by the default :meth:`evaluate`)."""
        raise EdgekitError(f"task {self.name!r} defines no metrics")

    @torch.no_grad()
    def evaluate(self, model: nn.Module, loader: "DataLoader", device: str | torch.device = "cpu",
                 flip: bool = False) -> dict[str, Any]:
        """:meth:`metrics` over every batch of ``loader`` (``{"n": 0}`` when it is empty)."""
        model.eval()
        outs, ys = [], []
        for x, y in loader:
            outs.append(model(x.to(device)).cpu())
            ys.append(torch.as_tensor(y).cpu())
        if not outs:
            return {"n": 0}
        return {"n": sum(len(o) for o in outs), **self.metrics(torch.cat(outs), torch.cat(ys))}

    def evaluate_split(self, model: nn.Module, bundle: Any, transform: Callable, split: str, batch_size: int,
                       device: str | torch.device = "cpu") -> dict[str, Any] | None:
        """Metrics that need more of the data than the scored split (a k-NN probe's reference
        bank), or None: ``edgekit eval`` then runs :meth:`evaluate` over the split alone."""
        return None

    def summary(self, metrics: dict[str, Any]) -> str | None:
        """One line of a checkpoint's headline numbers for reports (None when it has none)."""
        value = metrics.get(f"val_{self.headline}", metrics.get(self.headline))
        return None if value is None else f"{self.headline} {value:.4g}"

    # -- compression ------------------------------------------------------------------------------
    def soft_logits(self, label_task: "LabelTask | None" = None) -> Callable[[torch.Tensor], torch.Tensor]:
        """What knowledge distillation and CURL treat as the model's logits: its output as it is."""
        return _identity

    # -- export -----------------------------------------------------------------------------------
    def parity_numbers(self, ref: Any, out: Any, targets: list[Any] | None = None,
                       label_range: str | None = None) -> dict[str, Any]:
        """Task-specific numbers export parity adds to the generic ones (max abs error, cosine)."""
        return {}

    def parity_thresholds(self) -> dict[str, dict[str, float]]:
        """The parity gate's limits per precision."""
        return PARITY_THRESHOLDS

    def output_layout(self, width: int, label_range: str | None) -> dict[str, Any] | None:
        """Where the output keeps its parts, for the manifest (None: one plain tensor)."""
        return None

    def output_width(self, extra: dict[str, Any]) -> int | None:
        """The model's output width when the task records it itself in a checkpoint's ``extra``
        (None: the classes or the head say it)."""
        return None

    def __repr__(self) -> str:
        return f"<task {self.name}>"


def _identity(out: torch.Tensor) -> torch.Tensor:
    return out


def _float_target(t: Any) -> torch.Tensor:
    return torch.as_tensor(t, dtype=torch.float32)


_TASKS: dict[str, Task] = {}


def register_task(task: Task | type[Task]) -> Task:
    """Register ``task`` (an instance, or a class instantiated without arguments) under its
    ``name``; usable as a class decorator. Re-registering a name replaces the entry."""
    obj = task() if isinstance(task, type) else task
    if not obj.name or not isinstance(obj.name, str):
        raise EdgekitError(f"a task needs a name, got {obj.name!r}")
    _TASKS[obj.name] = obj
    return task  # type: ignore[return-value]


def get_task(name: "str | Task") -> Task:
    """The registered task called ``name`` (a task object is returned as it is); an unknown
    name is one clear line naming the known ones."""
    if isinstance(name, Task):
        return name
    try:
        return _TASKS[name]
    except (KeyError, TypeError):
        raise EdgekitError(f"unknown task {name!r}; expected one of {', '.join(_TASKS)}") from None


def list_tasks(**where: bool) -> tuple[str, ...]:
    """Names of the registered tasks in registration order, optionally only those whose
    attributes match (``list_tasks(trainable=True)``)."""
    return tuple(n for n, t in _TASKS.items() if all(getattr(t, k) == v for k, v in where.items()))


def unregister_task(name: str) -> None:
    """Remove ``name`` from the registry (tests registering a toy task clean up with this)."""
    _TASKS.pop(name, None)
