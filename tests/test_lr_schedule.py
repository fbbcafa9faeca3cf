"""The fit engine's learning-rate schedules: warm-up + cosine, and the mWh authors' step schedule
(lr / 10 at fractions of the epochs; easy_mwh.py divides at epochs 50 and 75 of 100)."""
from __future__ import annotations

import math

import pytest
import torch

from edgekit.errors import EdgekitError
from edgekit.training.config import TrainConfig
from edgekit.training.loop import OptimConfig, build_scheduler


def _lrs(cfg: OptimConfig, epochs: int, steps_per_epoch: int) -> list[float]:
    """The learning rate of every training step, as fit steps the scheduler (once per batch)."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.resolved_lr())
    sched = build_scheduler(opt, cfg, epochs, steps_per_epoch)
    out = []
    for _ in range(epochs * steps_per_epoch):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_step_schedule_golden_values() -> None:
    """4 epochs of 3 steps, milestones 0.5 and 0.75: steps 0-5 at 0.1, 6-8 at 0.01, 9-11 at 0.001."""
    lrs = _lrs(OptimConfig(lr=0.1, warmup_epochs=0, schedule="step", milestones=(0.5, 0.75)), 4, 3)
    assert lrs == pytest.approx([0.1] * 6 + [0.01] * 3 + [0.001] * 3)


def test_step_schedule_at_the_authors_epochs() -> None:
    """100 epochs, the default milestones: 0.1 up to epoch 49, 0.01 for 50-74, 0.001 from 75 (easy_mwh.py)."""
    lrs = _lrs(OptimConfig(lr=0.1, warmup_epochs=0, schedule="step"), 100, 2)
    per_epoch = lrs[::2]
    assert per_epoch[49] == pytest.approx(0.1) and per_epoch[50] == pytest.approx(0.01)
    assert per_epoch[74] == pytest.approx(0.01) and per_epoch[75] == pytest.approx(0.001)
    assert per_epoch[99] == pytest.approx(0.001)


def test_step_schedule_between_epochs_and_with_warmup() -> None:
    """A milestone that is not a whole epoch drops mid-epoch (0.25 of 10 epochs of 4 steps: step 10);
    the warm-up ramps linearly to the peak, then the steps apply."""
    lrs = _lrs(OptimConfig(lr=1.0, warmup_epochs=1, schedule="step", milestones=(0.25,)), 10, 4)
    assert lrs[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert lrs[9] == pytest.approx(1.0) and lrs[10] == pytest.approx(0.1) and lrs[-1] == pytest.approx(0.1)


def test_cosine_stays_the_default() -> None:
    lrs = _lrs(OptimConfig(lr=1.0, warmup_epochs=0), 2, 5)
    assert lrs[0] == pytest.approx(1.0)
    assert lrs[5] == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))
    assert TrainConfig().optim().schedule == "cosine"


def test_train_config_resolves_and_checks_milestones() -> None:
    assert TrainConfig().milestones is None
    assert TrainConfig(lr_schedule="step").milestones == (0.5, 0.75)
    cfg = TrainConfig(lr_schedule="step", milestones="0.3, 0.6,0.9", epochs=10)
    assert cfg.milestones == (0.3, 0.6, 0.9) and cfg.optim().milestones == (0.3, 0.6, 0.9)
    assert TrainConfig(lr_schedule="step", milestones=[0.4]).milestones == (0.4,)
    rec = cfg.optim().record(cfg.epochs)
    assert rec["name"] == "step" and rec["milestone_epochs"] == pytest.approx([3, 6, 9]) and rec["gamma"] == 0.1


@pytest.mark.parametrize("options,text", [
    ({"lr_schedule": "step", "milestones": "0.75,0.5"}, "strictly increasing"),
    ({"lr_schedule": "step", "milestones": "0.5,0.5"}, "strictly increasing"),
    ({"lr_schedule": "step", "milestones": "50,75"}, r"fractions of the epochs, each in \(0, 1\)"),
    ({"lr_schedule": "step", "milestones": "0,0.5"}, r"each in \(0, 1\)"),
    ({"lr_schedule": "step", "milestones": "0.5,1"}, r"each in \(0, 1\)"),
    ({"lr_schedule": "step", "milestones": "nan"}, r"each in \(0, 1\)"),
    ({"lr_schedule": "step", "milestones": ""}, "comma-separated fractions"),
    ({"lr_schedule": "step", "milestones": "0.5,,0.7"}, "comma-separated fractions"),
    ({"lr_schedule": "step", "milestones": {"a": 1}}, "comma-separated fractions"),
    ({"milestones": "0.5"}, "--milestones belongs to --lr-schedule step"),
    ({"lr_schedule": "cosin"}, "did you mean cosine"),
])
def test_bad_schedules_are_one_line(options: dict, text: str) -> None:
    with pytest.raises(EdgekitError, match=text) as err:
        TrainConfig(**options)
    assert "\n" not in str(err.value)
