"""Golden-value tests for every distillation loss on small hand-computed cases.

Values were worked out by hand (shown in the comments), not by running the code.
"""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from edgekit.compress.distill import make_step
from edgekit.compress.features import FeatureTap
from edgekit.compress.kd import kd_loss
from edgekit.compress.loss_terms import TERMS, parse_method, register_term, weighted_terms
from edgekit.compress.lsh import LSHProjector, feature_mse, lsh_bce, masked_mean
from edgekit.errors import EdgekitError


def test_lsh_bce_golden() -> None:
    # teacher projections [1, -1] -> bits [1, 0]; student logits [0, 2]
    # BCE(0, 1) = ln 2 = 0.693147; BCE(2, 0) = ln(1 + e^2) = 2.126928; mean = 1.410038
    s = torch.tensor([[0.0, 2.0]])
    t = torch.tensor([[1.0, -1.0]])
    assert lsh_bce(s, t).item() == pytest.approx(1.410038, abs=1e-5)
    # a projection of exactly 0 is bit 0 (strict > 0): BCE(0, 0) = ln 2
    assert lsh_bce(torch.tensor([[0.0]]), torch.tensor([[0.0]])).item() == pytest.approx(math.log(2), abs=1e-6)


def test_lsh_bce_is_per_sample() -> None:
    s = torch.tensor([[0.0, 2.0], [0.0, 0.0]])
    t = torch.tensor([[1.0, -1.0], [5.0, 5.0]])
    assert lsh_bce(s, t).tolist() == pytest.approx([1.410038, 0.693147], abs=1e-5)


def test_feature_mse_golden() -> None:
    # ((1-0)^2 + (2-0)^2) / 2 = 2.5 ; ((3-1)^2 + (3-3)^2) / 2 = 2
    s = torch.tensor([[1.0, 2.0], [3.0, 3.0]])
    t = torch.tensor([[0.0, 0.0], [1.0, 3.0]])
    assert feature_mse(s, t).tolist() == pytest.approx([2.5, 2.0])


def test_masked_mean_golden() -> None:
    per = torch.tensor([1.0, 3.0, 8.0])
    assert masked_mean(per, None).item() == pytest.approx(4.0)
    assert masked_mean(per, torch.tensor([True, True, False])).item() == pytest.approx(2.0)
    assert masked_mean(per, torch.tensor([False, False, False])).item() == 0.0  # nothing correct: no signal


def test_kd_golden() -> None:
    # T=1: p_t = [3/4, 1/4], p_s = [1/2, 1/2]; KL = 3/4 ln(3/2) + 1/4 ln(1/2) = 0.130812
    s = torch.tensor([[0.0, 0.0]])
    t = torch.tensor([[math.log(3.0), 0.0]])
    assert kd_loss(s, t, 1.0).item() == pytest.approx(0.130812, abs=1e-5)
    # T=2: p_t = [sqrt3, 1] / (1 + sqrt3) = [0.633975, 0.366025]; KL = 0.036341; x T^2 = 0.145363
    assert kd_loss(s, t, 2.0).item() == pytest.approx(0.145363, abs=1e-5)


def test_lsh_projector_frozen_and_biased() -> None:
    proj = LSHProjector(dim=2, std=0.5, seed=0)
    assert proj.hash_num == 8  # default 4 x D
    assert list(proj.parameters()) == []  # W and b are buffers: frozen, saved, never optimised
    big = LSHProjector(dim=64, hash_num=256, std=0.5, seed=1)
    assert float(big.weight.std()) == pytest.approx(0.5, rel=0.05)
    proj.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]] * 4))
    feats = torch.tensor([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0], [4.0, 40.0]])
    # lower median (torch.median) of the projections per hash function: 2 and 20
    assert proj.fit_bias(feats, "median")[:2].tolist() == [-2.0, -20.0]
    assert proj.fit_bias(feats, "mean")[:2].tolist() == [-2.5, -25.0]
    assert proj.fit_bias(feats, "0").abs().sum() == 0
    proj.fit_bias(feats, "median")
    # h(f) = W f + b: f = [3, 30] -> [1, 10] (repeated)
    assert proj(torch.tensor([[3.0, 30.0]]))[0, :2].tolist() == [1.0, 10.0]


def test_lsh_projector_loss_golden() -> None:
    proj = LSHProjector(dim=1, hash_num=2, std=1.0)
    proj.weight.copy_(torch.tensor([[1.0], [-1.0]]))
    # teacher f=1 -> projections [1, -1] -> bits [1, 0]; student f=0 -> logits [0, 0]: 2 x ln2 / 2
    assert proj.loss(torch.tensor([[0.0]]), torch.tensor([[1.0]])).item() == pytest.approx(math.log(2), abs=1e-6)
    # student f=2 -> logits [2, -2]: BCE(2,1) = ln(1+e^-2) = 0.126928 for both bits
    assert proj.loss(torch.tensor([[2.0]]), torch.tensor([[1.0]])).item() == pytest.approx(0.126928, abs=1e-5)


def test_parse_method() -> None:
    assert parse_method("lshl2+kd") == ("kd", "lshl2")
    assert parse_method(" KD ") == ("kd",)
    with pytest.raises(EdgekitError, match="at most one feature loss"):
        parse_method("l2+lsh")
    with pytest.raises(EdgekitError, match="cannot be combined"):
        parse_method("none+kd")
    with pytest.raises(EdgekitError, match="lshl2"):
        parse_method("lshl3")


class _Net(nn.Module):
    """(B, 3, 1, 1) -> feature = 3 inputs (identity or fixed map) -> Linear(3, 2)."""

    def __init__(self, w: list[list[float]]) -> None:
        super().__init__()
        self.body = nn.Flatten()
        self.fc = nn.Linear(3, 2, bias=False)
        with torch.no_grad():
            self.fc.weight.copy_(torch.tensor(w))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.body(x))


def test_total_loss_composition_golden() -> None:
    """CE + alpha*KD + beta*(MSE + LSH), feature terms over teacher-correct samples only."""
    from edgekit.compress.distill import _Teacher

    teacher = _Net([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    student = _Net([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])  # logits all 0
    teach = _Teacher(teacher, 1, 1, None)
    s_tap = FeatureTap(student, (1, 3, 1, 1))
    proj = LSHProjector(3, hash_num=1, std=1.0)
    proj.weight.copy_(torch.tensor([[1.0, 0.0, 0.0]]))
    x = torch.tensor([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0]]).reshape(2, 3, 1, 1)
    y = torch.tensor([0, 0])  # teacher logits [2,0] (correct) and [0,2] (wrong)
    packed = torch.stack([y.double(), torch.arange(2).double()], 1)
    step = make_step(weighted_terms(("kd", "lshl2"), {"alpha": 0.5, "beta": 2.0}), teach, s_tap, proj, None,
                     temperature=1.0, correct_only=True, task="classify", device=torch.device("cpu"))
    out = step(student, x, packed, 0)
    # CE with zero logits: ln 2. KD per sample vs teacher [2,0]: p_t = [e^2, 1]/(1+e^2) = [0.880797, 0.119203],
    # KL = sum p ln(2p) = 0.880797 ln 1.761594 + 0.119203 ln 0.238406 = 0.498731 - 0.170918 = 0.327813 (both samples)
    # Student feature = teacher feature = x (both identity bodies): MSE 0. LSH on sample 0: teacher proj 2 -> bit 1,
    # student proj 2 -> BCE(2, 1) = ln(1 + e^-2) = 0.126928; sample 1 masked out (teacher wrong).
    assert out.terms["ce"] == pytest.approx(math.log(2), abs=1e-5)
    assert out.terms["kd"] == pytest.approx(0.327813, abs=1e-5)
    assert out.terms["l2"] == pytest.approx(0.0, abs=1e-7)
    assert out.terms["lsh"] == pytest.approx(0.126928, abs=1e-5)
    assert out.terms["teacher_correct"] == pytest.approx(0.5)
    assert out.loss.item() == pytest.approx(math.log(2) + 0.5 * 0.327813 + 2.0 * 0.126928, abs=1e-5)
    # without the _S mask both samples count: sample 1 teacher proj 0 -> bit 0, student proj 0 -> ln 2
    step_all = make_step(weighted_terms(("lsh",), {"alpha": 0.0, "beta": None}), teach, s_tap, proj, None,
                         temperature=1.0, correct_only=False, task="classify", device=torch.device("cpu"))
    out = step_all(student, x, packed, 0)
    assert out.terms["lsh"] == pytest.approx((0.126928 + math.log(2)) / 2, abs=1e-5)
    assert out.loss.item() == pytest.approx(math.log(2) + (0.126928 + math.log(2)) / 2, abs=1e-5)
    assert "kd" not in out.terms and "l2" not in out.terms


def test_terms_are_registered_with_default_weights() -> None:
    assert set(TERMS) == {"kd", "l2", "lsh", "lshl2"}
    assert [(t.name, w) for t, w in weighted_terms(("kd", "lshl2"), {"alpha": None, "beta": 3.0})] == \
        [("kd", 1.0), ("lshl2", 3.0)]
    assert weighted_terms(("none",), {}) == []
    with pytest.raises(EdgekitError, match="already registered"):
        register_term("kd", TERMS["kd"].fn, weight_option="alpha", default_weight=1.0)


def test_a_registered_term_is_a_method(monkeypatch: pytest.MonkeyPatch) -> None:
    """Adding a term is one registration: parse_method, the step and DistillConfig accept it."""
    from edgekit.compress.distill_config import DistillConfig

    monkeypatch.setitem(TERMS, "zero", TERMS["kd"].__class__("zero", lambda b: (b.student_logits.sum() * 0 + 2.0,
                                                                                  {"zero": 2.0}), "alpha", 0.5))
    assert parse_method("zero+l2") == ("l2", "zero")
    assert DistillConfig(method="l2+zero").method == "l2+zero"
    step = make_step(weighted_terms(("zero",), {"alpha": None}), None, None, None,
                     (torch.zeros(2, 3), torch.zeros(2, 2)), temperature=1.0, correct_only=False, task="classify",
                     device=torch.device("cpu"))
    student = _Net([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    out = step(student, torch.zeros(2, 3, 1, 1), torch.tensor([[0.0, 0.0], [1.0, 1.0]], dtype=torch.float64), 0)
    assert out.terms["zero"] == 2.0 and out.loss.item() == pytest.approx(math.log(2) + 0.5 * 2.0, abs=1e-6)
