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

from .base import Task, get_task, register_task

#: the k-NN probe's neighbours and temperature (Wu et al. 2018's weighted vote; see edgekit.pretraining.knn)
KNN_K = 20
KNN_T = 0.1


class EmbeddingTask(Task):
    name = "embedding"
    headline = "knn_top1"
    higher_is_better = True
    compare = "mse"
    backbone_only = True
    output_description = "feature vector (embedding; compare by cosine similarity)"

    def accepts_data(self, data_task: str) -> bool:
        """Features come from any images or clips; the labels, if any, are only for probes."""
        return True

    def evaluate_split(self, model: Any, bundle: Any, transform: Any, split: str, batch_size: int,
                       device: Any = "cpu") -> dict[str, Any] | None:
        """The k-NN probe (k 20, T 0.1, as pretraining runs it): ``split``'s images classified by
        their nearest training images; the training split itself is scored leave-one-out."""
        from ..errors import EdgekitError
        from ..pretraining.knn import features, knn_predict
        from ..pretraining.views import FrameOrImage

        if not bundle.labels or not get_task(bundle.task).class_labels:
            raise EdgekitError(f"an embedding is scored by a k-NN probe over class labels; {bundle.spec} has none")
        loader = bundle.loader(split, FrameOrImage(transform), batch_size)
        bank_loader = bundle.loader("train", FrameOrImage(transform), batch_size)
        query, labels = features(model, loader, device)
        bank, bank_labels = features(model, bank_loader, device) if split != "train" else (query, labels)
        pred = knn_predict(bank, bank_labels, query, len(bundle.labels), KNN_K, KNN_T, exclude_self=split == "train")
        return {"n": len(labels), "knn_top1": 100.0 * float((pred == labels).float().mean()), "knn_k": KNN_K}

    def output_layout(self, width: int, label_range: str | None) -> dict[str, Any] | None:
        """``{"embedding": {"columns": [0, D]}, "similarity": "cosine"}``: the whole output is the feature."""
        return {"embedding": {"columns": [0, width]}, "similarity": "cosine"}

    def output_width(self, extra: dict[str, Any]) -> int | None:
        """The feature's width, recorded by pretraining (``extra["ssl"]["dim"]``)."""
        dim = (extra.get("ssl") or {}).get("dim")
        return int(dim) if dim else None


register_task(EmbeddingTask)
