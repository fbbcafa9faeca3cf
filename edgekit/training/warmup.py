"""Warm-up with the pretrained part frozen: S3L's step before fine-tuning a small-architecture backbone.

S3L (Cao & Wu, arXiv 2103.13559; ``main_freeze.py`` of their code) pretrains a ResNet without
its last stage; before fine-tuning, the full net is built, the missing stage and the
classifier start freshly initialised, and those alone are trained for a few epochs with
everything else frozen, so that the fresh layers do not tear up the pretrained features
with large early gradients. Then everything is fine-tuned.

``edgekit train --weights ssl.ckpt --warmup-frozen N`` does that: the parameters the weights
file did not provide (missing or of another shape) train for ``N`` epochs, the rest frozen
(their BatchNorm statistics still follow the data, as in the authors' code); the run's own
``--epochs`` follow with everything trainable. The authors use a constant lr 0.1 for the
warm-up; here the run's optimizer and peak lr, on its own cosine schedule over the N epochs.
"""
from __future__ import annotations

from typing import Any

from torch import nn

from ..errors import EdgekitError
from .loop import fit


def fresh_parameters(model: nn.Module, report: dict[str, list[str]]) -> list[str]:
    """Names of ``model``'s parameters that a :func:`~edgekit.registry.load_weights` ``report``
    says the weights did not provide (missing, or skipped for another shape)."""
    skipped = set(report.get("missing", [])) | set(report.get("mismatched", []))
    return [n for n, _ in model.named_parameters() if n in skipped]


def warmup_frozen(model: nn.Module, fresh: list[str], epochs: int, **fit_options: Any) -> dict[str, Any]:
    """Train only the ``fresh`` parameters of ``model`` for ``epochs`` (``fit_options`` as for
    :func:`~edgekit.training.loop.fit`), then make every parameter trainable again. Returns
    what a checkpoint records: the epochs, the trained top-level modules and the last epoch's numbers."""
    if not fresh:
        raise EdgekitError("--warmup-frozen trains the layers the --weights file lacks, and it provides every "
                           "layer of this model; leave --warmup-frozen out")
    frozen = [p for n, p in model.named_parameters() if n not in set(fresh) and p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    try:
        history = fit(model, epochs=epochs, desc="warm-up (pretrained layers frozen)", **fit_options)
    finally:
        for p in frozen:
            p.requires_grad_(True)
    last = history[-1] if history else {}
    return {"epochs": epochs, "trained": sorted({name.split(".")[0] for name in fresh}),
            **{k: v for k, v in last.items() if k.startswith("val_") or k == "loss"}}
