"""Self-supervised pretraining (S3L: SimCLR, MoCo v2, BYOL): golden losses, the views, the k-NN
probe, a real run on built-in data with its checkpoint, resume, multi-stage, DDP, fine-tuning
from it (with the frozen warm-up) and its export as an embedding model."""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from edgekit import load_checkpoint
from edgekit.errors import EdgekitError
from edgekit.pretraining.knn import knn_predict
from edgekit.pretraining.methods import get_method, list_methods, resolve_settings
from edgekit.pretraining.methods.base import cosine_ramp
from edgekit.pretraining.methods.byol import byol_loss
from edgekit.pretraining.methods.moco import info_nce
from edgekit.pretraining.methods.simclr import nt_xent

#: a small staged backbone at 8 px on 4 cluttered-free shape classes: seconds per epoch
DATA = "synthetic:classes=4,n=160,size=16"
TINY = dict(epochs=2, batch_size=16, input_size=8, progress=False, precise_bn=2)
CLI_TINY = ["--arch", "resnet18", "--data", DATA, "--batch-size", "16", "--input-size", "8", "--precise-bn", "2"]


def _edgekit(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgekit", *args], capture_output=True, text=True,
                          timeout=600, **kw)


# -- golden values ---------------------------------------------------------------------------------

def test_nt_xent_golden_value() -> None:
    """Two images whose views agree, orthogonal to each other, tau 1: every row's softmax sees its
    positive at similarity 1 and two negatives at 0: loss = log(e + 2) - 1."""
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert float(nt_xent(z, z.clone(), 1.0)) == pytest.approx(math.log(math.e + 2) - 1, abs=1e-6)
    # tau scales the similarities: at tau 0.5 the positive's logit is 2
    assert float(nt_xent(z, z.clone(), 0.5)) == pytest.approx(math.log(math.exp(2) + 2) - 2, abs=1e-6)
    # a view is never its own negative: with one image the only candidate is its positive
    assert float(nt_xent(z[:1], torch.tensor([[0.0, 3.0]]), 1.0)) == pytest.approx(0.0, abs=1e-6)


def test_info_nce_golden_value() -> None:
    q = torch.tensor([[1.0, 0.0]])
    k = torch.tensor([[1.0, 0.0]])
    queue = torch.tensor([[0.0, 1.0], [-1.0, 0.0]])
    expected = -2 + math.log(math.exp(2) + 1 + math.exp(-2))  # logits [1, 0, -1] / 0.5, positive first
    assert float(info_nce(q, k, queue, 0.5)) == pytest.approx(expected, abs=1e-6)


def test_byol_loss_and_target_decay() -> None:
    assert float(byol_loss(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 5.0]]))) == pytest.approx(2.0)
    assert float(byol_loss(torch.tensor([[2.0, 2.0]]), torch.tensor([[1.0, 1.0]]))) == pytest.approx(0.0, abs=1e-6)
    assert cosine_ramp(0.996, 0.0) == pytest.approx(0.996) and cosine_ramp(0.996, 1.0) == pytest.approx(1.0)
    assert cosine_ramp(0.996, 0.5) == pytest.approx(0.998)


def test_knn_probe_golden_votes() -> None:
    bank = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]]), dim=1)
    labels = torch.tensor([0, 0, 1, 1])
    query = torch.nn.functional.normalize(torch.tensor([[1.0, 0.05], [0.05, 1.0]]), dim=1)
    assert knn_predict(bank, labels, query, 2, k=2).tolist() == [0, 1]
    # k=3: the third neighbour's weight exp(s / T) is far smaller than the two nearest ones
    assert knn_predict(bank, labels, query, 2, k=3, temperature=0.1).tolist() == [0, 1]
    # leave-one-out on the bank itself: no point votes for itself
    odd = torch.tensor([0, 1, 1, 1])  # point 0's only like-labelled neighbour would be itself
    assert knn_predict(bank, odd, bank, 2, k=1, exclude_self=True)[0] == 1


def test_methods_registry_and_defaults() -> None:
    assert set(list_methods()) >= {"simclr", "mocov2", "byol"}
    moco = resolve_settings(get_method("mocov2"), {"temperature": None, "queue": 64})
    assert (moco.temperature, moco.queue, moco.momentum_encoder, moco.lr, moco.ref_batch) == (0.2, 64, 0.999, 0.03, 128)
    assert get_method("simclr").DEFAULTS.temperature == 0.1 and get_method("byol").DEFAULTS.proj_hidden == 4096
    with pytest.raises(EdgekitError, match="unknown self-supervised method 'swav'"):
        get_method("swav")


def test_views_are_two_random_crops_and_respect_flip_invariance() -> None:
    from PIL import Image
    from torchvision.transforms import v2 as T

    from edgekit.data import make_input_spec
    from edgekit.pretraining.views import TwoViews, view_transform

    spec = make_input_spec(16)
    img = Image.fromarray((torch.rand(32, 32, 3) * 255).byte().numpy())
    views = TwoViews(view_transform(spec))(img)
    assert views.shape == (2, 3, 16, 16) and not torch.equal(views[0], views[1])
    kinds = [type(t) for t in view_transform(spec, flip=False).transforms]
    assert T.RandomHorizontalFlip not in kinds and T.RandomResizedCrop in kinds
    assert T.RandomHorizontalFlip in [type(t) for t in view_transform(spec).transforms]


def test_pretraining_cannot_read_labels() -> None:
    from edgekit.data import load_data
    from edgekit.data.hidden import HiddenLabels

    pool = HiddenLabels(load_data(DATA).train, "pretraining")
    assert pool[3][1] == 3  # the index, not the label
    with pytest.raises(EdgekitError, match="pretraining reads no labels"):
        pool.targets


# -- a real run --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def moco_small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """MoCo v2 on resnet18 without its last stage, 8 px, 2 epochs."""
    import edgekit

    out = tmp_path_factory.mktemp("ssl") / "moco.ckpt"
    edgekit.pretrain("resnet18", DATA, out, method="mocov2", drop_last_stage=True, **TINY)
    return out


def test_pretrain_writes_an_embedding_checkpoint(moco_small: Path) -> None:
    ck = load_checkpoint(moco_small)
    ssl = ck.extra["ssl"]
    assert ck.task == "embedding" and ck.labels == [] and ck.num_outputs == 256  # layer3 of a resnet18
    assert ck.arch_kwargs == {"head": "embedding", "small_input": True, "drop_last_stage": True}
    assert not any(k.startswith(("layer4", "fc")) for k in ck.state_dict)
    assert ssl["method"] == "mocov2" and ssl["flip"] is True and ssl["settings"]["temperature"] == 0.2
    assert ssl["settings"]["queue"] == 64  # 4096 capped at half of the 128 training images
    assert ssl["heads"]["queue"].shape == (64, 128) and ssl["shuffle_bn"].startswith("split-batch")
    assert ck.data["spec"] == DATA and ck.data["val"] == 0.2
    assert ssl["lr"] == pytest.approx(0.03 * 16 / 128)  # the method's lr, scaled to the batch
    log = [json.loads(line) for line in Path(str(moco_small) + ".metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2] and all(0 <= r["val_knn_top1"] <= 100 for r in log)
    assert 0 <= ck.metrics["init_knn_top1"] <= 100 and ck.metrics["images_per_s"] > 0


def test_eval_scores_an_embedding_with_the_same_probe(moco_small: Path) -> None:
    from edgekit.evaluation import evaluate

    ck = load_checkpoint(moco_small)
    res = evaluate(ck)
    assert res["n"] == 32 and res["knn_top1"] == pytest.approx(ck.metrics["val_knn_top1"], abs=1e-6)


def test_multi_stage_continues_heads_and_queue(moco_small: Path, tmp_path: Path) -> None:
    """S3L's multi-stage: the queue and heads of the small-size run seed the larger-size run."""
    import edgekit
    from edgekit.pretraining.trainer import EXTRA_KEY, _parent

    parent = _parent(moco_small, "resnet18", edgekit.pretraining.PretrainConfig(method="mocov2", drop_last_stage=True))
    backbone = edgekit.create_model("resnet18", head="embedding", small_input=True, drop_last_stage=True)
    method = get_method("mocov2")(backbone, 256, resolve_settings(get_method("mocov2"), {"queue": 64}), 10)
    method.load_head_state(parent.extra[EXTRA_KEY]["heads"])
    assert torch.equal(method.queue, parent.extra[EXTRA_KEY]["heads"]["queue"])
    assert torch.equal(method.projector[0].weight, parent.extra[EXTRA_KEY]["heads"]["projector.0.weight"])

    out = tmp_path / "stage2.ckpt"
    ck = edgekit.pretrain("resnet18", DATA, out, method="mocov2", drop_last_stage=True, from_checkpoint=moco_small,
                          **{**TINY, "epochs": 1, "input_size": 16})
    assert [s["input_size"] for s in ck.extra["ssl"]["stages"]] == [8, 16]
    assert ck.provenance["parent_path"] == str(moco_small)
    for wrong, text in (({"method": "simclr"}, "pretrained with mocov2"), ({"drop_last_stage": False}, "drop-last-stage")):
        with pytest.raises(EdgekitError, match=text):
            edgekit.pretrain("resnet18", DATA, tmp_path / "x.ckpt", from_checkpoint=moco_small,
                             **{"method": "mocov2", "drop_last_stage": True, **TINY, **wrong})
    with pytest.raises(EdgekitError, match="pretrained resnet18, not resnet34"):
        edgekit.pretrain("resnet34", DATA, tmp_path / "x.ckpt", from_checkpoint=moco_small, method="mocov2", **TINY)
    assert not (tmp_path / "x.ckpt").exists()


def test_finetune_adds_the_dropped_stage_back_with_a_frozen_warmup(moco_small: Path, tmp_path: Path) -> None:
    import edgekit

    ck = edgekit.train("resnet18", DATA, tmp_path / "ft.pt", weights=str(moco_small), warmup_frozen=1, epochs=1,
                       batch_size=16, input_size=8, progress=False, precise_bn=2)
    warm = ck.provenance["warmup_frozen"]
    assert warm["epochs"] == 1 and warm["trained"] == ["fc", "layer4"] and "val_top1" in warm
    ssl = load_checkpoint(moco_small).state_dict
    # the warm-up froze the pretrained layers; the main epochs then trained them: they moved, layer4 is new
    assert not torch.equal(ck.state_dict["conv1.weight"], ssl["conv1.weight"])
    assert ck.metrics["val_top1"] >= 0
    # a backbone that does not fit is refused whole, not loaded in part
    with pytest.raises(EdgekitError, match="pretrained resnet18 backbone .* does not fit"):
        edgekit.train("resnet34", DATA, tmp_path / "bad.pt", weights=str(moco_small), epochs=1, batch_size=16,
                      input_size=8, progress=False)
    with pytest.raises(EdgekitError, match="--warmup-frozen trains the layers that pretrained --weights lack"):
        edgekit.train("resnet18", DATA, tmp_path / "bad.pt", warmup_frozen=1, epochs=1, input_size=8, progress=False)


def test_embedding_exports_with_parity(moco_small: Path, tmp_path: Path) -> None:
    import edgekit

    res = edgekit.export(moco_small, ["onnx"], output_dir=tmp_path / "exp", precision=["fp32", "int8"],
                         calib_size=32, parity_size=32)
    manifest = json.loads((tmp_path / "exp" / "manifest.json").read_text())
    rows = manifest["artifacts"]
    assert {r["precision"] for r in rows} == {"fp32", "int8"} and len(res) == 2
    for row in rows:
        assert row["task"] == "embedding" and row["parity"]["passed"]
        assert row["output_layout"] == {"embedding": {"columns": [0, 256]}, "similarity": "cosine"}
        assert row["outputs"][0]["shape"][-1] == 256 and "top1_agreement" not in row["parity"]
    fp32 = next(r for r in rows if r["precision"] == "fp32")
    assert fp32["parity"]["cosine"] > 0.9999


@pytest.mark.parametrize("method", ["simclr", "byol"])
def test_simclr_and_byol_run(method: str, tmp_path: Path) -> None:
    import edgekit

    ck = edgekit.pretrain("resnet18", DATA, tmp_path / f"{method}.ckpt", method=method,
                          **{**TINY, "epochs": 1, "proj_hidden": 64})
    assert ck.num_outputs == 512 and ck.extra["ssl"]["method"] == method
    assert math.isfinite(ck.metrics["loss"]) and "val_knn_top1" in ck.metrics
    if method == "byol":
        assert "predictor.0.weight" in ck.extra["ssl"]["heads"] and "target_backbone.conv1.weight" in ck.extra["ssl"]["heads"]


def test_pretrain_on_clips_uses_their_frames(tmp_path: Path) -> None:
    import edgekit

    ck = edgekit.pretrain("resnet18", "gestures:n=48,frames=4,size=16", tmp_path / "g.ckpt", method="simclr",
                          **{**TINY, "epochs": 1, "proj_hidden": 32})
    assert ck.input_spec["shape"] == [3, 8, 8] and ck.extra["ssl"]["flip"] is False  # gestures: not flip invariant
    assert "val_knn_top1" in ck.metrics


def test_kill_then_resume(tmp_path: Path) -> None:
    out = tmp_path / "r.ckpt"
    args = ["pretrain", "--method", "simclr", *CLI_TINY, "--proj-hidden", "32", "--epochs", "4", "-o", str(out)]
    proc = subprocess.Popen([sys.executable, "-m", "edgekit", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and not Path(str(out) + ".resume").exists():
        time.sleep(0.2)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    res = _edgekit(*args, "--resume")
    assert res.returncode == 0, res.stderr
    assert "k-NN top-1" in res.stdout
    epochs = [json.loads(line)["epoch"] for line in Path(str(out) + ".metrics.jsonl").read_text().splitlines()]
    assert sorted(set(epochs)) == [1, 2, 3, 4]
    assert load_checkpoint(out).metrics["epoch"] == 4 and not Path(str(out) + ".resume").exists()


@pytest.mark.slow
def test_ddp_two_processes_gather_negatives(tmp_path: Path) -> None:
    out = tmp_path / "ddp.ckpt"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                          "29541", "-m", "edgekit", "pretrain", "--method", "simclr", *CLI_TINY, "--proj-hidden", "32",
                          "--epochs", "1", "-o", str(out)], capture_output=True, text=True, timeout=600, env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    ck = load_checkpoint(out)
    assert ck.metrics["ddp"] == {"world_size": 2, "ranks_agree": True} and ck.extra["ssl"]["world_size"] == 2


@pytest.mark.parametrize("args,text", [
    (["--method", "simclr", "--batch-size", "1"], "too small for simclr: NT-Xent needs another image"),
    (["--arch", "compact_cnn", "--drop-last-stage"], "compact_cnn has no stages to drop"),
    (["--data", "sklearn:iris"], "holds feature vectors"),
    (["--data", "synthetic:classes=2,n=10"], "fewer than one batch of 16"),
    (["--momentum-encoder", "1"], "--momentum-encoder"),
    (["--knn-k", "0"], "--knn-k"),
    (["--from", "{tmp}/missing.ckpt"], "not found"),
])
def test_bad_input_is_one_line(args: list[str], text: str, tmp_path: Path) -> None:
    base = ["--arch", "resnet18", "--data", DATA, "--batch-size", "16", "--input-size", "8", "--epochs", "1",
            "-o", str(tmp_path / "x.ckpt")]
    full = base + [a.format(tmp=tmp_path) for a in args]
    for flag in ("--arch", "--data"):  # a later value of an option wins in click: drop the base's
        if flag in args:
            i = full.index(flag)
            del full[i:i + 2]
    res = _edgekit("pretrain", *full)
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert res.returncode == 2 and len(lines) == 1 and text in lines[0], res.stderr
    assert not (tmp_path / "x.ckpt").exists()


def test_cli_pretrain_good_call(tmp_path: Path) -> None:
    out = tmp_path / "ssl.ckpt"
    res = _edgekit("pretrain", "--method", "byol", *CLI_TINY, "--proj-hidden", "32", "--epochs", "1", "-o", str(out))
    assert res.returncode == 0, res.stderr
    assert "byol resnet18 embedding of 512: k-NN top-1" in res.stdout and out.is_file()
    info = _edgekit("info", str(out))
    assert "task         embedding" in info.stdout
