"""Training: the shared fit loop, the ``edgekit train`` trainer, mixing, metrics, DDP.

``edgekit.train(...)`` is this package called as a function (it forwards to
:func:`edgekit.train.trainer.train`), so the name works whatever was imported first.
"""
from __future__ import annotations

from ..stage_package import make_callable

make_callable(__name__, "edgekit.train.trainer", "train")
