"""DLDL-v2 heads: a label distribution over a discrete label set, and its expectation.

Gao, Liu, Zhou, Wu & Geng, "Learning Expectation of Label Distribution for Facial Age
and Attractiveness Estimation" (arXiv 2007.01771, 2020), section 3: a Linear layer to
K bins (one per label value ``l_k``), a softmax giving the predicted distribution
``p_hat``, and a parameter-free **expectation layer** ``y_hat = sum_k p_hat_k l_k`` that
turns it into one number. The same paper shows that Ranking-CNN's sequence of binary
"greater than ``l_k``" classifiers implicitly learns a label distribution; the
:class:`RankingHead` exposes that reading with the same outputs.

One output layout for every label-distribution model, in PyTorch and in every exported
artifact: a ``[N, K + 1]`` tensor, columns ``0..K-1`` the distribution over the label set
and column ``K`` the expectation. A model regressing one number (the L1 baseline,
:class:`RegressionHead`) has a ``[N, 1]`` output. In both, the **read-out is the last column**
(:func:`prediction`), so evaluation, parity and benchmarks need no per-loss branches.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import EdgekitError

HEADS = ("dldl", "ranking", "regression")


@dataclass(frozen=True)
class LabelSet:
    """The discrete label set ``lo, lo + step, ..., hi`` (``--label-range lo:hi:step``)."""

    lo: float
    hi: float
    step: float

    @classmethod
    def parse(cls, text: str) -> "LabelSet":
        """``"0:100:1"`` -> LabelSet(0, 100, 1); one-line error on anything else."""
        parts = str(text).split(":")
        try:
            lo, hi, step = (float(p) for p in parts) if len(parts) == 3 else (math.nan,) * 3
        except ValueError:
            lo = hi = step = math.nan
        if not all(math.isfinite(v) for v in (lo, hi, step)):
            raise EdgekitError(f"label range must be lo:hi:step with finite numbers (e.g. 0:100:1), got {text!r}")
        if step <= 0 or hi <= lo:
            raise EdgekitError(f"label range {text!r} needs hi > lo and step > 0")
        k = (hi - lo) / step
        if abs(k - round(k)) > 1e-6 * max(1.0, k) or round(k) + 1 > 100_000:
            raise EdgekitError(f"label range {text!r}: (hi - lo) must be a whole number of steps (at most 100000)")
        return cls(lo, hi, step)

    @property
    def size(self) -> int:
        """K, the number of label values."""
        return int(round((self.hi - self.lo) / self.step)) + 1

    def values(self) -> torch.Tensor:
        """The K label values ``l_k`` as float32."""
        return torch.tensor([self.lo + k * self.step for k in range(self.size)], dtype=torch.float64).float()

    def text(self) -> str:
        """The canonical ``lo:hi:step`` form stored in checkpoints and manifests."""
        return ":".join(f"{v:g}" for v in (self.lo, self.hi, self.step))


class Expectation(nn.Module):
    """The parameter-free expectation layer: ``[N, K]`` distribution -> ``[N]`` ``sum_k p_k l_k``.

    Its gradient with respect to ``p_k`` is ``l_k`` (section 3.2 of the paper), which is how
    the L1 term of the DLDL-v2 loss reaches the distribution."""

    def __init__(self, values: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("values", values.detach().clone().float())

    def forward(self, p: torch.Tensor) -> torch.Tensor:
        return (p * self.values).sum(dim=1)  # not p @ values: coremltools rejects a 1-D matmul operand

    def extra_repr(self) -> str:
        v = self.values
        return f"K={v.numel()}, l=[{float(v[0]):g} .. {float(v[-1]):g}]"


class DLDLHead(nn.Module):
    """Linear to K bins -> softmax -> ``[distribution, expectation]`` (``[N, K + 1]``).

    Children: ``feature`` (an identity tap whose output is the classifier's input: the
    penultimate feature that feature mimicking matches), ``classifier`` (the Linear, bias
    initialised to 0 as in the paper's code) and ``expectation``."""

    def __init__(self, in_features: int, labels: LabelSet) -> None:
        super().__init__()
        self.feature = nn.Identity()
        self.classifier = nn.Linear(in_features, labels.size)
        nn.init.zeros_(self.classifier.bias)
        self.expectation = Expectation(labels.values())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = torch.softmax(self.classifier(self.feature(x)), dim=1)
        return torch.cat([p, self.expectation(p).unsqueeze(1)], dim=1)


class RankingHead(nn.Module):
    """K - 1 binary "label > l_k" classifiers (Ranking-CNN), read as a distribution.

    ``c_k = sigmoid(o_k)`` estimates ``P(y > l_k)`` for ``k = 0..K-2``; the distribution is
    ``p_0 = 1 - c_0``, ``p_k = c_{k-1} - c_k``, ``p_{K-1} = c_{K-2}`` (it sums to 1, and is a
    proper distribution when the ``c_k`` decrease), and the expectation
    ``l_0 + sum_k (l_{k+1} - l_k) c_k`` is ``sum_k p_k l_k``, the ranking read-out. Output
    ``[N, K + 1]`` as :class:`DLDLHead`; the logits the ranking loss needs are ``ranks(x)``."""

    def __init__(self, in_features: int, labels: LabelSet) -> None:
        super().__init__()
        if labels.size < 2:
            raise EdgekitError("the ranking head needs at least 2 label values")
        self.feature = nn.Identity()
        self.classifier = nn.Linear(in_features, labels.size - 1)
        nn.init.zeros_(self.classifier.bias)
        self.expectation = Expectation(labels.values())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = torch.sigmoid(self.classifier(self.feature(x)))
        ones, zeros = torch.ones_like(c[:, :1]), torch.zeros_like(c[:, :1])
        cdf_above = torch.cat([ones, c, zeros], dim=1)  # P(y > l_{k-1}) with P(y > l_{-1}) = 1
        p = cdf_above[:, :-1] - cdf_above[:, 1:]
        return torch.cat([p, self.expectation(p).unsqueeze(1)], dim=1)


class RegressionHead(nn.Module):
    """One number over the label range (the L1 baseline): ``centre + half_span * Linear(x)``.

    The fixed affine read-out puts the Linear's output 0 at the middle of the label range and
    +-1 at its ends, as regression targets are usually normalised: a softmax head starts at
    the range's mean and moves through bounded logits, and without the scaling a one-output
    head would spend a short schedule growing its weights to the labels' scale (Adam moves
    each weight by about the learning rate per step). Output ``[N, 1]``."""

    def __init__(self, in_features: int, labels: LabelSet) -> None:
        super().__init__()
        self.feature = nn.Identity()
        self.classifier = nn.Linear(in_features, 1)
        nn.init.zeros_(self.classifier.bias)
        self.register_buffer("centre", torch.tensor((labels.lo + labels.hi) / 2, dtype=torch.float32))
        self.register_buffer("half_span", torch.tensor((labels.hi - labels.lo) / 2, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.centre + self.half_span * self.classifier(self.feature(x))


_HEAD_CLASSES = {"dldl": DLDLHead, "ranking": RankingHead, "regression": RegressionHead}


def head_width(kind: str, labels: LabelSet) -> int:
    """The output width of a ``kind`` head over ``labels``: K + 1, or 1 for ``regression``."""
    return 1 if kind == "regression" else labels.size + 1


def add_dldl_head(model: nn.Module, label_range: str, kind: str = "dldl") -> nn.Module:
    """Replace ``model``'s classifier Linear by a :class:`DLDLHead`, :class:`RankingHead` or
    :class:`RegressionHead` over ``label_range``; the layout's classifier and feature become the
    head's children."""
    from .connector import classifier_linear, replace_head

    if kind not in HEADS:
        raise EdgekitError(f"label-distribution head must be one of {', '.join(HEADS)}, got {kind!r}")
    labels = LabelSet.parse(label_range)
    name, fc = classifier_linear(model, f"head={kind!r}")
    head = _HEAD_CLASSES[kind](fc.in_features, labels)
    return replace_head(model, name, head, "feature")


def head_of(model: nn.Module) -> nn.Module | None:
    """The model's label head (distribution, ranking or regression), if it has one."""
    return next((m for m in model.modules() if isinstance(m, tuple(_HEAD_CLASSES.values()))), None)


def prediction(out: torch.Tensor) -> torch.Tensor:
    """The predicted label of each sample: the last output column (the expectation, or the one
    regressed number of a single-output model)."""
    return out.reshape(len(out), -1)[:, -1]


def distribution(out: torch.Tensor) -> torch.Tensor | None:
    """The predicted distribution ``[N, K]`` of a ``[N, K + 1]`` output (``None`` for one column)."""
    out = out.reshape(len(out), -1)
    return out[:, :-1] if out.shape[1] > 1 else None


def log_distribution(out: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """``log p_hat`` of a label-distribution output: what knowledge distillation and CURL treat
    as the model's logits (``softmax(log p_hat / T)`` is the temperature-scaled distribution).
    Probabilities are clamped at ``eps`` (a ranking head's may be slightly negative)."""
    p = distribution(out)
    if p is None:
        raise EdgekitError("this model regresses one number; it has no label distribution")
    return p.clamp_min(eps).log()
