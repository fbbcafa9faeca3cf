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


# --- lambda = max(lambda, 1 - lambda): the mWh code's mixup_data (utils.py) -------------------------

def test_fold_lambda_golden_values() -> None:
    from edgekit.training.mix import fold_lambda

    assert fold_lambda(0.3) == pytest.approx(0.7)
    assert fold_lambda(0.8) == 0.8
    assert fold_lambda(0.5) == 0.5
    assert fold_lambda(0.0) == 1.0


def test_interpolate_golden_values() -> None:
    from edgekit.training.mix import interpolate

    x = torch.tensor([[0.0], [10.0]])
    out = interpolate(x, torch.tensor([1, 0]), 0.7)
    assert torch.allclose(out, torch.tensor([[3.0], [7.0]]))  # 0.7*0 + 0.3*10, 0.7*10 + 0.3*0


@pytest.mark.parametrize("mode", ["mixup", "mwh"])
def test_mixup_and_mwh_fold_the_beta_draw(mode: str) -> None:
    """The same draws as Beta(0.5, 0.5) from the mixer's seeded generator, folded to >= 0.5; the
    first (un-permuted) image dominates each mix. The mixup baseline shares the fold (the authors'
    mixup and mWh call one mixup_data), so the two modes differ only in the schedule."""
    import numpy as np

    mixer, ref = Mixer(mode, 0.5, seed=7), np.random.default_rng(7)
    x, y = torch.randn(6, 3, 4, 4), torch.arange(6)
    raw = []
    for _ in range(40):
        xm, ya, yb, lam = mixer.mix(x, y)
        r = float(ref.beta(0.5, 0.5))
        perm = torch.from_numpy(ref.permutation(6))
        raw.append(r)
        assert lam == pytest.approx(max(r, 1 - r))
        assert torch.equal(yb, y[perm]) and torch.equal(ya, y)
        assert torch.allclose(xm, lam * x + (1 - lam) * x[perm])
    assert min(raw) < 0.5  # the fold was exercised, not vacuous


def test_folded_mixup_loss_golden_value() -> None:
    """classification_loss on a mixed batch: lam * CE(y_a) + (1 - lam) * CE(y_b), by hand for
    logits that are the inputs themselves (identity model), lam folded from the seeded draw."""
    import math

    import numpy as np

    from edgekit.training.step import classification_loss

    r = float(np.random.default_rng(3).beta(0.5, 0.5))
    lam = max(r, 1 - r)
    perm = np.random.default_rng(3)
    perm.beta(0.5, 0.5)
    p = perm.permutation(2).tolist()
    x, y = torch.tensor([[2.0, 0.0], [0.0, 2.0]]), torch.tensor([0, 1])
    out = classification_loss(Mixer("mixup", 0.5, seed=3))(torch.nn.Identity(), x, y, 0)

    def ce(logits: list[float], k: int) -> float:
        return -logits[k] + math.log(sum(math.exp(v) for v in logits))

    want = 0.0
    for i in range(2):
        row = [lam * x[i, c].item() + (1 - lam) * x[p[i], c].item() for c in range(2)]
        want += (lam * ce(row, int(y[i])) + (1 - lam) * ce(row, int(y[p[i]]))) / 2
    assert float(out.loss) == pytest.approx(want, rel=1e-6)
    assert out.terms["mixed"] == 1.0 and torch.equal(out.targets, y)  # folded: y_a always dominates


def test_cutmix_keeps_its_unfolded_lambda_and_curl_mixup_does_not_fold() -> None:
    import numpy as np

    cut = Mixer("mwh-cutmix", 1.0, seed=0)
    assert cut.fold is False
    lams = [cut.mix(torch.zeros(4, 1, 16, 16), torch.arange(4))[3] for _ in range(30)]
    assert min(lams) < 0.5  # the box area decides lambda, below one half as often as not
    plain, ref = Mixer("mixup", 1.0, seed=5, fold=False), np.random.default_rng(5)
    draws = []
    for _ in range(20):
        lam = plain.mix(torch.zeros(4, 2), torch.arange(4))[3]
        draws.append(float(ref.beta(1.0, 1.0)))
        ref.permutation(4)
        assert lam == pytest.approx(draws[-1])
    assert min(draws) < 0.5
    assert Mixer("mixup").record() == {"mode": "mixup", "alpha": 0.5, "fold": True, "seed": 0}


# --- the training log: each epoch's fraction of mixed batches follows the schedule ---------------

def test_logged_mixed_fraction_follows_the_mwh_schedule(tmp_path) -> None:
    """A real 20-epoch mWh run: every epoch's ``mixed`` in OUT.metrics.jsonl is the fraction of its
    batches that were mixed: 1 in [0, 12), 1/0 alternating in [12, 18), and in the ramp (p = 1, 0.5)
    exactly the draws of a mixer with the run's seed, batch by batch."""
    import json

    from edgekit.training.trainer import metrics_path, train

    epochs, seed, batches = 20, 4, 8  # 40 images, 20 % validation: 32 training images in batches of 4
    out = tmp_path / "mwh.pt"
    ck = train("compact_cnn", "synthetic:classes=2,n=40", out, epochs=epochs, batch_size=4, seed=seed, mix="mwh",
               input_size=16, arch_kwargs={"width_mult": 0.25}, precise_bn=0, lr_schedule="step", progress=False)
    log = [json.loads(line) for line in metrics_path(out).read_text().splitlines()]
    assert len(log) == epochs
    replay = Mixer("mwh", 0.5, seed=seed)
    want = [sum(replay.should_mix(e, epochs) for _ in range(batches)) / batches for e in range(epochs)]
    got = [r["mixed"] for r in log]
    assert got == pytest.approx(want, abs=1e-9)
    assert got[:12] == [1.0] * 12 and got[12:18] == [1.0, 0.0] * 3 and got[18] == 1.0
    assert 0.0 < got[19] < 1.0 or want[19] in (0.0, 1.0)
    assert ck.provenance["mixer"] == {"mode": "mwh", "alpha": 0.5, "fold": True, "seed": seed}
    assert ck.provenance["lr_schedule"]["milestones"] == [0.5, 0.75]
    # and a plain run logs 0 for every epoch
    plain = train("compact_cnn", "synthetic:classes=2,n=40", tmp_path / "none.pt", epochs=2, batch_size=4,
                  input_size=16, arch_kwargs={"width_mult": 0.25}, precise_bn=0, progress=False)
    assert [json.loads(line)["mixed"] for line in metrics_path(plain.path).read_text().splitlines()] == [0.0, 0.0]
