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


def write_label_csv(root: Path, n: int = 100, size: int = 32, seed: int = 0) -> Path:
    """A ``csv:`` label-distribution set: ``n`` noisy images whose brightness encodes a label in
    0..100, each with a per-image sigma in 1..4 (``path,label,sigma`` rows in ``root/labels.csv``)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    rows = ["path,label,sigma"]
    for i in range(n):
        y, s = float(rng.uniform(0, 100)), float(rng.uniform(1, 4))
        img = np.clip(rng.normal(20 + 2.1 * y, 8, (size, size, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(root / f"{i}.png")
        rows.append(f"{i}.png,{y:.2f},{s:.2f}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root / "labels.csv"


@pytest.fixture(scope="session")
def label_csv() -> object:
    """:func:`write_label_csv`, for tests of the label-distribution task."""
    return write_label_csv


@pytest.fixture(scope="session")
def clip_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A causal TSM over compact_cnn trained 1 epoch on a few built-in gesture clips (32 px, 4 frames)."""
    from edgekit.training.trainer import train

    path = tmp_path_factory.mktemp("clip") / "tsm.pt"
    train("tsm_compact_cnn", "gestures:n=110,frames=8", path, epochs=1, batch_size=16, frames=4, shift="causal",
          precise_bn=2, progress=False)
    return path
