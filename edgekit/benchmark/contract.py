"""The architecture contract: every registered image architecture through the whole pipeline.

At 32 px with 4 classes: **build** (forward, and the declared layout agrees with what hooks
find) -> **train** (one batch of ``edgekit train``, in training mode: auxiliary heads would surface
here) -> **prune** (L1 to 50 % MACs, no fine-tuning) -> **rebuild** (the pruned checkpoint rebuilt
from its channel plan in a fresh Python process, outputs equal) -> **export** (ONNX through the
parity gate), as timm parametrizes its tests over ``list_models``.

:func:`run_contract` yields one (stage, status, detail) per stage; ``tests/test_contract.py``
asserts on it (known failures ``xfail``, :data:`SLOW` ones marked slow) and
``benchmarks/contract_matrix.py`` prints the same stages as a matrix. It lives in the package so
both import it from here.
"""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import torch
from torch import nn

from ..registry import create_model, get_entry, list_models
from ..models.tabular import takes_features

DATA = "synthetic:classes=4,n=60"
SIZE = 32
STAGES = ("build", "train", "prune", "rebuild", "export")
#: where the fresh rebuild process starts (the folder holding the ``edgekit`` package)
ROOT = Path(__file__).resolve().parents[2]

#: torchvision families the contract covers (the default suite runs those not in SLOW)
TORCHVISION = ("resnet18", "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_b0",
               "regnet_x_400mf", "regnet_y_400mf", "mnasnet0_5", "shufflenet_v2_x1_0", "densenet121",
               "convnext_tiny", "squeezenet1_1", "vgg11_bn", "googlenet")
SLOW = {"mobilenet_v3_large", "efficientnet_b0", "regnet_x_400mf", "densenet121", "convnext_tiny", "vgg11_bn"}

#: architecture -> (stage that fails, reason): the documented refusals
KNOWN_FAILURES = {
    "shufflenet_v2_x1_0": ("prune", "channel shuffle (view-transpose-view) permutes channels across branches; "
                                    "Torch-Pruning's dependency graph cannot follow it, so prune refuses"),
}


def architectures() -> list[str]:
    """edgekit's own image nets (every one registered) and the torchvision families above (the
    tabular nets, which take feature vectors, have their contract in test_tabular.py)."""
    own = [n for n in list_models() if get_entry(n).source == "edgekit" and not takes_features(get_entry(n).factory)]
    return own + list(TORCHVISION)


def _check_layout(model: nn.Module, x: torch.Tensor) -> str:
    """The declared feature module's output (pooled) is the declared classifier's input."""
    from edgekit.compress.features import FeatureTap
    from edgekit.models.layout import layout_of

    layout = layout_of(model)
    seen: dict[str, torch.Tensor] = {}
    clf = model.get_submodule(layout.classifier)
    handle = clf.register_forward_pre_hook(lambda m, i: seen.__setitem__("input", i[0]))
    with FeatureTap(model, tuple(x.shape)) as tap, torch.no_grad():
        model(x)
    handle.remove()
    inp = seen["input"]
    want = inp.mean(dim=(2, 3)) if inp.dim() == 4 else inp.flatten(1)
    assert tap.feature is not None and torch.allclose(tap.feature, want), "declared feature != classifier input"
    return f"classifier {layout.classifier}, feature {layout.feature or '(classifier input)'}, stem {layout.stem}"


_REBUILD = """
import sys, torch
from edgekit.checkpoint import load_checkpoint
ckpt = load_checkpoint(sys.argv[1])
io = torch.load(sys.argv[2], weights_only=True)
with torch.no_grad():
    out = ckpt.model(io["x"])
assert torch.allclose(out, io["y"], atol=1e-5, rtol=1e-4), float((out - io["y"]).abs().max())
print("ok", sum(p.numel() for p in ckpt.model.parameters()))
"""


def _start_rebuild(path: Path, workdir: Path) -> subprocess.Popen:
    """Start rebuilding checkpoint ``path`` in a fresh Python process (it runs while the parent exports)."""
    from edgekit.checkpoint import load_checkpoint

    ckpt = load_checkpoint(path)
    x = torch.randn(3, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y = ckpt.model(x)
    io = workdir / "io.pt"
    torch.save({"x": x, "y": y}, io)
    return subprocess.Popen([sys.executable, "-c", _REBUILD, str(path), str(io)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)


def _rebuilt(proc: subprocess.Popen) -> str:
    out, err = proc.communicate(timeout=300)
    if proc.returncode != 0:
        raise AssertionError("fresh-process rebuild failed: " + (err.strip().splitlines() or ["?"])[-1])
    return f"outputs equal in a fresh process ({out.split()[-1]} params)"


def run_contract(arch: str, workdir: Path) -> Iterator[tuple[str, str, str]]:
    """Run the pipeline on ``arch``; yield ``(stage, "pass" | "fail" | "skip", detail)`` per stage.

    A failed stage ends the run, except a refused prune: rebuild and export then run on
    the trained (unpruned) checkpoint, so the matrix shows they work."""
    from edgekit.compress.prune import prune
    from edgekit.exporters.pipeline import export
    from edgekit.training.trainer import train

    def attempt(stage: str, fn) -> tuple[bool, str, object]:
        t0 = time.perf_counter()
        try:
            value = fn()
        except Exception as exc:  # the matrix records every failure with its reason
            return False, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300], None
        return True, f"{value if isinstance(value, str) else ''} [{time.perf_counter() - t0:.1f}s]".strip(), value

    def build() -> str:
        small = get_entry(arch).default_input >= 128
        model = create_model(arch, num_classes=4, small_input=small).eval()
        x = torch.randn(2, 3, SIZE, SIZE)
        with torch.no_grad():
            out = model(x)
        assert isinstance(out, torch.Tensor) and out.shape == (2, 4), f"output {type(out).__name__}"
        return _check_layout(model, x)

    trained, pruned = workdir / "trained.pt", workdir / "pruned.pt"

    def train_step() -> str:
        # 60 images, 20 % validation: 48 training images, one batch of 48 in training mode
        ckpt = train(arch, DATA, trained, epochs=1, batch_size=48, lr=0.01, progress=False, force=True)
        return f"loss {ckpt.metrics.get('loss', float('nan')):.3f}"

    def prune_step() -> str:
        child = prune(trained, DATA, pruned, method="l1", target="macs=0.5", finetune_epochs=0, proxy_size=16,
                      progress=False, force=True)
        ratio = child.metrics["macs_ratio"]
        assert ratio <= 0.5 * 1.02, f"MACs ratio {ratio:.3f}"
        return f"MACs x{ratio:.3f}"

    def export_step(path: Path) -> str:
        records = export(path, "onnx", output_dir=workdir / "onnx", parity_size=16, force=True)
        parity = records[0]["parity"]
        return "parity " + ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                                     for k, v in parity.items() if k in ("max_abs_err", "top1_agreement", "passed"))

    ok, detail, _ = attempt("build", build)
    yield "build", "pass" if ok else "fail", detail
    if not ok:
        return
    ok, detail, _ = attempt("train", train_step)
    yield "train", "pass" if ok else "fail", detail
    if not ok:
        return
    ok, detail, _ = attempt("prune", prune_step)
    yield "prune", "pass" if ok else "fail", detail
    target = pruned if ok else trained
    note = "" if ok else " (unpruned: prune refused)"
    ok, detail, proc = attempt("rebuild", lambda: _start_rebuild(target, workdir))
    export_result = attempt("export", lambda: export_step(target))  # meanwhile, in this process
    if ok:
        ok, detail, _ = attempt("rebuild", lambda: _rebuilt(proc))
    yield "rebuild", "pass" if ok else "fail", detail + note
    if not ok:
        return
    ok, detail, _ = export_result
    yield "export", "pass" if ok else "fail", detail + note
