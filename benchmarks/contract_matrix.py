"""The contract matrix: every architecture of ``tests/test_contract.py`` x build/train/prune/rebuild/export.

Runs the same stages as the contract test (:func:`edgekit.benchmark.contract.run_contract`, at 32 px,
4 synthetic classes, L1 to 50 % MACs, a fresh-process rebuild, ONNX with the parity
gate), slow architectures included, and writes ``benchmarks/contract_matrix.md``: one
row per architecture, pass/fail per stage with the reason, and the known failures the
test marks ``xfail``. Usage::

    python benchmarks/contract_matrix.py [ARCH ...]
"""
from __future__ import annotations

import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

from edgekit.models import contract as tc

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "contract_matrix.md"


def _cell(status: str, detail: str) -> str:
    mark = {"pass": "pass", "fail": "**FAIL**"}.get(status, status)
    return f"{mark}<br><sub>{detail.replace('|', '/')}</sub>" if detail else mark


def main(argv: list[str]) -> int:
    archs = argv or tc.architectures()
    torch.set_num_threads(2)
    rows, t_all = [], time.perf_counter()
    for arch in archs:
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            results = {stage: (status, detail) for stage, status, detail in tc.run_contract(arch, Path(tmp))}
        seconds = time.perf_counter() - t0
        cells = [_cell(*results[s]) if s in results else "not run" for s in tc.STAGES]
        known = tc.KNOWN_FAILURES.get(arch)
        tier = "slow" if arch in tc.SLOW else "default"
        rows.append(f"| {arch} | {tier} | " + " | ".join(cells) + f" | {seconds:.0f}s | "
                    + (f"xfail at {known[0]}: {known[1]}" if known else "") + " |")
        print(arch, {s: r[0] for s, r in results.items()}, f"{seconds:.0f}s", flush=True)
    lines = [
        "# Contract matrix",
        "",
        "Every edgekit architecture and the torchvision families of `tests/test_contract.py`, through "
        "**build** (forward at 32 px; the registry's declared feature is the declared classifier's input) -> "
        "**train** (`edgekit train`, one batch of 48 synthetic images, 4 classes) -> **prune** (L1 to 50 % "
        "MACs, no fine-tuning) -> **rebuild** (the pruned checkpoint rebuilt from its channel plan in a fresh "
        "Python process, outputs equal) -> **export** (ONNX, parity gate on 16 validation images). Where prune "
        "refuses, rebuild and export run on the trained (unpruned) checkpoint. The rebuild process runs while "
        "the export does, so its time is only the wait after the export. `default` rows run in the default "
        "test suite, `slow` ones with `-m slow`.",
        "",
        "What made the torchvision families go through (each pinned by its own test as well):",
        "",
        "* **googlenet** (and inception_v3): the registry builds them with `aux_logits=False, init_weights=True`; "
        "in training mode they returned `GoogLeNetOutputs` (auxiliary heads), which the loss refused.",
        "* **mnasnet0_5**: checkpoints keep the state dict's per-module `_metadata` versions, and a state dict "
        "without them is loaded with the versions of the model's code; torchvision's MNASNet refused weights "
        "without a version (`version should be set to 1 or 2 instead of None`).",
        "* **regnet_x_400mf / regnet_y_400mf**: grouped convolutions are pruned by channel position (the same "
        "channels in every conv group, `groups` unchanged) instead of being held fixed; 50 % MACs is reached.",
        "* **shufflenet_v2_x1_0**: refused with one line (`EdgekitError: cannot trace ShuffleNetV2 for pruning: a "
        "reshape permutes its channels (a channel shuffle ...)`); Torch-Pruning's index mapping cannot follow a "
        "channel shuffle (upstream VainF/Torch-Pruning#14).",
        "* **convnext_tiny**: the ONNX exporter traced a batch-1 sample with a dynamic batch dimension and "
        "torch.export specialized ConvNeXt's batch to 1 (its 0/1 specialization), so export failed; the exporter "
        "now traces a batch of 2 when the batch is dynamic.",
        "",
        f"Command: `python benchmarks/contract_matrix.py`; {time.strftime('%Y-%m-%d')}, torch {torch.__version__}, "
        f"{platform.machine()} CPU, 2 threads, shared machine (times include contention); "
        f"total {time.perf_counter() - t_all:.0f}s.",
        "",
        "| architecture | suite | " + " | ".join(tc.STAGES) + " | time | known failure |",
        "|---" * (len(tc.STAGES) + 4) + "|",
        *rows,
        "",
    ]
    if not argv:
        OUT.write_text("\n".join(lines))
        print("wrote", OUT)
    else:
        print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
