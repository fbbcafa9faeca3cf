"""Real inputs for calibration and parity: images from a data spec through the checkpoint's eval transform.

Calibration (int8 ranges) reads the training split; the parity gate reads the
validation split, so the artifact is judged on images its calibration never saw.
Never random noise: noise exercises none of the activation ranges real images do.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..checkpoint import Checkpoint
from ..data import DataBundle
from ..errors import EdgekitError


def checkpoint_data(ckpt: Checkpoint, spec: str | DataBundle | None) -> DataBundle:
    """The data for calibration and parity: ``spec`` (or the checkpoint's own dataset), split as
    the checkpoint's training split it, so the gate only sees images the model never trained on."""
    return spec if isinstance(spec, DataBundle) else ckpt.load_data(spec)


def real_inputs(ckpt: Checkpoint, spec: str | DataBundle | None, split: str, n: int,
                seed: int = 0) -> tuple[torch.Tensor, list[Any]]:
    """Up to ``n`` images of ``split`` (seeded pick), preprocessed exactly as in evaluation."""
    bundle = checkpoint_data(ckpt, spec)
    ds = bundle.train if split == "train" else bundle.val
    if len(ds) == 0:
        raise EdgekitError(f"the {split} split of {bundle.spec!r} is empty")
    idx = np.random.default_rng(seed).permutation(len(ds))[: max(1, n)]
    tf = ckpt.eval_transform
    xs, ys = [], []
    for i in sorted(int(j) for j in idx):
        img, target = ds[i]
        xs.append(tf(img))
        ys.append(target)
    x = torch.stack(xs).float()
    want = list(ckpt.input_spec.get("shape") or x.shape[1:])
    if list(x.shape[1:]) != want:
        raise EdgekitError(f"data {bundle.spec!r} gives inputs {list(x.shape[1:])}, the checkpoint expects {want}")
    return x, ys
