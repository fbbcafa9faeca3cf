"""One seed for every random number generator a stage draws from (Python, NumPy, torch).

Data splits are not seeded here: they belong to the checkpoint's data record
(:meth:`edgekit.checkpoint.Checkpoint.load_data`), so a stage's own seed never moves them.
"""
from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
