"""Image classification: one logit per class label, cross-entropy, top-1/top-5."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from .base import Task, register_task


class ClassifyTask(Task):
    """Targets are class indices; the prediction is the arg-max logit; models are ranked by
    top-1; pruning and distillation compare softmax distributions (KL); export parity adds
    top-1 agreement (and both top-1s against the targets)."""

    name = "classify"
    class_labels = True
    trainable = True
    prunable = True
    optimizable = True
    bench_accuracy = True
    headline = "top1"
    higher_is_better = True
    compare = "kl"
    output_description = "class scores (logits) in labels order"

    def loss(self, *, mixer: Any = None, label_smoothing: float = 0.0, epochs: int = 1,
             label_task: Any = None) -> Callable:
        """Cross-entropy, with the mixer's mixup/CutMix and label smoothing."""
        from ..training.step import classification_loss

        return classification_loss(mixer, label_smoothing, epochs)

    def readout(self, out: torch.Tensor) -> torch.Tensor:
        return out.reshape(len(out), -1).argmax(1)

    def metrics(self, out: torch.Tensor, target: torch.Tensor) -> dict[str, Any]:
        """Top-1/top-5 (%) and mean cross-entropy of logits ``out`` against class indices."""
        from ..training.evaluators import topk_correct

        n = len(out)
        hits = topk_correct(out, target)
        loss = float(nn.functional.cross_entropy(out, target, reduction="sum"))
        return {"top1": 100.0 * hits[1] / n, "top5": 100.0 * hits[5] / n, "loss": loss / n}

    def evaluate(self, model: nn.Module, loader: Any, device: str | torch.device = "cpu",
                 flip: bool = False) -> dict[str, Any]:
        from ..training.evaluators import evaluate_classifier

        return evaluate_classifier(model, loader, device)

    def summary(self, metrics: dict[str, Any]) -> str | None:
        if "val_top1" not in metrics:
            return None
        return f"val top-1 {metrics['val_top1']:.2f}%  top-5 {metrics['val_top5']:.2f}%"

    def parity_numbers(self, ref: Any, out: Any, targets: list[Any] | None = None,
                       label_range: str | None = None) -> dict[str, Any]:
        """Top-1 agreement of the artifact with PyTorch, and, given class-index targets, both top-1s (%)."""
        nums: dict[str, Any] = {}
        if ref.shape[1] <= 1:
            return nums
        a, b = ref.argmax(1), out.argmax(1)
        nums["top1_agreement"] = float((a == b).mean())
        if targets is not None and all(isinstance(t, (int, np.integer)) for t in targets):
            t = np.asarray(targets)
            nums["torch_top1"] = float((a == t).mean() * 100)
            nums["artifact_top1"] = float((b == t).mean() * 100)
        return nums


register_task(ClassifyTask)
