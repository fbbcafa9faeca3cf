"""Trainer: learns, resumes after a kill, and runs DDP with 2 CPU processes (gloo), on images and on clips."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgekit import load_checkpoint
from edgekit.evaluation import evaluate

SMALL = ["--arch", "compact_cnn", "--arch-arg", "width_mult=0.5", "--data", "synthetic:classes=4,n=200",
         "--batch-size", "16", "--device", "cpu"]
#: a causal TSM on built-in gesture clips (4 of 8 frames): the clip path through the same trainer
CLIPS = ["--arch", "tsm_compact_cnn", "--arch-arg", "width_mult=0.5", "--shift", "causal", "--frames", "4",
         "--data", "gestures:n=110,frames=8", "--batch-size", "16", "--device", "cpu"]
#: (arguments, data spec, validation items of that spec)
RUNS = {"images": (SMALL, "synthetic:classes=4,n=200", 40), "clips": (CLIPS, "gestures:n=110,frames=8", 22)}


def _edgekit(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgekit", *args], capture_output=True, text=True,
                          timeout=600, **kw)


def test_digits_checkpoint_learns(digits_ckpt: Path) -> None:
    ck = load_checkpoint(digits_ckpt)
    res = evaluate(ck, "digits")
    assert res["top1"] > 40.0, res  # 10 classes: chance is 10 %
    assert res["top1"] == pytest.approx(ck.metrics["val_top1"], abs=1e-6)
    log = [json.loads(line) for line in Path(str(digits_ckpt) + ".metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2] and all("images_per_s" in r and "val_top1" in r for r in log)


@pytest.mark.parametrize("kind", list(RUNS))
def test_kill_then_resume_finishes_the_run(tmp_path: Path, kind: str) -> None:
    args = RUNS[kind][0]
    out = tmp_path / "run.pt"
    metrics = Path(str(out) + ".metrics.jsonl")
    proc = subprocess.Popen([sys.executable, "-m", "edgekit", "train", *args, "--epochs", "4", "-o", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if Path(str(out) + ".resume").exists():
            break
        time.sleep(0.2)
    assert proc.poll() is None, "the run finished before it could be killed; make it longer"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(metrics.read_text().splitlines())
    assert 1 <= done_before < 4
    assert load_checkpoint(out).metrics["epoch"] >= 1  # the last complete epoch is on disk

    res = _edgekit("train", *args, "--epochs", "4", "-o", str(out), "--resume")
    assert res.returncode == 0, res.stderr
    assert "epoch 1/4" not in res.stdout + res.stderr, "resume must not restart from epoch 1"
    epochs = [json.loads(line)["epoch"] for line in metrics.read_text().splitlines()]
    assert sorted(set(epochs)) == [1, 2, 3, 4] and epochs[-1] == 4
    ck = load_checkpoint(out)
    assert ck.metrics["epoch"] == 4
    assert not Path(str(out) + ".resume").exists()
    if kind == "clips":
        assert ck.input_spec["frames"] == 4 and ck.arch == "tsm_compact_cnn"
    again = _edgekit("train", *args, "--epochs", "4", "-o", str(out), "--resume")
    assert again.returncode == 2 and "nothing to resume" in again.stderr


@pytest.mark.parametrize("kind", list(RUNS))
def test_ddp_two_cpu_processes_agree(tmp_path: Path, kind: str) -> None:
    args, spec, n_val = RUNS[kind]
    out = tmp_path / "ddp.pt"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                          "--master_port", str(29517 + list(RUNS).index(kind)), "-m", "edgekit", "train", *args, "--epochs", "1",
                          "-o", str(out)], capture_output=True, text=True, timeout=600, env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    ck = load_checkpoint(out)
    assert ck.metrics["ddp"] == {"world_size": 2, "ranks_agree": True}
    assert ck.provenance["world_size"] == 2
    assert evaluate(ck, spec)["n"] == n_val


@pytest.mark.gpu
def test_cuda_amp_channels_last_training(tmp_path: Path) -> None:
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU on this machine")
    from edgekit.training.trainer import train

    # 2 epochs of 160 images (4 SGD steps) stayed at chance on CPU as well; this learns (100 % on CPU)
    ck = train("compact_cnn", "synthetic:classes=4,n=400", tmp_path / "gpu.pt", epochs=6, batch_size=32,
               device="cuda", progress=False)
    assert ck.metrics["val_top1"] > 60.0
    assert all(t.device.type == "cpu" for t in ck.state_dict.values())  # saved on CPU, loads anywhere


def test_csv_regression_trains_and_reports_mae(tmp_path: Path) -> None:
    import numpy as np
    from PIL import Image

    from edgekit.training.trainer import train

    rng = np.random.default_rng(0)
    rows = ["path,target"]
    for i in range(48):
        level = int(rng.integers(0, 255))
        Image.fromarray(np.full((16, 16, 3), level, np.uint8)).save(tmp_path / f"{i}.png")
        rows.append(f"{i}.png,{level / 255 * 10:.3f}")  # target: brightness on a 0..10 scale
    (tmp_path / "b.csv").write_text("\n".join(rows) + "\n")
    ck = train("compact_cnn", f"csv:{tmp_path / 'b.csv'}", tmp_path / "r.pt", epochs=1, input_size=16,
               batch_size=16, progress=False, arch_kwargs={"width_mult": 0.5})
    assert ck.task == "regression" and ck.num_outputs == 1
    res = evaluate(ck, f"csv:{tmp_path / 'b.csv'}")
    assert res["n"] == 10 and res["mae"] >= 0 and res["rmse"] >= res["mae"]


def _first_bn_input_mean(model, loader) -> "torch.Tensor":
    """Per-channel mean of what the first BatchNorm sees over ``loader`` (eval mode: BN does not change it)."""
    import torch
    from torch import nn

    bn = next(m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm))
    sums: list = []
    handle = bn.register_forward_hook(lambda m, i, o: sums.append(i[0].mean((0, 2, 3))))
    model.eval()
    with torch.no_grad():
        for x, _ in loader:
            model(x)
    handle.remove()
    return bn, torch.stack(sums).mean(0)


def test_precise_bn_replaces_stale_running_statistics(tmp_path: Path) -> None:
    """MobileNetV3's BN momentum is 0.01: after 2 short epochs its running means still sit near their
    initial zeros. Precise BN (the default) leaves the training data's statistics in the checkpoint."""
    from edgekit.training.trainer import train

    data = "synthetic:classes=4,n=160"  # 128 training images: two batches of 64
    stale = train("mobilenet_v3_small", data, tmp_path / "stale.pt", epochs=2, precise_bn=0, progress=False)
    fresh = train("mobilenet_v3_small", data, tmp_path / "fresh.pt", epochs=2, progress=False)
    for ck, close in ((stale, False), (fresh, True)):
        loader = ck.load_data().loader("train", ck.eval_transform, 64)
        bn, truth = _first_bn_input_mean(ck.model, loader)
        assert bn.momentum == 0.01
        err = float((bn.running_mean - truth).abs().max() / truth.abs().max())
        assert (err < 1e-3) if close else (err > 0.3), (ck.path, err)
    info = fresh.metrics["precise_bn"]
    assert info["images"] == 128 and fresh.metrics["val_top1"] == info["after"]["top1"]
    assert "precise_bn" not in stale.metrics
    log = [json.loads(line) for line in Path(str(tmp_path / "fresh.pt") + ".metrics.jsonl").read_text().splitlines()]
    assert "precise_bn" in log[-1] and "precise_bn" not in log[0]


def test_finished_train_leaves_only_checkpoint_and_log(tmp_path: Path) -> None:
    out = tmp_path / "run.pt"
    res = _edgekit("train", *SMALL, "--epochs", "2", "-o", str(out))
    assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.pt", "run.pt.metrics.jsonl"]
    assert "precise BN" in res.stdout


@pytest.mark.parametrize("options,text", [
    ({"input_size": 0}, "input_size must be a positive integer"), ({"epochs": -1}, "epochs"),
    ({"lr": float("nan")}, "lr must be a finite number"), ({"batch_size": 0}, "batch_size"),
    ({"labeled_fraction": 0.0}, "labeled_fraction"), ({"labeled_fraction": float("nan")}, "labeled_fraction"),
    ({"train_fraction": 0.5}, "unknown train option 'train_fraction'"), ({"precise_bn": -1}, "precise_bn"),
    ({"label_smoothing": 1.0}, "label_smoothing"), ({"optimizr": "sgd"}, "did you mean optimizer"),
])
def test_train_api_rejects_bad_numbers_before_writing(tmp_path: Path, options: dict, text: str) -> None:
    from edgekit.errors import EdgekitError
    from edgekit.training.trainer import train

    with pytest.raises(EdgekitError, match=text):
        train("compact_cnn", "digits", tmp_path / "x.pt", progress=False, **options)
    assert not any(tmp_path.iterdir())
