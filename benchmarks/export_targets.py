"""Export every target x precision for briefly trained digits models; record time, size and parity.

What it shows (issue 3's closing note), in one run on this machine:

* mobilenet_v2 and resnet18 trained by ``edgekit train`` on the built-in digits data
  (32x32, torchvision stems, AdamW), exported to every available target at fp32, fp16 and int8:
  export time, artifact size and the parity numbers (on the whole validation split);
* int8 TFLite top-1 accuracy against fp32 TFLite and PyTorch on the validation split;
* a resnet18 with hand-shrunk channels (Torch-Pruning removes channels from several
  convolutions; saved as a pruned checkpoint) exporting to every target, gate passing.

Usage::

    python benchmarks/export_targets.py [--epochs 3] [--work /tmp/edgekit-export-bench]
        [--output benchmarks/results/export_targets.md]

Checkpoints already in ``--work`` are reused (delete them to retrain).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


# Brief training on a shared 2-core CPU: torchvision's own stems (no small-input stem) keep
# 32x32 inputs cheap, and AdamW reaches a useful accuracy in a few epochs.
TRAIN_FLAGS = ["--no-small-input", "--optimizer", "adamw"]


def train(arch: str, path: Path, epochs: int) -> None:
    if path.exists():
        return
    cmd = [sys.executable, "-m", "edgekit", "train", "--arch", arch, "--data", "digits", "--epochs", str(epochs),
           *TRAIN_FLAGS, "-o", str(path)]
    print("$", " ".join(cmd[1:]), flush=True)
    subprocess.run(cmd, check=True)


def shrink(src: Path, dst: Path) -> dict:
    """Remove a quarter to three quarters of the output channels of several resnet18 convs, by hand."""
    import torch_pruning as tp

    from edgekit.checkpoint import load_checkpoint
    from edgekit.registry import count_params

    ckpt = load_checkpoint(src)
    model = ckpt.model
    before = count_params(model)
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=torch.randn(1, 3, 32, 32))
    cuts = {"layer1.0.conv1": 16, "layer2.1.conv1": 64, "layer3.0.conv1": 128, "layer4.0.conv1": 256,
            "layer4.1.conv1": 384}
    for name, k in cuts.items():
        mod = model.get_submodule(name)
        graph.get_pruning_group(mod, tp.prune_conv_out_channels, idxs=list(range(k))).prune()
    if not dst.exists():
        ckpt.derive(model, stage="prune").save(dst)
    return {"params_before": before, "params_after": count_params(model), "cuts": cuts}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--work", default="/tmp/edgekit-export-bench")
    ap.add_argument("--output", default=str(ROOT / "benchmarks/results/export_targets.md"))
    ap.add_argument("--parity-size", type=int, default=1000, help="capped at the validation split (360)")
    ap.add_argument("--calib-size", type=int, default=256)
    ap.add_argument("--table-only", action="store_true", help="rewrite the table from WORK/rows.json")
    args = ap.parse_args()
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

    from edgekit.exporters.pipeline import available_targets, export
    from edgekit.checkpoint import load_checkpoint

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    ckpts = {}
    for arch in ("mobilenet_v2", "resnet18"):
        ckpts[arch] = work / f"{arch}.pt"
        train(arch, ckpts[arch], args.epochs)
    ckpts["resnet18-shrunk"] = work / "resnet18-shrunk.pt"
    shrink_info = shrink(ckpts["resnet18"], ckpts["resnet18-shrunk"])
    sources = {label: _describe(path) for label, path in ckpts.items()}
    if args.table_only:
        write_table(json.loads((work / "rows.json").read_text()), args, shrink_info, available_targets(), sources)
        return

    targets = available_targets()
    rows = []
    for label, path in ckpts.items():
        ck = load_checkpoint(path)
        for target in targets:
            # every precision for ONNX and TFLite (which run here); Core ML at its default (fp16,
            # structural check only on Linux); the shrunk model: each target's default precision
            precs = ("fp32", "fp16", "int8") if label != "resnet18-shrunk" and target in ("onnx", "tflite") \
                else (None,)
            for prec in precs:
                t0 = time.perf_counter()
                try:
                    (rec,) = export(path, target, precision=prec, output_dir=work / "artifacts" / label, force=True,
                                    parity_size=args.parity_size, calib_size=args.calib_size)
                    err = None
                except Exception as exc:  # record and keep going: the table shows what failed
                    rec, err = None, f"{type(exc).__name__}: {exc}"
                wall = time.perf_counter() - t0
                row = {"model": label, "target": target, "precision": rec["precision"] if rec else prec, "wall_s": wall, "error": err,
                       "val_top1_ckpt": ck.metrics.get("val_top1")}
                if rec:
                    row.update(size=rec["size_bytes"], export_s=rec["export_seconds"], parity=rec["parity"])
                rows.append(row)
                print(json.dumps({k: v for k, v in row.items() if k != "parity"}), flush=True)
    (work / "rows.json").write_text(json.dumps(rows, indent=2, default=str))
    write_table(rows, args, shrink_info, targets, sources)


def _describe(path: Path) -> dict:
    from edgekit.checkpoint import load_checkpoint

    ck = load_checkpoint(path)
    prov = ck.provenance
    return {"command": prov.get("command"), "stage": prov.get("stage"), "val_top1": ck.metrics.get("val_top1"),
            "arch": ck.arch, "kwargs": ck.arch_kwargs}


def _fmt_parity(p: dict) -> tuple[str, str, str, str]:
    if p.get("mode") != "numeric":
        return "structural", "-", "-", "-"
    return (f"{p['cosine']:.6f}", f"{p['max_abs_err']:.2g}", f"{p['top1_agreement']:.1%}",
            f"{p['artifact_top1']:.2f}" if "artifact_top1" in p else "-")


def write_table(rows: list[dict], args: argparse.Namespace, shrink_info: dict, targets: list[str],
                sources: dict[str, dict]) -> None:
    import importlib.metadata as md

    from edgekit.fileio import atomic_path

    vers = {}
    for pkg in ("torch", "onnx", "onnxruntime", "litert-torch", "ai-edge-litert", "ai-edge-quantizer", "coremltools"):
        try:
            vers[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    lines = ["# Export: time, size and parity per target and precision", "",
             f"Command: `python benchmarks/export_targets.py --epochs {args.epochs} --parity-size {args.parity_size} "
             f"--calib-size {args.calib_size}`", "",
             f"Machine: {cpu}, {os.cpu_count()} CPUs visible (shared with other jobs: times are wall-clock under "
             f"load, load average at the end {os.getloadavg()[0]:.1f}), {platform.system()} {platform.release()}, "
             f"Python {platform.python_version()}. No GPU, so no TensorRT rows; Linux has no Core ML runtime, so "
             "Core ML rows are structurally verified (package loads, I/O and op counts match), not run.", "",
             "Versions: " + ", ".join(f"{k} {v}" for k, v in vers.items()), "",
             f"Targets available here: {', '.join(targets)}. Checkpoints: trained by `edgekit train` on digits at "
             "32x32 (commands below; a checkpoint already in the work folder is reused, not retrained). Parity: every artifact run through its own "
             "runtime (onnxruntime CPU, ai-edge-litert XNNPACK) on the whole digits validation split (360 real "
             "images, the checkpoint's eval transform), against PyTorch fp32. int8 calibration: "
             f"{args.calib_size} training images. Gate thresholds: see `edgekit/exporters/parity.py`.", "",
             "Checkpoints (from their provenance):", ""]
    for label, src in sources.items():
        top1 = f"{src['val_top1']:.2f} %" if isinstance(src.get("val_top1"), float) else "not recorded"
        how = f"`{src['command']}`" if src.get("stage") == "train" else "hand-shrunk from resnet18 (below)"
        lines.append(f"- {label}: {src['arch']} {src['kwargs']}, {how}, validation top-1 {top1}")
    lines += ["",
             "| model | target | precision | export s | size MB | cosine | max abs err | top-1 agreement | "
             "artifact top-1 % | PyTorch top-1 % | gate |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        if r.get("error"):
            lines.append(f"| {r['model']} | {r['target']} | {r['precision']} | - | - | - | - | - | - | - | "
                         f"FAILED: {r['error'][:160]} |")
            continue
        p = r["parity"]
        cos, mae, agree, top1 = _fmt_parity(p)
        torch_top1 = f"{p['torch_top1']:.2f}" if "torch_top1" in p else "-"
        lines.append(f"| {r['model']} | {r['target']} | {r['precision']} | {r['export_s']:.1f} | "
                     f"{r['size'] / 1e6:.2f} | {cos} | {mae} | {agree} | {top1} | {torch_top1} | pass |")
    lines += ["", "## int8 TFLite top-1 against fp32 (digits validation split)", "",
              "| model | PyTorch fp32 | TFLite fp32 | TFLite int8 | int8 - fp32 (points) |", "|---|---:|---:|---:|---:|"]
    for model in dict.fromkeys(r["model"] for r in rows):
        by = {r["precision"]: r for r in rows if r["model"] == model and r["target"] == "tflite" and not r["error"]}
        if "fp32" in by and "int8" in by:
            f, q = by["fp32"]["parity"], by["int8"]["parity"]
            lines.append(f"| {model} | {f['torch_top1']:.2f} | {f['artifact_top1']:.2f} | {q['artifact_top1']:.2f} | "
                         f"{q['artifact_top1'] - f['artifact_top1']:+.2f} |")
    ok = [r for r in rows if r["model"] == "resnet18-shrunk"]
    lines += ["", "## Hand-shrunk channels", "",
              f"resnet18 with output channels removed by hand (Torch-Pruning, first k channels) from "
              f"{', '.join(f'`{k}` (-{v})' for k, v in shrink_info['cuts'].items())}: "
              f"{shrink_info['params_before'] / 1e6:.2f} M -> {shrink_info['params_after'] / 1e6:.2f} M parameters, "
              "saved as a pruned checkpoint (channel plan) and reloaded from file for export. "
              f"{sum(1 for r in ok if not r['error'])} of {len(ok)} target/precision exports passed the gate "
              "(rows `resnet18-shrunk` above). Its accuracy is lower than resnet18's because no fine-tuning "
              "followed the cut; parity is measured against the shrunk PyTorch model itself.", ""]
    out = Path(args.output)
    with atomic_path(out) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    os.chmod(out, 0o644)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
