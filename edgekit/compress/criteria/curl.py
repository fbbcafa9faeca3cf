"""CURL's criterion: KL(masked || original) per unit, exact (:mod:`edgekit.compress.curl`) or its
Fisher estimate (:mod:`edgekit.compress.fisher`), with the options it owns.

``rank`` (how selection ranks the KLs), ``scoring`` (exact or Fisher), ``exact_precision`` (the
exact passes' arithmetic) and the default of ``steps`` (re-scored steps for Fisher scoring) are
CURL's; every other criterion ranks its raw scores in one step unless told otherwise.
"""
from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, Callable

from ...errors import EdgekitError
from .registry import criterion_names, register_criterion
from .base import Criterion, Needs, Proxy

if TYPE_CHECKING:
    import torch
    from torch import nn

    from ...training.label_distribution import LabelTask
    from ..units import UnitGraph

#: CURL rankings: KL per MAC saved, the raw KL (as in the paper), or the KL over its group's mean.
RANKS = ("kl-per-mac", "kl", "kl-norm")
#: How CURL's KL is computed: one masked pass per unit, or its Fisher (second-order) estimate.
SCORINGS = ("exact", "fisher")
#: Re-scored steps when ``steps`` is not given, for Fisher-scored CURL to a MACs or parameter target
#: (measured, benchmarks/fisher_scoring.md: right after pruning to 50 % MACs, 3 steps put small-input
#: resnet18 6.4 points and mobilenet_v2 23 points above one-step exact CURL, compact_cnn 1.7 below;
#: prune_curves.md: 81 against 65 at 25 % MACs on resnet18). One step otherwise: a latency target
#: is met in one measured step, and the exact KL costs a pass per unit at every step.
DEFAULT_FISHER_STEPS = 3
#: Arithmetic of exact KL scoring's masked passes: bfloat16 where the CPU computes it natively
#: (``auto``), or as asked. Measured on a 2-core AVX-512-BF16 CPU (benchmarks/exact_precision.md):
#: bf16 autocast scored compact_cnn 2.9x and resnet18 1.4x faster than float32, unit ranks
#: agreeing at Spearman 0.9999 and 0.993, and pruning with either set of scores equally accurate
#: (mobilenet_v2: 1.2x, Spearman 0.986).
EXACT_PRECISIONS = ("auto", "fp32", "bf16")


@register_criterion
class Curl(Criterion):
    """CURL (Luo & Wu, CVPR 2020): a unit's importance is the KL of the model with that unit masked
    from the original model, on the proxy images (no labels). ``scoring="fisher"`` estimates it from
    mask gradients (seeded Monte-Carlo draws for many-class models)."""

    name = "curl"
    summary = "CURL's KL of the masked model from the original, label-free; --scoring exact or fisher"
    options = {"rank": RANKS, "scoring": SCORINGS, "exact_precision": EXACT_PRECISIONS}
    defaults = {"rank": "kl-per-mac", "scoring": "fisher", "exact_precision": "auto"}

    @property
    def fisher(self) -> bool:
        return self.settings["scoring"] == "fisher"

    @property
    def needs(self) -> Needs:  # type: ignore[override]
        return Needs(gradients=self.fisher, distribution=True)

    @property
    def seeded(self) -> bool:
        return self.fisher  # Fisher's Monte-Carlo draws of y

    def precision_on(self, device: Any) -> str | None:
        return None if self.fisher else exact_precision_on(self.settings["exact_precision"], device)

    def default_steps(self, target: str) -> int:
        latency = target.strip().lower().startswith("latency")
        return DEFAULT_FISHER_STEPS if self.fisher and not latency else 1

    def check(self, label_task: LabelTask | None) -> None:
        curl_readout(label_task)  # a one-output model has no distribution to compare

    def score(self, model: nn.Module, graph: UnitGraph, proxy: Proxy) -> dict[int, torch.Tensor]:
        """The KLs on ``proxy.device`` (the model is moved there and back to the CPU)."""
        import torch

        from ..curl import kl_scores
        from ..fisher import fisher_scores
        dev = torch.device(proxy.device) if proxy.device is not None else torch.device("cpu")
        readout = curl_readout(proxy.label_task)
        x = proxy.images
        model.to(dev)
        with _float32(dev):
            try:
                if self.fisher:
                    return fisher_scores(model, graph, x, progress=proxy.progress, readout=readout, seed=proxy.seed,
                                         device=dev)
                return kl_scores(model, graph, x.to(dev), progress=proxy.progress, readout=readout,
                                 budget=activation_budget(dev), precision=self.precision_on(dev))
            finally:
                model.cpu()
                if dev.type == "cuda":  # hand the mask batches' cached blocks back to other processes on the GPU
                    torch.cuda.empty_cache()


def exact_precision_on(choice: str, device: torch.device) -> str:
    """``auto`` -> ``bf16`` on a CPU that computes bfloat16 natively, else ``fp32``; other choices as given."""
    from ...device import native_bf16

    if choice == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    return choice


@contextlib.contextmanager
def _float32(device: torch.device) -> Any:
    """True float32 on a CUDA device while scoring: TF32's ~1e-3 rounding of convolutions and matmuls
    swamps KLs of 1e-6 and below, the scores of most units of a trained network."""
    if device.type != "cuda":
        yield
        return
    import torch

    old = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        with torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old


def activation_budget(device: torch.device) -> int:
    """Floats one batch of masked copies may hold: a fixed, cache-sized 32 MB on the CPU
    (:data:`~edgekit.compress.curl.ACTIVATION_BUDGET`), a quarter of the free memory on a CUDA
    device (so a GPU scores many more masks per pass)."""
    from ..curl import ACTIVATION_BUDGET

    if device.type == "cuda":
        import torch

        free, _ = torch.cuda.mem_get_info(device)
        return max(ACTIVATION_BUDGET, free // 4 // 4)
    return ACTIVATION_BUDGET


def curl_readout(label_task: LabelTask | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
    """What CURL's KL compares, as logits: a classifier's output, a label-distribution model's
    ``log p_hat``. A one-output (L1) model has no distribution: a one-line error naming the baselines."""
    from ..kd import soft_logits

    try:
        return soft_logits("label_distribution" if label_task is not None else "classify", label_task)
    except EdgekitError as exc:
        raise EdgekitError(f"CURL scores units by the KL of the model's output distribution, and {exc}; "
                           f"use a baseline: --method {', '.join(criterion_names(lacking='distribution'))}") from None
