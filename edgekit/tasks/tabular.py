"""Tabular classification: a feature-vector classifier (NFL / MLP tabular nets).

Tabular data trains checkpoints of task ``classify`` (with a tabular input spec); the name
``tabular`` is accepted by checkpoints and scored as a classifier, not pruned or optimized."""
from __future__ import annotations

from .base import register_task
from .classify import ClassifyTask


class TabularTask(ClassifyTask):
    name = "tabular"
    trainable = False
    prunable = False
    optimizable = False
    bench_accuracy = False


register_task(TabularTask)
