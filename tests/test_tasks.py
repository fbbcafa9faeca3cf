"""Tasks as objects (edgekit.tasks): the registry, a toy task flowing through the stages that ask
the task object, and each built-in task's loss and readout on hand-computed tiny cases."""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from edgekit.compress.kd import soft_logits
from edgekit.data import DataBundle
from edgekit.errors import EdgekitError
from edgekit.exporters.manifest import output_layout
from edgekit.exporters.parity import parity_numbers, thresholds_for
from edgekit.tasks import Task, get_task, list_tasks, register_task, unregister_task
from edgekit.training.label_distribution import LabelTask
from edgekit.training.metrics import evaluate_model


class _Identity(nn.Module):
    """A 'model' whose output is its input: the tests feed it the outputs to score."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _batches(x: torch.Tensor, y: torch.Tensor, size: int = 2) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(x[i:i + size], y[i:i + size]) for i in range(0, len(x), size)]


# -- registry -----------------------------------------------------------------------------------

def test_registry_lists_the_builtin_tasks_in_order() -> None:
    assert list_tasks()[:5] == ("classify", "regression", "label_distribution", "clip_classify", "tabular")
    assert list_tasks(trainable=True) == ("classify", "regression", "label_distribution")
    assert set(list_tasks(class_labels=True)) >= {"classify", "clip_classify", "tabular"}
    assert list_tasks(clips=True) == ("clip_classify",)
    assert get_task("classify").name == "classify"
    assert get_task(get_task("regression")) is get_task("regression")


def test_unknown_task_is_one_clear_line() -> None:
    with pytest.raises(EdgekitError, match="unknown task 'boxes'; expected one of classify, regression"):
        get_task("boxes")
    with pytest.raises(EdgekitError, match="unknown task None"):
        get_task(None)  # type: ignore[arg-type]


def test_task_properties_replace_the_name_comparisons() -> None:
    classify, clip, reg, label, tab = (get_task(n) for n in
                                       ("classify", "clip_classify", "regression", "label_distribution", "tabular"))
    assert classify.target_transform() is None and clip.target_transform() is None
    assert reg.target_transform()(2).dtype == torch.float32
    assert classify.accepts_data("classify") and not classify.accepts_data("clip_classify")
    assert label.accepts_data("regression") and label.accepts_data("label_distribution")
    assert not label.accepts_data("classify") and not reg.accepts_data("label_distribution")
    assert [t.prunable for t in (classify, clip, reg, label, tab)] == [True, True, False, True, False]
    assert [t.optimizable for t in (classify, clip, reg, label, tab)] == [True, False, False, False, False]
    assert [t.bench_accuracy for t in (classify, clip, reg, label, tab)] == [True, True, False, True, False]
    assert label.flip_test and not classify.flip_test
    assert reg.model_task(None) == "regression" and reg.model_task(LabelTask("0:4:1")) == "label_distribution"
    assert classify.model_task(None) == "classify"
    extra = {"label_distribution": LabelTask("0:4:1").record()}
    assert label.settings(extra) == LabelTask("0:4:1") and classify.settings(extra) is None
    assert label.record(extra)["label_range"] == "0:4:1" and classify.record(extra) == {}
    assert (classify.headline, classify.higher_is_better) == ("top1", True)
    assert (label.headline, label.higher_is_better) == ("mae", False)
    assert (classify.compare, reg.compare, label.compare) == ("kl", "mse", "kl")


# -- a toy task registered here flows through the stages without edits elsewhere -----------------

class SignTask(Task):
    """Predicts the sign of one number: the readout is ``out > 0``, the metric the share right."""

    name = "toy_sign"
    headline = "sign_acc"
    higher_is_better = True

    def readout(self, out: torch.Tensor) -> torch.Tensor:
        return out.reshape(len(out), -1)[:, -1] > 0

    def metrics(self, out: torch.Tensor, target: torch.Tensor) -> dict[str, Any]:
        return {"sign_acc": 100.0 * float((self.readout(out) == (target > 0)).float().mean())}

    def parity_numbers(self, ref: Any, out: Any, targets: Any = None, label_range: Any = None) -> dict[str, Any]:
        return {"sign_agreement": float(((ref[:, -1] > 0) == (out[:, -1] > 0)).mean())}

    def output_layout(self, width: int, label_range: str | None) -> dict[str, Any] | None:
        return {"sign": {"column": width - 1}}


@pytest.fixture
def toy_task():
    register_task(SignTask)
    yield get_task("toy_sign")
    unregister_task("toy_sign")


def test_a_registered_toy_task_flows_through_metrics_readout_parity_and_data(toy_task: Task) -> None:
    assert "toy_sign" in list_tasks() and toy_task.summary({"val_sign_acc": 75.0}) == "sign_acc 75"
    out = torch.tensor([[0.5], [-1.0], [2.0], [-0.1]])
    y = torch.tensor([1.0, 1.0, 3.0, -2.0])
    assert toy_task.readout(out).tolist() == [True, False, True, False]
    res = evaluate_model(_Identity(), _batches(out, y), "toy_sign")  # type: ignore[arg-type]
    assert res == {"n": 4, "sign_acc": 75.0}
    nums = parity_numbers(out.numpy(), -out.numpy(), "toy_sign")
    assert nums["sign_agreement"] == 0.0 and "top1_agreement" not in nums
    assert thresholds_for("fp32", task="toy_sign") == thresholds_for("fp32")
    assert output_layout("toy_sign", 3, None) == {"sign": {"column": 2}}
    assert soft_logits("toy_sign")(out) is out
    bundle = DataBundle("toy", TensorDataset(out, y), TensorDataset(out, y), [], "toy_sign")
    _, target = next(iter(bundle.loader("val", lambda v: v, 4)))
    assert target.dtype == torch.float32  # numeric targets by default
    assert evaluate_model(_Identity(), [], "toy_sign") == {"n": 0}  # type: ignore[arg-type]
    with pytest.raises(EdgekitError, match="no training loss"):
        toy_task.loss()
    unregister_task("toy_sign")
    with pytest.raises(EdgekitError, match="unknown task 'toy_sign'"):
        evaluate_model(_Identity(), [], "toy_sign")  # type: ignore[arg-type]


# -- golden values ---------------------------------------------------------------------------------

def test_classify_loss_readout_metrics_and_parity_golden() -> None:
    task = get_task("classify")
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    y = torch.tensor([0, 0])
    ce = (math.log(1 + math.exp(-2)) + math.log(1 + math.exp(1))) / 2  # 0.126928 and 1.313262
    step = task.loss()(_Identity(), logits, y, 0)
    assert float(step.loss) == pytest.approx(ce, abs=1e-6)
    assert task.readout(logits).tolist() == [0, 1]
    assert task.metrics(logits, y) == pytest.approx({"top1": 50.0, "top5": 100.0, "loss": ce})
    assert evaluate_model(_Identity(), _batches(logits, y, 1), "classify") == \
        pytest.approx({"n": 2, "top1": 50.0, "top5": 100.0, "loss": ce})  # type: ignore[arg-type]
    ref, out = np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([[1.0, 0.0], [1.0, 0.5]])
    assert task.parity_numbers(ref, out, [0, 1]) == {"top1_agreement": 0.5, "torch_top1": 100.0,
                                                      "artifact_top1": 50.0}
    assert task.parity_numbers(ref[:, :1], out[:, :1]) == {}
    assert task.soft_logits()(logits) is logits
    assert task.output_layout(2, None) is None
    assert task.summary({"val_top1": 91.234, "val_top5": 99.0}) == "val top-1 91.23%  top-5 99.00%"
    assert get_task("clip_classify").readout(logits).tolist() == [0, 1]


def test_regression_loss_readout_and_metrics_golden() -> None:
    task = get_task("regression")
    out, y = torch.tensor([[1.0], [3.0]]), torch.tensor([2.0, 0.0])
    assert float(task.loss()(_Identity(), out, y, 0).loss) == pytest.approx((1 + 3) / 2)
    assert task.readout(out).tolist() == [1.0, 3.0]
    assert task.metrics(out, y) == pytest.approx({"mae": 2.0, "rmse": math.sqrt(5)})
    assert evaluate_model(_Identity(), _batches(out, y), "regression") == \
        pytest.approx({"n": 2, "mae": 2.0, "rmse": math.sqrt(5)})  # type: ignore[arg-type]
    assert task.output_layout(1, None) is None and task.parity_numbers(out.numpy(), out.numpy()) == {}


def test_label_distribution_loss_readout_soft_logits_and_layout_golden() -> None:
    task = get_task("label_distribution")
    out = torch.tensor([[0.2, 0.8, 1.8], [1.0, 0.0, 0.0]])
    assert task.readout(out).tolist() == pytest.approx([1.8, 0.0])
    logp = task.soft_logits(LabelTask("0:1:1"))(out)
    assert logp.flatten().tolist() == pytest.approx([math.log(0.2), math.log(0.8), 0.0, math.log(1e-12)])
    with pytest.raises(EdgekitError, match="regresses one number"):
        task.soft_logits(LabelTask("0:1:1", "l1"))
    # l1 on one output: |y_hat - y| scaled by the half range (0:4:1 -> 2): mean(1, 1) / 2
    step = task.loss(label_task=LabelTask("0:4:1", "l1"))(_Identity(), torch.tensor([[1.0], [3.0]]),
                                                          torch.tensor([2.0, 2.0]), 0)
    assert float(step.loss) == pytest.approx(0.5)
    with pytest.raises(EdgekitError, match="needs the task's settings"):
        task.loss()
    # metrics: MAE / RMSE / Pearson / epsilon-error of the expectation column, with (label, sigma) targets
    y = torch.tensor([[2.0, 1.0], [0.0, 1.0]])
    m = task.metrics(out, y)
    assert m["mae"] == pytest.approx(0.1) and m["rmse"] == pytest.approx(math.sqrt(0.02))
    assert m["eps_error"] == pytest.approx((1 - math.exp(-0.04 / 2)) / 2)
    assert task.output_layout(4, "0:2:1") == {"distribution": {"columns": [0, 3]}, "expectation": {"column": 3},
                                              "label_range": "0:2:1"}
    assert task.output_layout(1, None) == {"expectation": {"column": 0}, "label_range": None}
    with pytest.raises(EdgekitError, match="label range 0:5:1 has 6 values"):
        task.output_layout(4, "0:5:1")
    assert set(task.parity_thresholds()["fp32"]) >= {"min_dist_cosine", "max_mae_gap"}
    nums = task.parity_numbers(out.numpy().astype(np.float64), out.numpy().astype(np.float64), [2.0, 0.0], "0:2:1")
    assert nums["exp_max_abs_err"] == 0.0 and nums["mae_gap"] == 0.0 and nums["dist_cosine"] == pytest.approx(1.0)
