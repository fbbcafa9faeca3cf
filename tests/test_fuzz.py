"""Fuzz suite: every ``edgekit`` command under the classes of bad input a tester found crashing it.

Each case is one bad invocation (exactly one thing wrong; every other argument valid or cheap) and
must end like every other error of edgekit: a non-zero exit, exactly one non-empty stderr line that
is a diagnosis (``edgekit: error: ...``, not the backstop's ``internal error`` that means a bug), no
traceback, every input file byte for byte unchanged, nothing new written anywhere (the output path
included) and no marker file made by a code-execution vector (a crafted checkpoint whose
architecture is an import path, a pickle payload, a YAML ``!!python`` tag).

Importing torch costs seconds per process, so the cases run in batches inside one helper
interpreter (this file run as a script) through the console script's own entry point,
``edgekit.cli.main.main(args, prog_name="edgekit")``, with stdout/stderr captured at the file
descriptor (logging, warnings and child processes included), warnings' once-registries and logging
reset between cases, an uncaught exception printed as the interpreter would (traceback, exit 1) and
the return value turned into the exit status as the console script does. A few cases also run as real
``python -m edgekit`` processes and must give the same exit status and stderr as in the batch.

The classes: output path read-only / an existing file / a file as its folder / ``''`` / the input
itself; checkpoints missing a key, with a negative input size, an import-path architecture
(``logging:basicConfig``, ``torch.hub:load`` of a local hubconf), truncated, random bytes, pickle
payloads, a broken CRC; a binary profile; recipes with python tags, a list, broken YAML; ``--resume``
from a truncated file; an unpayable batch size; a one-class image folder; ``--lr 1e30``;
all-NaN tabular features; a 10-class model on a 1-class folder; ``distill --method kd+``;
``export --opset 999`` and ``--target onnx --nhwc``; ``bench --data nosuch:x``; ``report`` on NaN
results; huge ``--epochs``; and every zero, negative, NaN and inf on every numeric option of every
command (read from the click group, so a new option is fuzzed automatically).
"""
from __future__ import annotations

import hashlib
import io
import json
import re
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve()
CASE_TIMEOUT_S = 45  # one case; a bad input must be refused long before this
HUGE = "99999999999999999999"
F = "{F}"  # placeholder for the folder of crafted inputs, filled in at run time
CKPT = "{F}/model.pt"  # a real 10-class digits checkpoint (copy of conftest's digits_ckpt)
CORRUPT = "{F}/corrupt.pt"
OUT = "{F}/out"  # an existing, empty folder where outputs would go


# --------------------------------------------------------------------------------------------
# The cases
# --------------------------------------------------------------------------------------------

def _commands() -> dict[str, Any]:
    from edgekit.cli import main

    return dict(main.commands)


# Cheap but valid settings per command, so a bad output path or file is the only thing wrong and a
# command that does not check early still ends within the case timeout.
CHEAP = {
    "train": ["--arch", "compact_cnn", "--data", "digits", "--epochs", "1", "--precise-bn", "0"],
    "prune": ["--finetune-epochs", "0", "--proxy-size", "16", "--precise-bn", "0", "--target", "macs=0.5"],
    "distill": ["--student", "compact_cnn_s", "--epochs", "1", "--precise-bn", "0"],
    "export": ["-t", "onnx", "--calib-size", "8", "--parity-size", "8"],
    "optimize": ["--budget", "1000ms@onnxruntime", "--ratios", "0.5", "--refine", "0", "--recovery-epochs", "0",
                 "--proxy-size", "16", "--calib-size", "8", "--parity-size", "8", "--min-seconds", "0.01"],
    "bench": ["--runtime", "torch", "--runs", "2", "--warmup", "0"],
    "pretrain": ["--arch", "resnet18", "--data", "digits", "--epochs", "1", "--precise-bn", "0", "--input-size", "8",
                 "--batch-size", "16", "--proj-hidden", "16"],
}

# Per command: arguments that fail only after parsing (a corrupt checkpoint, an unknown
# architecture), so a numeric option's value is what must be refused, by name, before them.
LATE_FAIL = {
    "train": ["--arch", "no_such_arch_zz", "--data", "digits", "-o", f"{OUT}/x.pt"],
    "eval": [CORRUPT, "--streaming"],
    "quickstart": ["-o", "{F}/nonempty"],
    "distill": ["--teacher", CORRUPT, "--student", "compact_cnn_s", "-o", f"{OUT}/x.pt"],
    "bench": [CORRUPT],
    "report": [CORRUPT, "-o", f"{OUT}/rep"],
    "export": [CORRUPT, "-o", f"{OUT}/exp"],
    "verify": [CORRUPT, "--checkpoint", CORRUPT],
    "prune": [CORRUPT, "-o", f"{OUT}/x.pt"],
    "optimize": [CORRUPT, "--budget", "1ms@onnxruntime", "-o", f"{OUT}/opt"],
    "run": ["{F}/broken.yaml", "-o", f"{OUT}/run"],
    "demo": ["--model", CORRUPT],
    "info": [CORRUPT],
    "zoo": ["--filter", "resnet18"],
    "pretrain": ["--arch", "no_such_arch_zz", "--data", "digits", "-o", f"{OUT}/x.ckpt"],
}

# Values no numeric option accepts, and zero where the option wants a positive number.
_ALWAYS_BAD = ["-1", "nan", "inf", "-inf"]


def _numeric_bad_values(param: Any) -> list[str]:
    """The bad values for one numeric option, from its declared type (0 only where it must be > 0,
    1.5 where it must be a fraction)."""
    name = getattr(param.type, "name", "")
    values = list(_ALWAYS_BAD)
    if name in ("INTEGER>=1", "NUMBER>0", "FRACTION", "integer range", "float range") or \
            name.lower() in ("integer", "float"):
        values.insert(0, "0")
    if name in ("FRACTION", "[0,1]"):
        values.append("1.5")
    return values


def _is_numeric(param: Any) -> bool:
    import click

    from edgekit.numbers import Checked

    return isinstance(param, click.Option) and not param.is_flag and \
        isinstance(param.type, (Checked, click.types.IntParamType, click.types.FloatParamType))


def number_cases() -> list[dict[str, Any]]:
    """Every numeric option of every command x its bad values; the one line must name the option."""
    cases = []
    for name, cmd in sorted(_commands().items()):
        for param in cmd.params:
            if not _is_numeric(param):
                continue
            opt = max(param.opts, key=len)
            for value in _numeric_bad_values(param):
                cases.append({"id": f"num-{name}-{opt}={value}", "args": [name, *LATE_FAIL[name], opt, value],
                              "names": opt})
    return cases


def _case(cid: str, *args: str, names: str | None = None, marker: str | None = None,
          out: str | None = None) -> dict[str, Any]:
    return {"id": cid, "args": list(args), "names": names, "marker": marker, "out": out}


# Crafted checkpoints (made in the fixture) and the commands that read a checkpoint, with the
# rest of their arguments; {X} is the crafted file.
CRAFTED = ["missing_task", "missing_arch", "negative_input", "arch_logging", "arch_hub", "truncated",
           "random", "pickle_payload", "raw_pickle", "crc_broken", "state_not_dict", "empty"]
MARKERS = {"arch_logging": "{F}/marker_logging", "arch_hub": "{F}/marker_hub",
           "pickle_payload": "{F}/marker_pickle", "raw_pickle": "{F}/marker_raw_pickle"}
READERS = {
    "info": ["info", "{X}"],
    "info-json": ["info", "{X}", "--json"],
    "eval": ["eval", "{X}", "--data", "digits"],
    "export": ["export", "{X}", "-o", f"{OUT}/exp", *CHEAP["export"]],
    "prune": ["prune", "{X}", "-o", f"{OUT}/x.pt", "--data", "digits", *CHEAP["prune"]],
    "distill-teacher": ["distill", "--teacher", "{X}", "-o", f"{OUT}/x.pt", "--data", "digits", *CHEAP["distill"]],
    "distill-student": ["distill", "--teacher", CKPT, "--student", "{X}", "-o", f"{OUT}/x.pt", "--epochs", "1",
                        "--precise-bn", "0"],
    "verify": ["verify", "{F}/model.onnx", "--checkpoint", "{X}", "-n", "8"],
    "optimize": ["optimize", "{X}", "-o", f"{OUT}/opt", "--data", "digits", *CHEAP["optimize"]],
    "bench": ["bench", "{X}", *CHEAP["bench"]],
    "train-weights": ["train", *CHEAP["train"], "--weights", "{X}", "-o", f"{OUT}/x.pt"],
    "pretrain-from": ["pretrain", *CHEAP["pretrain"], "--from", "{X}", "-o", f"{OUT}/x.ckpt"],
}


# Readers that start a worker process or load data before the file (seconds per case) get the
# kinds that matter to them; the others get every crafted file.
SLOW_READERS = {"bench": {"arch_logging", "pickle_payload", "truncated", "negative_input"},
                "train-weights": {"pickle_payload", "raw_pickle", "truncated", "random", "state_not_dict"},
                "distill-student": {"arch_logging", "arch_hub", "missing_arch", "negative_input", "pickle_payload"}}


def crafted_cases() -> list[dict[str, Any]]:
    cases = []
    for kind in CRAFTED:
        for reader, args in READERS.items():
            if kind not in SLOW_READERS.get(reader, {kind}):
                continue
            cases.append(_case(f"ckpt-{kind}-{reader}", *[a.replace("{X}", f"{{F}}/{kind}.pt") for a in args],
                               marker=MARKERS.get(kind)))
    return cases


# Output paths: (id, path) for a file output and for a folder output.
_RO = "{RO}"  # a folder this process cannot write (chmod 555, or /sys/fs as root)
FILE_OUTS = [("readonly", f"{_RO}/x.pt"), ("existing", "{F}/existing.pt"), ("file-as-folder", "{F}/existing.pt/x.pt"),
             ("empty", ""), ("is-folder", "{F}/nonempty")]
DIR_OUTS = [("readonly", f"{_RO}/d"), ("existing-file", "{F}/existing.pt"), ("file-as-folder", "{F}/existing.pt/d"),
            ("empty", "")]


def output_cases() -> list[dict[str, Any]]:
    cases = []
    writers = {  # command -> (args before the output, the output option, file or folder, args after)
        "train": (["train", *CHEAP["train"]], "-o", "file"),
        "pretrain": (["pretrain", *CHEAP["pretrain"]], "-o", "file"),
        "prune": (["prune", CKPT, *CHEAP["prune"]], "-o", "file"),
        "distill": (["distill", "--teacher", CKPT, *CHEAP["distill"]], "-o", "file"),
        "eval-json": (["eval", CKPT, "--data", "digits"], "--json", "file"),
        "bench": (["bench", CKPT, *CHEAP["bench"]], "-o", "file"),
        "report": (["report", "{F}/results.json"], "-o", "dir"),
        "export": (["export", CKPT, *CHEAP["export"]], "-o", "dir"),
        "optimize": (["optimize", CKPT, *CHEAP["optimize"]], "-o", "dir"),
        "run": (["run", "{F}/tiny_recipe.yaml"], "-o", "dir"),
        "quickstart": (["quickstart", "--epochs", "1"], "-o", "dir"),
    }
    for name, (before, opt, kind) in writers.items():
        for oid, path in (FILE_OUTS if kind == "file" else DIR_OUTS):
            cases.append(_case(f"out-{name}-{oid}", *before, opt, path, out=path or None))
    # the output is the input itself
    cases += [
        _case("out-prune-same-as-input", "prune", "{F}/model2.pt", *CHEAP["prune"], "-o", "{F}/model2.pt", "--force"),
        _case("out-distill-same-as-teacher", "distill", "--teacher", "{F}/model2.pt", *CHEAP["distill"],
              "-o", "{F}/model2.pt", "--force"),
        _case("out-pretrain-same-as-from", "pretrain", *CHEAP["pretrain"], "--from", "{F}/model2.pt",
              "-o", "{F}/model2.pt", "--force"),
        _case("out-train-same-as-weights", "train", *CHEAP["train"], "--weights", "{F}/model2.pt",
              "-o", "{F}/model2.pt", "--force"),
        _case("out-eval-json-same-as-input", "eval", "{F}/model2.pt", "--data", "digits", "--json", "{F}/model2.pt",
              "--force"),
        _case("out-bench-same-as-input", "bench", "{F}/model2.pt", *CHEAP["bench"], "-o", "{F}/model2.pt", "--force"),
        _case("out-report-same-as-input", "report", "{F}/results.json", "-o", "{F}/results.json", "--force"),
        _case("out-export-into-input", "export", "{F}/model2.pt", *CHEAP["export"], "-o", "{F}/model2.pt", "--force"),
    ]
    return cases


def file_cases() -> list[dict[str, Any]]:
    """Crafted profiles, recipes, data and results; bad values that are not plain numbers."""
    exp, cheap_exp = ["export", CKPT, "-o", f"{OUT}/exp"], CHEAP["export"]
    train = ["train", *CHEAP["train"], "-o", f"{OUT}/x.pt"]
    train_on = ["train", "--arch", "compact_cnn", "--epochs", "1", "--precise-bn", "0", "-o", f"{OUT}/x.pt"]
    train_tv = ["train", "--arch", "resnet18", "--data", "digits", "--epochs", "1", "--precise-bn", "0",
                "-o", f"{OUT}/x.pt"]  # a torchvision architecture
    return [
        _case("profile-binary", *exp, *cheap_exp, "--profile", "{F}/binary.yaml"),
        _case("profile-python-tag", *exp, *cheap_exp, "--profile", "{F}/tag_profile.yaml", marker="{F}/marker_yaml_p"),
        _case("profile-list", *exp, *cheap_exp, "--profile", "{F}/list.yaml"),
        _case("profile-missing", *exp, *cheap_exp, "--profile", "{F}/nosuch.yaml"),
        _case("recipe-python-tag", "run", "{F}/tag_recipe.yaml", "-o", f"{OUT}/run", marker="{F}/marker_yaml_r"),
        _case("recipe-list", "run", "{F}/list.yaml", "-o", f"{OUT}/run"),
        _case("recipe-broken", "run", "{F}/broken.yaml", "-o", f"{OUT}/run"),
        _case("recipe-binary", "run", "{F}/binary.yaml", "-o", f"{OUT}/run"),
        _case("recipe-set-epochs-zero", "run", "{F}/tiny_recipe.yaml", "--set", "training.epochs=0", "-o", f"{OUT}/run"),
        _case("recipe-set-epochs-nan", "run", "{F}/tiny_recipe.yaml", "--set", "training.epochs=nan", "-o", f"{OUT}/run"),
        _case("recipe-set-bad-key", "run", "{F}/tiny_recipe.yaml", "--set", "=1", "-o", f"{OUT}/run"),
        _case("train-resume-truncated", "train", *CHEAP["train"], "-o", "{F}/truncated.pt", "--resume"),
        _case("train-input-unpayable", *train, "--input-size", "20000"),  # 286 GiB per batch: refused up front
        _case("train-one-class", *train_on, "--data", "imagefolder:{F}/onecls"),
        _case("train-lr-1e30", *train, "--lr", "1e30"),
        _case("train-milestones-unsorted", *train, "--lr-schedule", "step", "--milestones", "0.75,0.5",
              names="--milestones"),
        _case("train-milestones-as-epochs", *train, "--lr-schedule", "step", "--milestones", "50,75",
              names="--milestones"),
        _case("train-milestones-empty-item", *train, "--lr-schedule", "step", "--milestones", "0.5,,0.75",
              names="--milestones"),
        _case("train-milestones-one", *train, "--lr-schedule", "step", "--milestones", "1", names="--milestones"),
        _case("train-milestones-without-step", *train, "--milestones", "0.5", names="--lr-schedule"),
        _case("train-lr-schedule-unknown", *train, "--lr-schedule", "exponential", names="--lr-schedule"),
        _case("train-epochs-huge", "train", "--arch", "compact_cnn", "--data", "digits", "-o", f"{OUT}/x.pt",
              "--epochs", HUGE),
        _case("train-seed-huge", *train, "--seed", HUGE),
        _case("train-tabular-nan", "train", "--arch", "mlp_tabular", "--epochs", "1", "--precise-bn", "0",
              "--data", "tabular:{F}/nan.csv", "-o", f"{OUT}/x.pt"),
        _case("train-arch-import-path", "train", "--arch", "logging:basicConfig", "--data", "digits",
              "--epochs", "1", "-o", f"{OUT}/x.pt"),
        # torchvision weights by name (the batch runs with EDGEKIT_OFFLINE=1 and an empty TORCH_HOME: no download)
        _case("train-weights-imagenet-no-torchvision-arch", *train, "--weights", "imagenet",
              names="compact_cnn has no torchvision weights"),
        _case("train-weights-other-arch", *train_tv, "--weights", "MobileNet_V2_Weights.IMAGENET1K_V2",
              names="are not weights of resnet18"),
        _case("train-weights-unknown-name", *train_tv, "--weights", "ResNet18_Weights.NOPE",
              names="unknown torchvision weights"),
        _case("train-weights-offline-uncached", *train_tv, "--weights", "imagenet",
              names="hub/checkpoints/resnet18-f37072fd.pth"),
        _case("train-labeled-fraction-leaves-a-class", *train, "--labeled-fraction", "0.002", names="class '8'"),
        _case("train-arch-arg-width-zero", *train, "--arch-arg", "width_mult=0"),
        _case("train-arch-arg-width-nan", *train, "--arch-arg", "width_mult=NaN"),
        _case("train-data-synthetic-n0", *train_on, "--data", "synthetic:n=0"),
        _case("train-data-synthetic-classes0", *train_on, "--data", "synthetic:classes=0"),
        _case("train-data-synthetic-nan", *train_on, "--data", "synthetic:n=nan"),
        _case("train-data-missing-folder", *train_on, "--data", "imagefolder:{F}/nosuch"),
        _case("train-data-file-as-folder", *train_on, "--data", "imagefolder:{F}/existing.pt"),
        _case("pretrain-tabular", "pretrain", *CHEAP["pretrain"], "--data", "sklearn:iris", "-o", f"{OUT}/x.ckpt"),
        _case("pretrain-no-stages", "pretrain", *CHEAP["pretrain"], "--arch", "compact_cnn", "--drop-last-stage",
              "-o", f"{OUT}/x.ckpt"),
        _case("pretrain-batch-one", "pretrain", *CHEAP["pretrain"], "--batch-size", "1", "--method", "simclr",
              "-o", f"{OUT}/x.ckpt"),
        _case("pretrain-data-missing-folder", "pretrain", *CHEAP["pretrain"], "--data", "imagefolder:{F}/nosuch",
              "-o", f"{OUT}/x.ckpt"),
        _case("pretrain-from-classifier", "pretrain", *CHEAP["pretrain"], "--from", CKPT, "-o", f"{OUT}/x.ckpt"),
        _case("eval-one-class-folder", "eval", CKPT, "--data", "imagefolder:{F}/onecls"),
        _case("eval-stride-zero", "eval", "{F}/clip.pt", "--streaming", "--stride", "0"),
        _case("distill-method-kd+", "distill", "--teacher", CKPT, *CHEAP["distill"], "-o", f"{OUT}/x.pt",
              "--method", "kd+"),
        _case("distill-epochs-huge", "distill", "--teacher", CKPT, "--student", "compact_cnn_s", "-o", f"{OUT}/x.pt",
              "--epochs", HUGE),
        _case("export-opset-999", *exp, *cheap_exp, "--opset", "999"),
        _case("export-onnx-nhwc", *exp, *cheap_exp, "--nhwc"),
        _case("export-target-unknown", *exp, "-t", "onnxx"),
        _case("export-precision-unknown", *exp, "-t", "onnx", "-p", "fp8"),
        _case("bench-data-nosuch", "bench", CKPT, *CHEAP["bench"], "--data", "nosuch:x"),
        _case("bench-threads-zero", "bench", CKPT, *CHEAP["bench"], "--threads", "0"),
        _case("bench-threads-negative", "bench", CKPT, *CHEAP["bench"], "--threads", "-1"),
        _case("bench-input-shape-zero", "bench", "{F}/model.onnx", *CHEAP["bench"], "--runtime", "onnxruntime",
              "--input-shape", "0,0,0,0"),
        _case("bench-cpus-negative", "bench", CKPT, *CHEAP["bench"], "--cpus", "-1"),
        _case("bench-random-artifact", "bench", "{F}/random.onnx", "--runtime", "onnxruntime", "--runs", "2"),
        _case("bench-truncated-tflite", "bench", "{F}/truncated.tflite", "--runtime", "litert", "--runs", "2"),
        _case("report-nan-results", "report", "{F}/nan_results.json", "-o", f"{OUT}/rep"),
        _case("report-binary-results", "report", "{F}/random.pt", "-o", f"{OUT}/rep"),
        _case("report-list-results", "report", "{F}/list.json", "-o", f"{OUT}/rep"),
        _case("prune-target-macs-zero", "prune", CKPT, "-o", f"{OUT}/x.pt", *CHEAP["prune"], "--target", "macs=0"),
        _case("prune-target-macs-nan", "prune", CKPT, "-o", f"{OUT}/x.pt", *CHEAP["prune"], "--target", "macs=nan"),
        _case("prune-target-macs-inf", "prune", CKPT, "-o", f"{OUT}/x.pt", *CHEAP["prune"], "--target", "macs=inf"),
        _case("prune-target-params-2", "prune", CKPT, "-o", f"{OUT}/x.pt", *CHEAP["prune"], "--target", "params=2"),
        _case("prune-target-latency-neg", "prune", CKPT, "-o", f"{OUT}/x.pt", *CHEAP["prune"],
              "--target", "latency=-1ms@onnxruntime"),
        _case("optimize-budget-zero", "optimize", CKPT, "-o", f"{OUT}/opt", "--budget", "0ms@onnxruntime"),
        _case("optimize-budget-nan", "optimize", CKPT, "-o", f"{OUT}/opt", "--budget", "nanms@onnxruntime"),
        _case("optimize-budget-inf", "optimize", CKPT, "-o", f"{OUT}/opt", "--budget", "infms@onnxruntime"),
        _case("optimize-ratios-zero", "optimize", CKPT, "-o", f"{OUT}/opt", "--budget", "1ms@onnxruntime",
              "--ratios", "0"),
        _case("optimize-ratios-nan", "optimize", CKPT, "-o", f"{OUT}/opt", "--budget", "1ms@onnxruntime",
              "--ratios", "nan"),
        _case("optimize-resume-empty", "optimize", CKPT, "-o", f"{OUT}/opt", *CHEAP["optimize"], "--resume"),
        _case("verify-random-artifact", "verify", "{F}/random.onnx", "--checkpoint", CKPT, "-n", "8"),
        _case("verify-pt-as-artifact", "verify", CKPT, "--checkpoint", CKPT, "-n", "8"),
        _case("demo-random-model", "demo", "--model", "{F}/random.pt"),
        _case("demo-missing-model", "demo", "--model", "{F}/nosuch"),
        _case("demo-port-huge", "demo", "--model", "{F}/random.pt", "--port", "70000"),
        _case("info-folder", "info", "{F}/onecls"),
        _case("info-empty-path", "info", ""),
        _case("zoo-unknown-option", "zoo", "--nosuch"),
        _case("unknown-command", "nosuchcommand"),
    ]


def all_cases() -> list[dict[str, Any]]:
    cases = crafted_cases() + output_cases() + file_cases() + number_cases()
    ids = [c["id"] for c in cases]
    assert len(ids) == len(set(ids)), "duplicate case ids"
    return cases


# These also run as real `python -m edgekit` processes: the real entry point must agree with the batch.
REAL = ["ckpt-pickle_payload-info", "ckpt-arch_logging-eval", "out-report-readonly", "recipe-python-tag",
        "num-train---epochs=nan", "unknown-command"]

CASES = all_cases()


# --------------------------------------------------------------------------------------------
# The crafted inputs
# --------------------------------------------------------------------------------------------

def _make_inputs(root: Path, ckpt_src: Path) -> None:
    """Write every crafted input under ``root`` (the {F} of the cases)."""
    import pickle

    import numpy as np
    import torch
    from PIL import Image

    (root / "out").mkdir()
    (root / "nonempty").mkdir()
    (root / "nonempty" / "keep.txt").write_text("mine")
    good = ckpt_src.read_bytes()
    for name in ("model.pt", "model2.pt", "existing.pt"):
        (root / name).write_bytes(good)
    (root / "corrupt.pt").write_bytes(b"PK\x03\x04 truncated zip")
    obj = torch.load(ckpt_src, map_location="cpu", weights_only=True)

    def save(name: str, doc: Any) -> None:
        torch.save(doc, root / f"{name}.pt")

    save("missing_task", {k: v for k, v in obj.items() if k != "task"})
    save("missing_arch", {k: v for k, v in obj.items() if k != "arch"})
    save("negative_input", {**obj, "input_spec": {**obj["input_spec"], "size": -32,
                                                   **({"shape": [3, -32, -32]} if "shape" in obj["input_spec"] else {})}})
    save("arch_logging", {**obj, "arch": {**obj["arch"], "name": "logging:basicConfig",
                                          "kwargs": {"filename": str(root / "marker_logging")}}})
    hub = root / "hubrepo"
    hub.mkdir()
    (hub / "hubconf.py").write_text(f"open({str(root / 'marker_hub')!r}, 'w').write('pwned')\n"
                                    "def m(**kw):\n    raise SystemExit('hub entry point ran')\n")
    save("arch_hub", {**obj, "arch": {**obj["arch"], "name": "torch.hub:load",
                                      "kwargs": {"repo_or_dir": str(hub), "model": "m", "source": "local",
                                                 "trust_repo": True}}})
    save("state_not_dict", {**obj, "state_dict": [1, 2, 3]})
    (root / "empty.pt").write_bytes(b"")
    (root / "truncated.pt").write_bytes(good[: len(good) // 2])
    rng = np.random.default_rng(0)
    (root / "random.pt").write_bytes(rng.bytes(4096))
    (root / "random.onnx").write_bytes(rng.bytes(4096))
    (root / "truncated.tflite").write_bytes(b"\x1c\x00\x00\x00TFL3" + rng.bytes(64))

    class Payload:
        def __init__(self, marker: Path) -> None:
            self.marker = str(marker)

        def __reduce__(self) -> Any:
            return (open, (self.marker, "w"))

    torch.save({**obj, "metrics": Payload(root / "marker_pickle")}, root / "pickle_payload.pt")
    (root / "raw_pickle.pt").write_bytes(pickle.dumps(Payload(root / "marker_raw_pickle")))
    # a CRC-broken zip: flip bytes inside the largest stored tensor record
    raw = bytearray(good)
    mid = len(raw) * 2 // 3
    for i in range(mid, mid + 64):
        raw[i] ^= 0xFF
    (root / "crc_broken.pt").write_bytes(bytes(raw))

    (root / "binary.yaml").write_bytes(bytes(range(256)) * 8)
    (root / "list.yaml").write_text("- onnx\n- tflite\n")
    (root / "list.json").write_text("[1, 2, 3]\n")
    (root / "broken.yaml").write_text("name: x\narch: [compact_cnn\n  data: {digits\n")
    (root / "tag_profile.yaml").write_text(
        f"targets: !!python/object/apply:builtins.open [{str(root / 'marker_yaml_p')!r}, 'w']\n")
    (root / "tag_recipe.yaml").write_text(
        f"name: !!python/object/apply:builtins.open [{str(root / 'marker_yaml_r')!r}, 'w']\n"
        "arch: compact_cnn\ndata: digits\n")
    (root / "tiny_recipe.yaml").write_text("name: tiny\narch: compact_cnn\ndata: digits\n"
                                           "training:\n  epochs: 1\n  batch_size: 64\n  input_size: 32\n")
    cls = root / "onecls" / "only"
    cls.mkdir(parents=True)
    for i in range(12):
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(cls / f"{i}.png")
    (root / "nan.csv").write_text("a,b,label\n" + "".join(f"nan,,{i % 2}\n" for i in range(40)))
    rows = [{"model": "m", "artifact": "m.onnx", "format": "onnx", "runtime": "onnxruntime", "threads": 1,
             "batch": 1, "precision": "fp32", "error": None, "latencies_ms": [float("nan")] * 3,
             **{k: float("nan") for k in ("init_ms", "first_run_ms", "min_ms", "mean_ms", "std_ms", "p50_ms",
                                          "p90_ms", "p99_ms", "max_ms", "cv", "throughput_ips", "peak_rss_mb",
                                          "model_size_mb")}}]
    (root / "nan_results.json").write_text(json.dumps({"format": "edgekit.bench", "version": 1, "rows": rows}))
    (root / "results.json").write_text(json.dumps({"format": "edgekit.bench", "version": 1,
                                                   "rows": [{**rows[0], **{k: 1.0 for k in rows[0]
                                                                           if isinstance(rows[0][k], float)},
                                                             "latencies_ms": [1.0, 1.0, 1.0]}]}))
    # an ONNX artifact with its manifest, for verify's and bench's bad-option cases
    from edgekit.exporters.pipeline import export

    export(str(root / "model.pt"), "onnx", output_dir=str(root / "exported"), parity_size=8, calib_size=8)
    onnx = next((root / "exported").glob("*.onnx"))
    for f in (root / "exported").iterdir():
        (root / f.name.replace(onnx.stem, "model")).write_bytes(f.read_bytes())
    (root / "clip.pt").write_bytes(good)  # a classifier, not a clip model: --stride 0 must be refused first


# --------------------------------------------------------------------------------------------
# The batch runner (this file as a script) and the snapshot of the inputs
# --------------------------------------------------------------------------------------------

def snapshot(root: Path) -> dict[str, str]:
    """Every path under ``root`` with its sha256 (``dir`` for folders): inputs and outputs alike."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            out[os.path.relpath(os.path.join(dirpath, d), root)] = "dir"
        for f in filenames:
            p = os.path.join(dirpath, f)
            if os.path.islink(p) or not os.path.isfile(p):
                out[os.path.relpath(p, root)] = "special"
                continue
            with open(p, "rb") as fh:
                out[os.path.relpath(p, root)] = hashlib.sha256(fh.read()).hexdigest()
    return out


class _CaseTimeout(BaseException):
    """Raised by the alarm in a case that runs too long (a BaseException: no backstop catches it)."""


def _clear_warning_registries() -> None:
    import warnings

    for mod in list(sys.modules.values()):
        reg = getattr(mod, "__warningregistry__", None)
        if isinstance(reg, dict):
            reg.clear()
    warnings.resetwarnings()
    for spec in sys.warnoptions:  # the interpreter's own -W options, as a fresh process has them
        warnings._setoption(spec)  # type: ignore[attr-defined]


def run_in_process(args: list[str]) -> dict[str, Any]:
    """One invocation through the console script's entry point, as a fresh ``edgekit`` process would
    end: exit status, stdout and stderr (captured at file descriptors 1 and 2)."""
    import logging

    from edgekit.cli import main

    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.setLevel(logging.WARNING)
    _clear_warning_registries()
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    saved_streams = sys.stdout, sys.stderr
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        os.dup2(out.fileno(), 1)
        os.dup2(err.fileno(), 2)
        sys.stdout = io.TextIOWrapper(os.fdopen(os.dup(1), "wb"), write_through=True)
        sys.stderr = io.TextIOWrapper(os.fdopen(os.dup(2), "wb"), write_through=True)

        def alarm(signum: int, frame: Any) -> None:
            raise _CaseTimeout()

        old = signal.signal(signal.SIGALRM, alarm)
        signal.alarm(CASE_TIMEOUT_S)
        timed_out = False
        try:
            try:
                rv = main.main(args, prog_name="edgekit")
                rc = rv if isinstance(rv, int) else (0 if rv is None else 1)
            except SystemExit as exc:
                code = exc.code
                if code is None:
                    rc = 0
                elif isinstance(code, int):
                    rc = code
                else:  # sys.exit("message"): printed, status 1
                    print(code, file=sys.stderr)
                    rc = 1
            except _CaseTimeout:
                timed_out, rc = True, -1
            except BaseException:  # noqa: BLE001 - what the interpreter does with an uncaught exception
                traceback.print_exc()
                rc = 1
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, old)
            for s in (sys.stdout, sys.stderr):
                try:
                    s.flush()
                    s.close()
                except Exception:  # noqa: BLE001
                    pass
            sys.stdout, sys.stderr = saved_streams
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if timed_out:
        stderr += f"\n[fuzz: timed out after {CASE_TIMEOUT_S} s]"
    return {"rc": rc, "stdout": stdout[-4000:], "stderr": stderr[-8000:]}


def _fill(text: str, root: Path, ro: str) -> str:
    return text.replace("{RO}", ro).replace("{F}", str(root))


def _outside_paths(case: dict[str, Any], root: Path, ro: str) -> list[str]:
    """Output paths outside ``root`` (the read-only folder as root user)."""
    out = case.get("out")
    if not out:
        return []
    p = _fill(out, root, ro)
    return [] if Path(p).resolve().is_relative_to(root.resolve()) else [p]


def run_batch(cases: list[dict[str, Any]], root: Path, ro: str, cwd: Path,
              partial: Path | None = None) -> dict[str, dict[str, Any]]:
    """Run ``cases`` one after another in this interpreter; per case its result and what changed
    (written to ``partial`` after every case, so a batch cut short still tells what it found)."""
    import shutil

    os.chdir(cwd)
    backup = Path(tempfile.mkdtemp(prefix="fuzz-pristine-")) / "F"
    shutil.copytree(root, backup, symlinks=True)
    results = {}
    for case in cases:
        args = [_fill(a, root, ro) for a in case["args"]]
        outside = _outside_paths(case, root, ro)
        before, before_cwd = snapshot(root), snapshot(cwd)
        before_outside = {p: os.path.lexists(p) for p in outside}
        t0 = time.perf_counter()
        res = run_in_process(args)
        res["seconds"] = round(time.perf_counter() - t0, 2)
        after, after_cwd = snapshot(root), snapshot(cwd)
        res["changed"] = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
        res["changed_cwd"] = sorted(k for k in set(before_cwd) | set(after_cwd) if before_cwd.get(k) != after_cwd.get(k))
        res["created_outside"] = [p for p in outside if os.path.lexists(p) and not before_outside[p]]
        res["args"] = args
        results[case["id"]] = res
        print(f"{case['id']}: rc {res['rc']} {res['seconds']} s", file=sys.stderr, flush=True)  # progress
        if partial is not None:
            partial.write_text(json.dumps(results))
        # restore what a failing case changed, so one bad case cannot spoil the next ones
        for k in sorted(res["changed"], key=len, reverse=True):
            p = root / k
            if before.get(k) is None:
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p, ignore_errors=True)
                elif p.exists() or p.is_symlink():
                    p.unlink()
        for k in sorted(res["changed"], key=len):
            if before.get(k) not in (None, "dir"):
                (root / k).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(backup / k, root / k)
            elif before.get(k) == "dir":
                (root / k).mkdir(parents=True, exist_ok=True)
        for p in res["created_outside"]:
            try:
                os.unlink(p)
            except OSError:
                pass
        if any(before.get(k) not in (None, "dir") for k in res["changed"]):
            res["inputs_damaged"] = True
    shutil.rmtree(backup.parent, ignore_errors=True)
    return results


def _main_batch(spec_path: str) -> None:
    """Script mode: ``python test_fuzz.py SPEC.json`` runs the cases of SPEC and writes the results."""
    import torch

    torch.set_num_threads(1)
    spec = json.loads(Path(spec_path).read_text())
    run_batch(spec["cases"], Path(spec["root"]), spec["ro"], Path(spec["cwd"]), partial=Path(spec["results"]))


# --------------------------------------------------------------------------------------------
# The tests
# --------------------------------------------------------------------------------------------

def _readonly_dir(base: Path) -> str:
    """A folder this process cannot create files in: chmod 555 (root ignores that: /sys/fs then)."""
    ro = base / "readonly"
    ro.mkdir()
    ro.chmod(0o555)
    probe = ro / ".probe"
    try:
        probe.write_text("")
    except OSError:
        return str(ro)
    probe.unlink()
    return "/sys/fs"


@pytest.fixture(scope="module")
def fuzz_env(tmp_path_factory: pytest.TempPathFactory, digits_ckpt: Path) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("fuzz")
    root, cwd = base / "F", base / "cwd"
    root.mkdir()
    cwd.mkdir()
    _make_inputs(root, digits_ckpt)
    ro = _readonly_dir(base)
    pristine = snapshot(root)
    return {"root": root, "cwd": cwd, "ro": ro, "pristine": pristine}


@pytest.fixture(scope="module")
def batch_results(fuzz_env: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every case, run in one helper interpreter (this file as a script)."""
    spec = fuzz_env["root"].parent / "spec.json"
    results = fuzz_env["root"].parent / "results.json"
    spec.write_text(json.dumps({"cases": CASES, "root": str(fuzz_env["root"]), "ro": fuzz_env["ro"],
                                "cwd": str(fuzz_env["cwd"]), "results": str(results)}))
    # no case may download: torchvision weights named by a case are looked up in an empty cache, offline
    env = {**os.environ, "EDGEKIT_OFFLINE": "1", "TORCH_HOME": str(fuzz_env["root"].parent / "torch_home")}
    proc = subprocess.run([sys.executable, str(HERE), str(spec)], capture_output=True, text=True,
                          timeout=CASE_TIMEOUT_S * len(CASES), cwd=fuzz_env["cwd"], env=env)
    assert proc.returncode == 0 and results.exists(), proc.stderr[-4000:]
    return json.loads(results.read_text())


PROGRESS = re.compile(r"^\[\d+/\d+\] ")


def check_result(case: dict[str, Any], res: dict[str, Any], root: Path) -> None:
    """The contract of a bad invocation (see the module docstring)."""
    tail = res["stderr"][-1500:]
    where = f"edgekit {' '.join(res['args'])}\nrc={res['rc']}\nstderr: {tail}"
    assert res["rc"] not in (0, -1), where  # -1: timed out
    assert "Traceback" not in res["stderr"], where
    # bench's per-row progress ("[1/2] m.onnx on onnxruntime ... failed: ...") is progress, not an error
    # line: a failed row is a result (written to -o), and the closing line says every row failed
    lines = [line for line in res["stderr"].splitlines() if line.strip() and not PROGRESS.match(line)]
    assert len(lines) == 1, where
    assert lines[0].startswith("edgekit: error:"), where  # not "internal error": that is a bug
    if case.get("names"):
        assert case["names"] in lines[0], where
    assert not res["changed"], f"{where}\nchanged under the inputs' folder: {res['changed']}"
    assert not res["changed_cwd"], f"{where}\nwritten into the working folder: {res['changed_cwd']}"
    assert not res["created_outside"], f"{where}\nwritten: {res['created_outside']}"
    if case.get("marker"):
        assert not Path(_fill(case["marker"], root, "")).exists(), f"{where}\ncode ran: marker file made"


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_bad_invocation(case: dict[str, Any], batch_results: dict[str, dict[str, Any]],
                        fuzz_env: dict[str, Any]) -> None:
    check_result(case, batch_results[case["id"]], fuzz_env["root"])


@pytest.mark.parametrize("cid", REAL)
def test_real_process_agrees(cid: str, batch_results: dict[str, dict[str, Any]], fuzz_env: dict[str, Any]) -> None:
    """The real ``python -m edgekit`` process ends as the batch says (exit status, stderr), and obeys
    the contract itself: the batch is equivalent to the CLI."""
    case = next(c for c in CASES if c["id"] == cid)
    root, ro = fuzz_env["root"], fuzz_env["ro"]
    args = [_fill(a, root, ro) for a in case["args"]]
    before = snapshot(root)
    proc = subprocess.run([sys.executable, "-m", "edgekit", *args], capture_output=True, text=True,
                          timeout=300, cwd=fuzz_env["cwd"])
    after = snapshot(root)
    res = {"rc": proc.returncode, "stdout": proc.stdout, "stderr": proc.stderr, "args": args,
           "changed": sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k)),
           "changed_cwd": [], "created_outside": [p for p in _outside_paths(case, root, ro) if os.path.lexists(p)]}
    batch = batch_results[cid]
    assert (res["rc"], res["stderr"].strip()) == (batch["rc"], batch["stderr"].strip()), (res, batch)
    check_result(case, res, root)


def test_every_command_is_fuzzed() -> None:
    """A new command must get cases here (a numeric option gets them automatically)."""
    fuzzed = {c["args"][0] for c in CASES}
    assert set(_commands()) <= fuzzed, set(_commands()) - fuzzed
    assert len(CASES) >= 300


def test_inputs_are_pristine(batch_results: dict[str, dict[str, Any]], fuzz_env: dict[str, Any]) -> None:
    """After every case, every crafted input is still byte for byte what the fixture wrote."""
    assert snapshot(fuzz_env["root"]) == fuzz_env["pristine"]
    assert not [cid for cid, r in batch_results.items() if r.get("inputs_damaged")]


if __name__ == "__main__":
    _main_batch(sys.argv[1])
