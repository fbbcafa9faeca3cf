"""Shared fixtures: small real checkpoints trained once per test session on built-in data."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

torch.set_num_threads(max(1, min(2, torch.get_num_threads())))


@pytest.fixture(scope="session")
def digits_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """compact_cnn trained for 2 epochs on digits at 32x32 (a real, above-chance classifier)."""
    from edgekit.training.trainer import train

    path = tmp_path_factory.mktemp("ckpt") / "compact.pt"
    train("compact_cnn", "digits", path, epochs=2, batch_size=64, progress=False)
    return path


@pytest.fixture(scope="session")
def synthetic_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """compact_cnn (half width) trained 1 epoch on 4-class synthetic shapes at 32x32."""
    from edgekit.training.trainer import train

    path = tmp_path_factory.mktemp("ckpt") / "synthetic.pt"
    train("compact_cnn", "synthetic:classes=4,n=160", path, epochs=1, batch_size=32, progress=False,
          arch_kwargs={"width_mult": 0.5})
    return path
