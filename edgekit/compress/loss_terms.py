"""The distillation loss terms, registered by name: ``kd``, ``l2``, ``lsh``, ``lshl2``.

The student's loss is its task loss (cross-entropy, L1 for a single regression output, or
a label-distribution teacher's own loss, run through :func:`task_step`) plus a weighted sum
of the terms its method names (``lshl2+kd`` = LSHL2 + KD). Logit terms receive what
:func:`edgekit.compress.kd.soft_logits` makes of each output: a label-distribution model's
``log p_hat``, so KD compares distributions.
Each term is registered once with the config option holding its weight (``alpha`` for
logit terms, ``beta`` for feature terms) and that weight's default, so adding a term
(attention transfer, a contrastive loss, ...) is one :func:`register_term` call:
``edgekit distill --method NAME`` and :class:`~edgekit.compress.distill_config.DistillConfig`
accept it from then on.

Feature terms compare the penultimate features and are averaged over the samples the
teacher classifies correctly when ``mask`` is set (the ``_S`` variant of Wang, Ge & Wu,
"Distilling Knowledge by Mimicking Features", TPAMI 2021); at most one feature term per
method. Default weights, measured on digits (see :mod:`edgekit.compress.distill`): KD 1,
feature terms 1 (the paper used 5-7 on large data).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import torch
from torch import nn

from ..errors import EdgekitError
from .kd import kd_loss
from .lsh import LSHProjector, feature_mse, masked_mean

if TYPE_CHECKING:
    from ..training.loop import StepLoss, StepOutput


@dataclass
class TermInputs:
    """One batch as the terms see it; teacher values are None when there is no teacher output."""

    student_logits: torch.Tensor
    teacher_logits: torch.Tensor | None
    student_feat: torch.Tensor | None
    teacher_feat: torch.Tensor | None
    mask: torch.Tensor | None  # samples the feature terms average over (None: all)
    temperature: float
    projector: LSHProjector | None


#: A term maps the batch to (loss, {logged name: value}).
TermFn = Callable[[TermInputs], tuple[torch.Tensor, dict[str, float]]]


@dataclass(frozen=True)
class LossTerm:
    """A registered term: its function, the option holding its weight and that weight's default."""

    name: str
    fn: TermFn
    weight_option: str  # "alpha" (on logits) or "beta" (on features)
    default_weight: float
    features: bool = False  # compares penultimate features (at most one such term per method)
    projector: bool = False  # needs the frozen LSH hyperplanes
    softmax: bool = False  # needs a classification teacher


TERMS: dict[str, LossTerm] = {}


def register_term(name: str, fn: TermFn, *, weight_option: str, default_weight: float, features: bool = False,
                  projector: bool = False, softmax: bool = False) -> LossTerm:
    """Register a distillation loss term under ``name`` (names are unique)."""
    if name in TERMS or name == "none":
        raise EdgekitError(f"distillation loss term {name!r} is already registered")
    if weight_option not in ("alpha", "beta"):
        raise EdgekitError(f"weight_option must be alpha or beta, got {weight_option!r}")
    term = LossTerm(name, fn, weight_option, default_weight, features, projector, softmax)
    TERMS[name] = term
    return term


def _kd(b: TermInputs) -> tuple[torch.Tensor, dict[str, float]]:
    assert b.teacher_logits is not None
    loss = kd_loss(b.student_logits, b.teacher_logits, b.temperature)
    return loss, {"kd": float(loss.detach())}


def _l2(b: TermInputs) -> tuple[torch.Tensor, dict[str, float]]:
    assert b.student_feat is not None and b.teacher_feat is not None
    loss = masked_mean(feature_mse(b.student_feat.float(), b.teacher_feat), b.mask)
    return loss, {"l2": float(loss.detach())}


def _lsh(b: TermInputs) -> tuple[torch.Tensor, dict[str, float]]:
    assert b.student_feat is not None and b.teacher_feat is not None and b.projector is not None
    loss = masked_mean(b.projector.loss(b.student_feat.float(), b.teacher_feat), b.mask)
    return loss, {"lsh": float(loss.detach())}


def _lshl2(b: TermInputs) -> tuple[torch.Tensor, dict[str, float]]:
    """LSH + MSE, unweighted (the masked mean is linear, so this is exactly l2 + lsh)."""
    l2, logged = _l2(b)
    lsh, logged_lsh = _lsh(b)
    return l2 + lsh, {**logged, **logged_lsh}


register_term("kd", _kd, weight_option="alpha", default_weight=1.0, softmax=True)
register_term("l2", _l2, weight_option="beta", default_weight=1.0, features=True)
register_term("lsh", _lsh, weight_option="beta", default_weight=1.0, features=True, projector=True)
register_term("lshl2", _lshl2, weight_option="beta", default_weight=1.0, features=True, projector=True)


def parse_method(method: str) -> tuple[str, ...]:
    """``'lshl2+kd'`` -> ``('kd', 'lshl2')``; at most one feature term; ``none`` stands alone."""
    names = ("none", *TERMS)
    valid = f"use {', '.join(names)} or a '+' combination of terms (lshl2+kd)"
    terms = [p.strip().lower() for p in str(method).split("+")]
    if not any(terms):
        raise EdgekitError(f"empty distillation method; {valid}")
    if not all(terms):  # 'kd+', '+kd', 'kd++': a term left out is a typo, not a default
        raise EdgekitError(f"distillation method {method!r} has an empty term; {valid}")
    parts = tuple(sorted(set(terms)))
    for p in parts:
        if p not in names:
            from ..errors import suggest

            raise EdgekitError(f"{suggest(p, list(names), 'distillation method')}; {valid}")
    if "none" in parts and len(parts) > 1:
        raise EdgekitError("method 'none' (scratch training) cannot be combined with others")
    feats = [p for p in parts if p != "none" and TERMS[p].features]
    if len(feats) > 1:
        raise EdgekitError(f"combine at most one feature loss ({', '.join(n for n, t in TERMS.items() if t.features)})"
                           f" in {method!r}")
    return parts


def weighted_terms(parts: tuple[str, ...], weights: dict[str, float | None]) -> list[tuple[LossTerm, float]]:
    """The method's terms with their weights: ``weights[term.weight_option]``, or the term's default."""
    out = []
    for name in parts:
        if name == "none":
            continue
        term = TERMS[name]
        w = weights.get(term.weight_option)
        out.append((term, term.default_weight if w is None else float(w)))
    return out


def task_step(loss: "StepLoss", model: nn.Module, x: torch.Tensor, y: torch.Tensor,
              epoch: int) -> tuple["StepOutput", torch.Tensor]:
    """Run a task's own training step (e.g. the label-distribution loss, which reads the head's
    logits during the forward pass) and return it with the model output of that one forward,
    so distillation and recovery terms reuse the output instead of running the model twice."""
    seen: list[torch.Tensor] = []
    hook = model.register_forward_hook(lambda _m, _i, out: seen.append(out))
    try:
        result = loss(model, x, y, epoch)
    finally:
        hook.remove()
    if len(seen) != 1:
        raise EdgekitError(f"the task loss ran the model {len(seen)} times in one step; expected once")
    return result, seen[0]
