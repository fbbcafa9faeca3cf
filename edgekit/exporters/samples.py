"""Real inputs for calibration and parity: images from a data spec through the checkpoint's eval transform.

Calibration (int8 ranges) reads the training split; the parity gate reads the
validation split, so the artifact is judged on images its calibration never saw.
Never random noise: noise exercises none of the activation ranges real images do.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..checkpoint import Checkpoint, load_checkpoint
from ..data import DataBundle, load_data
from ..errors import EdgekitError


def data_spec_for(ckpt: Checkpoint, spec: str | DataBundle | None) -> str | DataBundle:
    """The given spec, else the dataset the checkpoint was trained on (its provenance)."""
    if spec:
        return spec
    found, prov, seen = None, dict(ckpt.provenance or {}), 0
    while not found and seen < 8:  # pruned/distilled children: walk up to the trained ancestor
        found = prov.get("data")
        parent = prov.get("parent_path")
        if found or not parent or not Path(parent).is_file():
            break
        prov, seen = dict(load_checkpoint(parent).provenance or {}), seen + 1
    if not found:
        raise EdgekitError("this checkpoint records no dataset; pass --calib SPEC (e.g. digits or "
                           "imagefolder:PATH) so calibration and the parity gate use real images")
    return str(found)


def real_inputs(ckpt: Checkpoint, spec: str | DataBundle, split: str, n: int,
                seed: int = 0) -> tuple[torch.Tensor, list[Any]]:
    """Up to ``n`` images of ``split`` (seeded pick), preprocessed exactly as in evaluation."""
    bundle = spec if isinstance(spec, DataBundle) else load_data(spec)
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
