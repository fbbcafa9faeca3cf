"""Label-distribution (DLDL-v2) models through the compression stages: KD on their distribution,
feature mimicking, CURL's KL of label distributions, baselines and recovery scored by MAE."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from edgekit.checkpoint import Checkpoint, load_checkpoint
from edgekit.compress.distill import _Teacher, distill, make_step
from edgekit.compress.kd import kd_loss, soft_logits
from edgekit.compress.loss_terms import weighted_terms
from edgekit.compress.prune import curl_readout, prune, score_units
from edgekit.errors import EdgekitError
from edgekit.evaluation import evaluate
from edgekit.models.dldl import DLDLHead, LabelSet
from edgekit.registry import create_model
from edgekit.training.label_distribution import LabelTask, label_loss

RANGE = "0:100:1"


@pytest.fixture(scope="module")
def dldl_teacher(tmp_path_factory: pytest.TempPathFactory, label_csv) -> Path:
    """compact_cnn with a DLDL head over 0:100:1, trained 2 epochs on 100 images at 32 px."""
    from edgekit.training.trainer import train

    root = tmp_path_factory.mktemp("dldl")
    out = root / "teacher.pt"
    train("compact_cnn", f"csv:{label_csv(root, n=100, size=16)}", out, epochs=2, input_size=32, label_range=RANGE,
          optimizer="adam", lr=1e-3, batch_size=16, progress=False)
    return out


def _l1_checkpoint() -> Checkpoint:
    """A one-output (--loss l1) label-distribution checkpoint: nothing to read a distribution from."""
    return Checkpoint(arch="compact_cnn", arch_kwargs={"num_classes": 1}, state_dict={}, task="label_distribution",
                      input_spec={"shape": [3, 32, 32]}, extra={LabelTask.KEY: LabelTask(RANGE, "l1").record()})


def _outputs(p: list[list[float]], values: list[float]) -> torch.Tensor:
    """A ``[N, K + 1]`` label-distribution output: distribution, then its expectation."""
    p_t = torch.tensor(p)
    return torch.cat([p_t, (p_t @ torch.tensor(values)).unsqueeze(1)], dim=1)


def test_kd_on_label_distributions_golden() -> None:
    """KD reads the first K columns as the distribution: T=1 is KL(p_t || p_s), T=2 the square-rooted
    distributions renormalised, times 4; never a softmax over the [N, K+1] output."""
    values = [0.0, 1.0, 2.0]
    teacher = _outputs([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]], values)
    student = _outputs([[0.4, 0.4, 0.2], [0.2, 0.5, 0.3]], values)
    logits = soft_logits("label_distribution", LabelTask("0:2:1"))
    # KL(p_t || p_s), sample 0: 0.7 ln(7/4) + 0.2 ln(1/2) + 0.1 ln(1/2) = 0.391736 - 0.207944 = 0.183792
    # sample 1: 0.1 ln(1/2) + 0.3 ln(3/5) + 0.6 ln 2 = -0.069315 - 0.153248 + 0.415888 = 0.193326; mean 0.188559
    assert float(kd_loss(logits(student), logits(teacher), 1.0)) == pytest.approx(0.188559, abs=1e-5)
    pt, ps = teacher[:, :3].sqrt(), student[:, :3].sqrt()
    pt, ps = pt / pt.sum(1, keepdim=True), ps / ps.sum(1, keepdim=True)
    hand = 4 * float((pt * (pt / ps).log()).sum(1).mean())
    assert float(kd_loss(logits(student), logits(teacher), 2.0)) == pytest.approx(hand, rel=1e-5)
    # the expectation column would change a softmax of the raw output: that is not what KD uses
    assert abs(float(kd_loss(student, teacher, 1.0)) - 0.188559) > 1e-2
    # another teacher, another value; the same distribution, zero
    assert float(kd_loss(logits(student), logits(student), 4.0)) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(EdgekitError, match="one number"):
        soft_logits("label_distribution", LabelTask(RANGE, "l1"))


class _Net(nn.Module):
    """x [N, 3, 1, 1] -> DLDL head over 0:2:1 with fixed weights (feature = x)."""

    def __init__(self, w: list[list[float]]) -> None:
        super().__init__()
        self.body = nn.Flatten()
        self.head = DLDLHead(3, LabelSet(0, 2, 1))
        with torch.no_grad():
            self.head.classifier.weight.copy_(torch.tensor(w))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def test_distill_step_with_label_task_golden() -> None:
    """The student's loss is the teacher's LabelTask loss (KL + lambda L1 on (label, sigma) targets) plus
    alpha * KD of the two label distributions; one forward of the student per step."""
    task = LabelTask("0:2:1", lam=0.5)
    teacher = _Net([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 2.0]])
    student = _Net([[0.0] * 3] * 3)  # uniform distribution, expectation 1
    calls = []
    student.register_forward_hook(lambda *_: calls.append(1))
    x = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]).reshape(2, 3, 1, 1)
    packed = torch.tensor([[0.0, 1.0, 0.0], [2.0, 1.0, 1.0]], dtype=torch.float64)  # label, sigma, index
    step = make_step(weighted_terms(("kd",), {"alpha": 0.25}), _Teacher(teacher, 1, 1, "body"), None, None, None,
                     temperature=1.0, correct_only=False, task="label_distribution", device=torch.device("cpu"),
                     label_task=task)
    out = step(student, x, packed, 0)
    assert len(calls) == 1
    with torch.no_grad():
        p_t, p_s = teacher(x)[:, :3], student(x)[:, :3]
        kd = float((p_t * (p_t / p_s).log()).sum(1).mean())
        expected = float(label_loss(task)(student, x, packed[:, :2].float(), 0).loss)
    # the teacher's distributions are e^2/(e^2 + 2) peaked at its sample's label: KD is their KL from uniform
    assert out.terms["kd"] == pytest.approx(kd, abs=1e-6) and kd > 0.3
    assert out.terms["l1"] == pytest.approx(1.0, abs=1e-6)  # |1 - 0| and |1 - 2|
    assert out.loss.item() == pytest.approx(expected + 0.25 * kd, abs=1e-5)


def test_distil_dldl_teacher_into_compact_cnn_s(dldl_teacher: Path, tmp_path: Path) -> None:
    teacher = load_checkpoint(dldl_teacher)
    out = tmp_path / "s.pt"
    s = distill(dldl_teacher, "compact_cnn_s", None, out, method="lshl2+kd", epochs=1, batch_size=16,
                optimizer="adam", lr=1e-3, progress=False)
    assert s.task == "label_distribution" and s.extra == teacher.extra
    assert LabelTask.of(s.extra) == LabelTask.of(teacher.extra)
    assert s.arch_kwargs["head"] == "dldl" and s.arch_kwargs["label_range"] == RANGE
    assert s.arch_kwargs["feature_dim"] == 256  # LSH/L2 mimic the head's 256-d feature through a connector
    assert s.model(torch.zeros(2, 3, 32, 32)).shape == (2, 102)
    assert math.isfinite(s.metrics["val_mae"]) and "val_top1" not in s.metrics and "teacher_mae" in s.metrics
    rec = json.loads((tmp_path / "s.pt.metrics.jsonl").read_text().splitlines()[-1])
    assert {"kl", "l1", "kd", "l2", "lsh"} <= set(rec) and "teacher_correct" not in rec
    assert rec["loss"] == pytest.approx(rec["kl"] + rec["l1"] + rec["kd"] + rec["l2"] + rec["lsh"], rel=0.02)
    assert evaluate(out, flip=False)["mae"] == pytest.approx(s.metrics["val_mae"], rel=1e-4)
    # a student checkpoint with another label set is refused in one line
    other = Checkpoint(arch="compact_cnn_s", arch_kwargs={"num_classes": 1, "head": "dldl", "label_range": "0:50:1"},
                       state_dict={}, task="label_distribution", extra=s.extra)
    with pytest.raises(EdgekitError, match="student head dldl over 0:50:1 differs"):
        distill(dldl_teacher, other, None, tmp_path / "o.pt", method="kd", epochs=1, progress=False)


def test_one_output_teacher_has_no_distribution(tmp_path: Path) -> None:
    l1 = _l1_checkpoint()
    with pytest.raises(EdgekitError, match="one-output .* teacher has no softmax to distil with kd; use l2"):
        distill(l1, "compact_cnn_s", None, tmp_path / "kd.pt", method="lshl2+kd", epochs=1, progress=False)
    with pytest.raises(EdgekitError, match="CURL scores units by the KL.*one number.*--method l1, l2"):
        prune(l1, None, tmp_path / "p.pt", method="curl", progress=False)
    assert not list(tmp_path.iterdir())


def _masked(model: nn.Module, group, unit: int, x: torch.Tensor) -> torch.Tensor:
    """The model's output with one unit's channels zeroed at every site of its group (by hand)."""
    def zero(site):
        def hook(_m, _i, out):
            out = out.clone()
            idx = torch.tensor(site.channels[unit])
            out.index_fill_(site.dim if site.dim >= 0 else out.dim() + site.dim, idx, 0.0)
            return out
        return hook

    handles = [model.get_submodule(s.name).register_forward_hook(zero(s)) for s in group.sites]
    try:
        with torch.no_grad():
            return model(x)
    finally:
        for h in handles:
            h.remove()


def test_curl_scores_are_kl_of_label_distributions() -> None:
    """CURL's score of a unit is KL(p_masked || p_orig) over the first K columns (by hand), zero for a dead
    unit; the head's K outputs are not a unit; Taylor differentiates the label loss."""
    from edgekit.compress.curl import kl_scores
    from edgekit.compress.units import UnitGraph

    torch.manual_seed(0)
    model = create_model("compact_cnn", head="dldl", label_range="0:10:1").eval()
    with torch.no_grad():
        model.classifier.classifier.weight.mul_(1000)  # random features are tiny: scale so masks move p
    for p in model.parameters():
        p.requires_grad_(True)
    x = torch.randn(8, 3, 32, 32)
    graph = UnitGraph(model, x[:1])
    assert graph.classifier == "classifier.classifier"
    g = next(g for g in graph.groups if g.prunable and any("bn" in s.name for s in g.sites))
    dead = 3
    with torch.no_grad():  # unit 3 of g outputs 0 everywhere: masking it changes nothing
        for s in g.sites:
            mod = model.get_submodule(s.name)
            if isinstance(mod, nn.BatchNorm2d):
                mod.weight[s.channels[dead]] = 0.0
                mod.bias[s.channels[dead]] = 0.0
    task = LabelTask("0:10:1")
    scores = kl_scores(model, graph, x, progress=False, readout=curl_readout(task))
    top = int(scores[g.index].argmax())
    with torch.no_grad():
        p_o = model(x)[:, :11]
        p_m = _masked(model, g, top, x)[:, :11]
    hand = float((p_m * (p_m / p_o).log()).sum(1).mean())
    assert hand > 1e-4 and float(scores[g.index][top]) == pytest.approx(hand, rel=1e-3)
    assert abs(float(scores[g.index][dead])) < 1e-6
    raw = kl_scores(model, graph, x, progress=False)  # a softmax over [N, K+1]: not the criterion
    assert float(raw[g.index][top]) != pytest.approx(hand, rel=0.05)
    y = torch.stack([torch.linspace(0, 10, 8), torch.full((8,), 1.0)], 1)
    taylor = score_units("taylor", model, graph, x, y, label_task=task, progress=False)
    assert set(taylor) == {gr.index for gr in graph.groups if gr.prunable}
    assert all(torch.isfinite(v).all() and v.abs().sum() > 0 for v in taylor.values())


def test_curl_prune_dldl_checkpoint(dldl_teacher: Path, tmp_path: Path) -> None:
    out = tmp_path / "p.pt"
    ck = prune(dldl_teacher, None, out, target="macs=0.5", proxy_size=32, finetune_epochs=1, lr=1e-3,
               progress=False)
    teacher = load_checkpoint(dldl_teacher)
    m = ck.metrics
    assert ck.task == "label_distribution" and ck.extra == teacher.extra
    assert m["macs_ratio"] == pytest.approx(0.5, abs=0.02)
    model = load_checkpoint(out).model
    assert model.classifier.classifier.out_features == 101 and model(torch.zeros(2, 3, 32, 32)).shape == (2, 102)
    for key in ("mae_unpruned", "mae_pruned_bn", "val_mae", "val_rmse", "val_pearson"):
        assert math.isfinite(m[key]), key
    assert not any("top1" in k for k in m)
    assert m["mae_unpruned"] == pytest.approx(evaluate(teacher)["mae"], rel=1e-4)  # flip test as recorded
    assert evaluate(out)["mae"] == pytest.approx(m["val_mae"], rel=1e-4)
    assert ck.provenance["method"] == "curl"
