"""Embedding: a backbone whose output is a feature vector, not a prediction.

What ``edgekit pretrain`` writes (SimCLR, MoCo v2, BYOL; :mod:`edgekit.pretraining`): the
net without its classifier (``head="embedding"``, :mod:`edgekit.models.embedding`). It has
no labels and no training loss of its own; it seeds classifiers (``--weights``) and exports
as a feature extractor, whose parity is the generic one (relative error and the cosine of
each output vector to PyTorch's; there is no top-1 to agree on). Its quality is the k-NN
probe's top-1 (:mod:`edgekit.pretraining.knn`), recorded by pretraining as ``knn_top1``.
Distillation and pruning would compare raw feature vectors (MSE).
"""
from __future__ import annotations

from typing import Any

from .base import Task, register_task


class EmbeddingTask(Task):
    name = "embedding"
    headline = "knn_top1"
    higher_is_better = True
    compare = "mse"
    output_description = "feature vector (embedding; compare by cosine similarity)"

    def accepts_data(self, data_task: str) -> bool:
        """Features come from any images or clips; the labels, if any, are only for probes."""
        return True

    def output_layout(self, width: int, label_range: str | None) -> dict[str, Any] | None:
        """``{"embedding": {"columns": [0, D]}, "similarity": "cosine"}``: the whole output is the feature."""
        return {"embedding": {"columns": [0, width]}, "similarity": "cosine"}

    def output_width(self, extra: dict[str, Any]) -> int | None:
        """The feature's width, recorded by pretraining (``extra["ssl"]["dim"]``)."""
        dim = (extra.get("ssl") or {}).get("dim")
        return int(dim) if dim else None


register_task(EmbeddingTask)
