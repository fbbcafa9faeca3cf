"""Tasks: what a checkpoint's task name means to every stage (see :mod:`edgekit.tasks.base`).

Importing this package registers the built-in tasks, in this order: classify, regression,
label_distribution, clip_classify, tabular, embedding. A new task is one module here (a
:class:`~edgekit.tasks.base.Task` subclass and its ``register_task``) imported below."""
from __future__ import annotations

from .base import Task, get_task, list_tasks, register_task, unregister_task
from . import classify, regression, label_distribution, clip, tabular, embedding  # noqa: E402,F401  (registration order)

__all__ = ["Task", "get_task", "list_tasks", "register_task", "unregister_task"]
