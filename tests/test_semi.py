"""Semi-supervised regimes (R2-D2, pseudo-label, labelled only): the authors' stage split and lr
steps, the D2 step's golden values, the shared label table, two-stream batches, and the proof
that training never reads a hidden label."""
from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from edgekit.data.hidden import HiddenLabels
from edgekit.errors import EdgekitError
from edgekit.training.label_table import LabelTable, effective_step
from edgekit.training.semi.r2d2 import (CLASS_WEIGHT, EFFECTIVE_STEP, ENTROPY_WEIGHT, cycle_lr_ratios, d2_loss,
                                        stage_epochs)
from edgekit.training.semi.streams import HIDDEN, TwoStream


def test_stage_split_follows_the_authors() -> None:
    assert stage_epochs(950, 4, None) == (300, 300, 75, 50)  # CIFAR-10: 300 + 300 + 4 x 75 + 50
    e1, e2, ec, e4 = stage_epochs(19, 4, None)
    assert e1 + e2 + 4 * ec + e4 == 19 and min(e1, e2, ec, e4) >= 1
    assert stage_epochs(30, 2, 5)[2] == 5  # cycles set per stage; the rest keeps the proportions
    with pytest.raises(EdgekitError, match="too few for r2d2's four stages"):
        stage_epochs(5, 4, None)


def test_pseudo_label_shares_r2d2s_stage_one() -> None:
    """At equal --epochs the two regimes run the same supervised stage 1, so they differ only after it."""
    from edgekit.training.semi.r2d2 import supervised_epochs

    for total in (30, 19, 950):
        assert supervised_epochs(total) == stage_epochs(total, 4, None)[0]
    assert supervised_epochs(3) == 1  # too short for r2d2: still one supervised epoch first


def test_cycle_learning_rates_step_down_as_the_authors() -> None:
    assert cycle_lr_ratios(4) == pytest.approx([1.0, 2 / 3, 1 / 3, 1 / 30])  # 0.03, 0.02, 0.01, 0.001
    assert cycle_lr_ratios(1) == [1.0]
    assert EFFECTIVE_STEP == pytest.approx(4000 * 0.1 / 512)


def test_d2_step_golden_values() -> None:
    """One pool image (row 0, logits 0: a uniform pseudo-label) and one labelled image of class 1.
    Loss = 0.1 KL(p || softmax(z)) + 0.03 H(p), batch-mean; the pool row then moves by
    -label_lr * 0.1 / 2 * (softmax(z) - p), the labelled row's logits (10 on its class) never move."""
    out = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    model = torch.nn.Identity()
    table = LabelTable(torch.zeros(1, 2))
    y = torch.tensor([[0, HIDDEN], [-1, 1]])
    res = d2_loss(table, label_lr=2.0, classes=2)(model, out, y, 0)
    p = F.softmax(out, 1)
    q = torch.stack([torch.tensor([0.5, 0.5]), F.softmax(torch.tensor([0.0, 10.0]), 0)])
    kl = (p * (p.log() - q.log())).sum(1).mean()
    h = -(p * p.log()).sum(1).mean()
    assert float(res.loss) == pytest.approx(float(CLASS_WEIGHT * kl + ENTROPY_WEIGHT * h), abs=1e-6)
    expected = -2.0 * CLASS_WEIGHT / 2 * (torch.tensor([0.5, 0.5]) - p[0])
    assert torch.allclose(table.rows[0], expected, atol=1e-6)
    assert res.targets.tolist() == [1]  # running accuracy counts the labelled image only
    assert effective_step(2.0, CLASS_WEIGHT, 2) == pytest.approx(0.1)


def test_label_table_writable_rows_and_assign() -> None:
    table = LabelTable(torch.zeros(3, 2), writable=torch.tensor([True, False, True]))
    table.step(torch.tensor([0, 1, 2]), torch.ones(3, 2), 0.5)
    assert table.rows.tolist() == [[-0.5, -0.5], [0.0, 0.0], [-0.5, -0.5]]
    table.assign(torch.tensor([1]), torch.tensor([[0.0, 3.0]]))
    assert table.labels().tolist()[1] == 1
    shared = torch.zeros(2, 2)
    LabelTable(shared).step(torch.tensor([0]), torch.ones(1, 2), 1.0)
    assert shared[0].tolist() == [-1.0, -1.0]  # a float CPU tensor is updated in place


class _Poison:
    """A label that fails whatever reads it."""

    def __getattr__(self, name: str):
        raise AssertionError("a hidden label was read")

    def __int__(self) -> int:
        raise AssertionError("a hidden label was read")

    __index__ = __int__

    def __eq__(self, other: object) -> bool:
        raise AssertionError("a hidden label was read")

    __hash__ = None  # type: ignore[assignment]


class _Poisoned(torch.utils.data.Dataset):
    """Images whose labels are poison: only a trainer that never reads them gets through."""

    def __init__(self, base: torch.utils.data.Dataset) -> None:
        self.base = base

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int):
        return self.base[i][0], _Poison()

    @property
    def targets(self):
        raise AssertionError("a hidden label was read")


def test_two_stream_batches_hide_the_pool_labels() -> None:
    from edgekit.data import load_data, make_input_spec, train_transform
    from edgekit.data.datasets import Subset

    bundle = load_data("synthetic:classes=2,n=60,size=8")
    pool = HiddenLabels(_Poisoned(Subset(bundle.train, list(range(8, 48)))))
    labelled = Subset(bundle.train, list(range(8)))
    streams = TwoStream(pool, labelled, train_transform(make_input_spec(8)), batch=16)
    batches = list(streams)
    assert len(batches) == len(streams) == 40 // 12  # 12 pool + 4 labelled images per batch of 16
    rows = torch.cat([y[y[:, 1] == HIDDEN, 0] for _, y in batches])
    assert len(set(rows.tolist())) == len(rows) == 36  # each pool image at most once per epoch
    x, y = batches[0]
    assert x.shape[0] == 16 and (y[:12, 1] == HIDDEN).all() and (y[12:, 1] >= 0).all() and (y[12:, 0] == -1).all()
    with pytest.raises(EdgekitError, match="reads no labels"):
        pool.targets


@pytest.mark.parametrize("regime", ["r2d2", "pseudo-label"])
def test_regimes_never_read_hidden_labels(regime: str) -> None:
    """Every stage of the regime runs over a pool whose labels raise when touched."""
    from edgekit.data import eval_transform, load_data, make_input_spec, train_transform
    from edgekit.data.datasets import Subset
    from edgekit.registry import create_model
    from edgekit.training.loop import OptimConfig
    from edgekit.training.semi import SemiRun, get_regime, run_phases

    bundle = load_data("synthetic:classes=2,n=80,size=8")
    spec = make_input_spec(8)
    run = SemiRun(model=create_model("compact_cnn", num_classes=2, width_mult=0.25), classes=2,
                  labelled=Subset(bundle.train, list(range(8))),
                  pool=HiddenLabels(_Poisoned(Subset(bundle.train, list(range(8, 64))))),
                  train_transform=train_transform(spec), eval_transform=eval_transform(spec), batch_size=16,
                  epochs=7, lr=0.05, optim=OptimConfig(lr=0.05), device=torch.device("cpu"),
                  settings={"repredict": 2, "cycle_epochs": 1})
    reg = get_regime(regime)
    history = run_phases(reg, run, resume_state=None, on_epoch_end=None, progress=False)
    assert len(history) == 7 and all(math.isfinite(h["loss"]) for h in history)
    labels = reg.record()["pseudo_labels"]
    assert labels and all(v.shape == (56,) for v in labels.values())
    if regime == "r2d2":
        assert list(labels) == ["d2_init", "stage2", "cycle1", "cycle2", "final"]
        phases = list(dict.fromkeys(h["phase"] for h in history))
        assert phases == ["r2d2 stage 1 (supervised)", "r2d2 stage 2 (D2)", "r2d2 stage 3 (R2 cycle 1/2)",
                          "r2d2 stage 3 (R2 cycle 2/2)", "r2d2 stage 4 (fine-tune)"]


def test_phases_resume_where_they_stopped() -> None:
    """A run stopped after any epoch continues from the state handed to on_epoch_end: the same phases
    follow, and the pseudo-label table comes back with it."""
    from edgekit.data import eval_transform, load_data, make_input_spec, train_transform
    from edgekit.data.datasets import Subset
    from edgekit.registry import create_model
    from edgekit.training.loop import OptimConfig
    from edgekit.training.semi import SemiRun, get_regime, run_phases

    bundle = load_data("synthetic:classes=2,n=60,size=8")
    spec = make_input_spec(8)

    def make() -> SemiRun:
        torch.manual_seed(0)
        return SemiRun(model=create_model("compact_cnn", num_classes=2, width_mult=0.25), classes=2,
                       labelled=Subset(bundle.train, list(range(8))), pool=HiddenLabels(Subset(bundle.train, list(range(8, 48)))),
                       train_transform=train_transform(spec), eval_transform=eval_transform(spec), batch_size=16,
                       epochs=7, lr=0.05, optim=OptimConfig(lr=0.05), device=torch.device("cpu"),
                       settings={"repredict": 2, "cycle_epochs": 1})

    states: list = []
    full = run_phases(get_regime("r2d2"), make(), resume_state=None, progress=False,
                      on_epoch_end=lambda e, rec, st: states.append(st))
    assert states[-1] is None and all(s is not None for s in states[:-1])  # the last epoch leaves nothing to resume
    # stop after the 4th epoch (the end of stage 2: the next phase starts fresh, with its reprediction)
    stop = states[3]
    assert stop["fit"] is None and stop["phase"] == 2 and stop["regime"]["table"].shape == (40, 2)
    regime = get_regime("r2d2")
    rest = run_phases(regime, make(), resume_state=stop, progress=False, on_epoch_end=None)
    assert [h["phase"] for h in rest] == [h["phase"] for h in full[4:]]
    assert set(regime.record()["pseudo_labels"]) == {"d2_init", "stage2", "cycle1", "cycle2", "final"}


def test_train_semi_end_to_end_records_the_regime(tmp_path) -> None:
    import subprocess
    import sys

    from edgekit import load_checkpoint

    out = tmp_path / "semi.pt"
    args = ["train", "--arch", "compact_cnn", "--arch-arg", "width_mult=0.25", "--data", "synthetic:classes=2,n=80,size=8",
            "--labeled-fraction", "0.25", "--semi", "r2d2", "--epochs", "7", "--repredict", "2", "--cycle-epochs", "1",
            "--batch-size", "16", "--precise-bn", "2", "-o", str(out)]
    res = subprocess.run([sys.executable, "-m", "edgekit", *args], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    ck = load_checkpoint(out)
    semi = ck.extra["semi"]
    assert semi["regime"] == "r2d2" and semi["pool"] == 48 and semi["labeled_fraction"] == 0.25
    assert semi["stage_epochs"] == [2, 2, [1, 1], 1] and semi["effective_step"] == pytest.approx(EFFECTIVE_STEP)
    assert semi["pseudo_labels"]["final"].shape == (48,)
    assert ck.data["labeled_fraction"] == 0.25  # later stages see the same 16 labelled images
    info = subprocess.run([sys.executable, "-m", "edgekit", "info", str(out)], capture_output=True, text=True)
    assert "semi         regime=r2d2" in info.stdout and "pseudo_labels" not in info.stdout
    log = [json.loads(line) for line in (tmp_path / "semi.pt.metrics.jsonl").read_text().splitlines()]
    assert len(log) == 7 and log[-1]["phase"] == "r2d2 stage 4 (fine-tune)" and "val_top1" in log[-1]


@pytest.mark.parametrize("args,text", [
    (["--semi", "r2d2"], "needs unlabelled images"),
    (["--semi", "r2d2", "--labeled-fraction", "0.5", "--mix", "mixup"], "takes neither --mix"),
    (["--repredict", "2"], "--repredict belongs to --semi r2d2"),
    (["--semi", "pseudo-label", "--labeled-fraction", "0.5", "--pseudo-threshold", "0"], "--pseudo-threshold"),
    (["--semi", "r2d2", "--unlabeled", "gestures:n=20"], "do not fit a model"),
    (["--semi", "r2d2", "--labeled-fraction", "0.5", "--epochs", "3"], "too few for r2d2's four stages"),
])
def test_semi_bad_input_is_one_line(args: list[str], text: str, tmp_path) -> None:
    import subprocess
    import sys

    base = ["train", "--arch", "compact_cnn", "--data", "synthetic:classes=2,n=40,size=8", "--epochs", "8",
            "-o", str(tmp_path / "x.pt")]
    res = subprocess.run([sys.executable, "-m", "edgekit", *base, *args], capture_output=True, text=True, timeout=600)
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert res.returncode == 2 and len(lines) == 1 and text in lines[0], res.stderr
    assert not (tmp_path / "x.pt").exists()


def test_train_semi_on_clips(tmp_path) -> None:
    """The same regimes on gesture clips: a causal TSM, the pool of clips behind hidden labels."""
    import edgekit

    ck = edgekit.train("tsm_compact_cnn", "gestures:n=110,frames=8", tmp_path / "g.pt", arch_kwargs={"width_mult": 0.25},
                       shift="causal", frames=4, labeled_fraction=0.3, semi="pseudo-label", epochs=3, batch_size=16,
                       precise_bn=2, progress=False)
    semi = ck.extra["semi"]
    labelled = round(0.3 * 88 / 11) * 11  # 2 of each class's 8 training clips (stratified)
    assert semi["regime"] == "pseudo-label" and semi["pool"] == 88 - labelled and ck.input_spec["frames"] == 4
    assert len(semi["confident_share"]) == 2 and "val_top1" in ck.metrics
