"""Clip classification: a video model classifying clips of frames (TSN/TSM), and, through the
same task, its streaming form that runs one frame per call with its state fed back."""
from __future__ import annotations

from .base import register_task
from .classify import ClassifyTask


class ClipClassifyTask(ClassifyTask):
    """A classifier whose samples are clips; trained by ``edgekit train`` from clip data
    (not offered as ``--task``), pruned and distilled as a classifier; not optimized."""

    name = "clip_classify"
    clips = True
    trainable = False
    optimizable = False


register_task(ClipClassifyTask)
