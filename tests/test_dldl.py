"""DLDL-v2 core: the age nets, the label-distribution heads, every loss against hand-computed values,
the expectation layer and its gradient, the metrics, and the train/eval commands."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

from edgekit.errors import EdgekitError
from edgekit.models.dldl import DLDLHead, Expectation, LabelSet, RankingHead, prediction
from edgekit.registry import count_params, create_model
from edgekit.training.label_distribution import LabelTask, gaussian_target, label_loss
from edgekit.training.metrics import label_metrics

LABELS = LabelSet.parse("0:2:1")


@pytest.mark.parametrize("arch,paper", [("thin_age_net", 3.7e6), ("tiny_age_net", 0.9e6)])
def test_age_net_parameter_counts_match_the_paper(arch: str, paper: float) -> None:
    model = create_model(arch, head="dldl", label_range="0:100:1")
    assert abs(count_params(model) - paper) / paper < 0.05
    with torch.no_grad():
        out = model.eval()(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 102)
    assert torch.allclose(out[:, :101].sum(1), torch.ones(2), atol=1e-5)
    with pytest.raises(EdgekitError, match="multiples of 32"):
        model(torch.randn(1, 3, 48, 48))


def test_any_backbone_takes_the_dldl_head() -> None:
    model = create_model("mobilenet_v2", head="dldl", label_range="1:5:0.1").eval()
    assert model.edgekit_layout.classifier == "classifier.1.classifier"
    with torch.no_grad():
        out = model(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 42)
    assert torch.all((out[:, -1] >= 1) & (out[:, -1] <= 5))  # the expectation stays inside the label set


@pytest.mark.parametrize("text", ["0:100", "0:100:0", "5:1:1", "0:1:0.3", "a:b:c", "0:nan:1", "0:100:-1"])
def test_label_range_rejects_bad_input(text: str) -> None:
    with pytest.raises(EdgekitError, match="label range"):
        LabelSet.parse(text)


def test_label_set_values() -> None:
    ls = LabelSet.parse("1.0:5.0:0.1")
    assert ls.size == 41 and ls.text() == "1:5:0.1"
    assert torch.allclose(ls.values()[[0, 10, 40]], torch.tensor([1.0, 2.0, 5.0]))


def test_expectation_layer_value_and_gradient() -> None:
    layer = Expectation(torch.tensor([0.0, 1.0, 2.0]))
    p = torch.tensor([[0.2, 0.3, 0.5]], requires_grad=True)
    y = layer(p)
    assert y.item() == pytest.approx(1.3)
    y.sum().backward()
    assert torch.allclose(p.grad, torch.tensor([[0.0, 1.0, 2.0]]))  # d y_hat / d p_k = l_k
    assert not list(layer.parameters())  # parameter-free


def test_gaussian_target_golden_and_sigma_zero() -> None:
    t = gaussian_target(torch.tensor([1.0]), 1.0, LABELS.values())
    e = math.exp(-0.5)
    assert torch.allclose(t, torch.tensor([[e, 1, e]]) / (1 + 2 * e), atol=1e-6)
    one_hot = gaussian_target(torch.tensor([1.3, 2.0]), torch.tensor([0.0, 0.0]), LABELS.values())
    assert torch.equal(one_hot, torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]))  # clamped, no NaN


def _head(kind: type, logits: list[float]) -> nn.Module:
    """A head whose classifier outputs ``logits`` for the input [1, 0]."""
    head = kind(2, LABELS)
    with torch.no_grad():
        head.classifier.weight.zero_()
        head.classifier.bias.copy_(torch.tensor(logits))
    return head


def test_dldl_kl_and_ce_losses_golden() -> None:
    head = _head(DLDLHead, [0.0, 0.0, math.log(2)])  # p_hat = [.25, .25, .5], y_hat = 1.25
    x, y = torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 1.0]])  # label 1, sigma 1
    e = math.exp(-0.5)
    p = [e / (1 + 2 * e), 1 / (1 + 2 * e), e / (1 + 2 * e)]
    kl = sum(pk * math.log(pk / qk) for pk, qk in zip(p, [0.25, 0.25, 0.5]))
    dldl = label_loss(LabelTask("0:2:1", "dldl", lam=2.0))(head, x, y, 0)
    assert dldl.loss.item() == pytest.approx(kl + 2.0 * 0.25, abs=1e-6)
    assert dldl.terms["kl"] == pytest.approx(kl, abs=1e-6) and dldl.terms["l1"] == pytest.approx(0.25)
    assert label_loss(LabelTask("0:2:1", "kl"))(head, x, y, 0).loss.item() == pytest.approx(kl, abs=1e-6)
    ce = label_loss(LabelTask("0:2:1", "ce"))(head, x, torch.tensor([[1.4, 1.0]]), 0)  # nearest label: 1
    assert ce.loss.item() == pytest.approx(math.log(4), abs=1e-6)
    fixed = label_loss(LabelTask("0:2:1", "kl", sigma=0.0))(head, x, y, 0)  # --sigma 0: one-hot target
    assert fixed.loss.item() == pytest.approx(-math.log(0.25), abs=1e-5)


def test_dldl_loss_gradient_reaches_logits_through_the_expectation() -> None:
    head = _head(DLDLHead, [0.0, 0.0, math.log(2)])
    x, y = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    label_loss(LabelTask("0:2:1", "dldl", lam=1.0))(head, x, y, 0).loss.backward()
    g_total = head.classifier.bias.grad.clone()
    head.zero_grad()
    label_loss(LabelTask("0:2:1", "kl"))(head, x, y, 0).loss.backward()
    # d|y_hat - y|/d logits = sign * p_k (l_k - y_hat) for y_hat > y
    p, l_ = torch.tensor([0.25, 0.25, 0.5]), torch.tensor([0.0, 1.0, 2.0])
    assert torch.allclose(g_total - head.classifier.bias.grad, p * (l_ - 1.25), atol=1e-6)


def test_ranking_head_and_loss_golden() -> None:
    head = _head(RankingHead, [2.0, -1.0])
    out = head(torch.tensor([[1.0, 0.0]]))
    c0, c1 = 1 / (1 + math.exp(-2)), 1 / (1 + math.exp(1))
    assert torch.allclose(out[0, :3], torch.tensor([1 - c0, c0 - c1, c1]), atol=1e-6)
    assert prediction(out).item() == pytest.approx(c0 + c1, abs=1e-6)  # = sum_k p_k l_k
    step = label_loss(LabelTask("0:2:1", "ranking"))(head, torch.tensor([[1.0, 0.0]]), torch.tensor([1.4]), 0)
    bce = -(math.log(c0) + math.log(c1)) / 2  # targets: 1.4 > 0 and 1.4 > 1
    assert step.loss.item() == pytest.approx(bce, abs=1e-6)


def test_l1_loss_on_one_output() -> None:
    model = nn.Linear(2, 1)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 2.0]]))
        model.bias.fill_(0.5)
    step = label_loss(LabelTask("0:10:1", "l1"))(model, torch.tensor([[1.0, 1.0], [0.0, 0.0]]),
                                                  torch.tensor([3.0, 1.5]), 0)
    assert step.terms["l1"] == pytest.approx((0.5 + 1.0) / 2)  # logged in label units
    assert step.loss.item() == pytest.approx((0.5 + 1.0) / 2 / 5)  # optimised on targets / half the range
    with pytest.raises(EdgekitError, match="head"):
        label_loss(LabelTask("0:10:1", "kl"))(model, torch.ones(1, 2), torch.ones(1), 0)


def test_regression_head_reads_out_over_the_label_range() -> None:
    from edgekit.models.dldl import RegressionHead

    head = _head(RegressionHead, [0.0])
    assert head(torch.tensor([[1.0, 0.0]])).tolist() == [[1.0]]  # output 0 -> the centre of 0:2
    with torch.no_grad():
        head.classifier.bias.fill_(-1.0)
    assert head(torch.tensor([[1.0, 0.0]])).tolist() == [[0.0]]  # -1 -> the low end
    model = create_model("compact_cnn", head="regression", label_range="10:50:1", width_mult=0.5).eval()
    with torch.no_grad():
        out = model(torch.randn(3, 3, 32, 32))
    assert out.shape == (3, 1) and torch.all((out > 0) & (out < 60))


def test_label_metrics_golden() -> None:
    pred, y, sigma = torch.tensor([1.0, 2.0, 4.0]), torch.tensor([1.0, 3.0, 2.0]), torch.tensor([1.0, 1.0, 2.0])
    m = label_metrics(pred, y, sigma)
    assert m["mae"] == pytest.approx(1.0) and m["rmse"] == pytest.approx(math.sqrt(5 / 3))
    assert m["eps_error"] == pytest.approx((0 + (1 - math.exp(-0.5)) + (1 - math.exp(-0.5))) / 3)
    assert m["pearson"] == pytest.approx(float(np.corrcoef([1, 2, 4], [1, 3, 2])[0, 1]))
    assert "eps_error" not in label_metrics(pred, y)


def test_train_and_eval_label_distribution_cli(tmp_path: Path, label_csv) -> None:
    from edgekit.cli import main

    csv = label_csv(tmp_path, n=120)
    runner = CliRunner()
    out = tmp_path / "m.ckpt"
    res = runner.invoke(main, ["train", "--arch", "compact_cnn", "--data", f"csv:{csv}", "--task", "label_distribution",
                               "--label-range", "0:100:1", "--loss", "dldl", "--epochs", "3", "--optimizer", "adam",
                               "--lr", "0.003", "--arch-arg", "width_mult=0.5", "-o", str(out)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(main, ["eval", str(out), "--json"])
    m = json.loads(res.output)
    assert {"mae", "rmse", "eps_error", "pearson"} <= set(m) and m["n"] == 24 and m["flip_test"] is True
    spread = float(np.mean(np.abs(np.linspace(0, 100, 101) - 50)))  # MAE of always predicting the middle
    assert m["mae"] < 0.8 * spread and m["pearson"] > 0.5
    from edgekit.checkpoint import load_checkpoint

    ck = load_checkpoint(out)
    assert ck.task == "label_distribution" and ck.arch_kwargs["head"] == "dldl" and ck.num_outputs == 102
    assert LabelTask.of(ck.extra).label_range == "0:100:1"
    shown = runner.invoke(main, ["info", str(out)]).output
    assert "label set    0:100:1 (loss dldl, lambda 1, sigma per-image" in shown
    no_flip = json.loads(runner.invoke(main, ["eval", str(out), "--json", "--no-flip"]).output)
    assert no_flip["flip_test"] is False and no_flip["mae"] != m["mae"]


@pytest.mark.parametrize("args,msg", [
    (["--loss", "kl", "--data", "digits"], "label_distribution"),
    (["--task", "label_distribution", "--data", "digits"], "class labels"),
    (["--label-range", "0:100:0"], "label range"),
    (["--head", "nfl", "--loss", "ranking"], "ranking head"),
    (["--sigma", "-1"], "sigma"),
    (["--sigma", "nan"], "sigma"),
    (["--mix", "mixup"], "--mix none"),
])
def test_train_label_options_reject_bad_input(tmp_path: Path, label_csv, args: list[str], msg: str) -> None:
    from edgekit.cli import main

    csv = label_csv(tmp_path, n=12)
    base = ["train", "--arch", "compact_cnn", "-o", str(tmp_path / "x.ckpt")]
    if "--data" not in args:
        base += ["--data", f"csv:{csv}"]
    if "--label-range" not in args and "digits" not in args:
        base += ["--label-range", "0:100:1"]
    res = CliRunner().invoke(main, base + args)
    assert res.exit_code == 2, res.output
    assert msg in res.output and "Traceback" not in res.output and len(res.output.strip().splitlines()) == 1
    assert not (tmp_path / "x.ckpt").exists()
