"""Training: the shared fit loop, the ``edgekit train`` trainer, mixing, metrics, DDP.

``edgekit.train`` is bound to :func:`edgekit.training.trainer.train` at the top level.
"""
