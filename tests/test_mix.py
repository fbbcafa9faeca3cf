"""Mixup / CutMix and the mixup-without-hesitation schedule (docs/methods.md section 3)."""
from __future__ import annotations

import pytest
import torch

from edgekit.training.mix import Mixer, mwh_probability


def test_mwh_boundaries_at_100_epochs() -> None:
    assert [mwh_probability(e, 100) for e in (0, 30, 59)] == [1.0, 1.0, 1.0]
    # [60, 90): even epochs mix, odd epochs do not
    assert [mwh_probability(e, 100) for e in (60, 61, 88, 89)] == [1.0, 0.0, 1.0, 0.0]
    # [90, 100): linear ramp (E - epoch) / (E - 90), from 1.0 down to 0.1
    assert mwh_probability(90, 100) == pytest.approx(1.0)
    assert mwh_probability(95, 100) == pytest.approx(0.5)
    assert mwh_probability(99, 100) == pytest.approx(0.1)


def test_mwh_scales_to_other_lengths() -> None:
    probs = [mwh_probability(e, 10) for e in range(10)]
    assert probs[:6] == [1.0] * 6
    assert probs[6:9] == [1.0, 0.0, 1.0]
    assert probs[9] == pytest.approx(1.0)
    with pytest.raises(ValueError):
        mwh_probability(10, 10)


def test_mwh_mixer_draws_follow_the_ramp() -> None:
    mixer = Mixer("mwh", 0.5, seed=0)
    draws = [mixer.should_mix(95, 100) for _ in range(4000)]
    assert 0.45 < sum(draws) / len(draws) < 0.55
    assert not any(mixer.should_mix(61, 100) for _ in range(50))
    assert all(mixer.should_mix(10, 100) for _ in range(50))


def test_mixup_is_a_convex_combination() -> None:
    x = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 1, 2, 2).clone()
    y = torch.arange(4)
    xm, ya, yb, lam = Mixer("mixup", 1.0, seed=1).mix(x, y)
    perm = yb  # labels are their indices here
    assert torch.allclose(xm, lam * x + (1 - lam) * x[perm])
    assert torch.equal(ya, y) and 0 <= lam <= 1


def test_cutmix_lambda_matches_pasted_area() -> None:
    x = torch.zeros(8, 1, 16, 16)
    x[:4] = 1.0  # half the batch is ones
    y = torch.arange(8)
    xm, ya, yb, lam = Mixer("cutmix", 1.0, seed=3).mix(x, y)
    for i in range(8):
        if x[yb[i]].mean() != x[i].mean():
            changed = (xm[i] != x[i]).float().mean().item()
            assert changed == pytest.approx(1 - lam, abs=1e-6)
    with pytest.raises(ValueError):
        Mixer("blend")
