"""Benchmark: DLDL-v2 on the built-in ordinal images (issue 11, "Show in the closing note").

Gao, Liu, Zhou, Wu & Geng, "Learning Expectation of Label Distribution for Facial Age
and Attractiveness Estimation" (arXiv 2007.01771, 2020). Four parts, each cached in
``WORK/results.json`` so an interrupted run resumes where it stopped:

1. **losses**: ThinAgeNet and TinyAgeNet trained by ``edgekit.train`` on
   ``ordinal:n=N,size=64`` (labels 0..100, per-sample sigma) with each loss (dldl = KL +
   L1, kl, l1, ce, ranking), for several seeds (each seed its own split and init); validation
   MAE and epsilon-error with flip averaging, as ``edgekit eval`` reports them. The paper's
   claim under test: KL + L1 beats KL only.
2. **deploy**: parameters, MACs, TFLite int8 file size and LiteRT latency (batch 1, one
   thread, fp32 and int8) at 224 px for thin_age_net and tiny_age_net (dldl head), a
   resnet18 one-output regressor and mobilenet_v2 with the dldl head. Latency does not
   depend on the weight values, so these are exported from freshly initialised networks
   (int8 calibrated and parity-gated on ordinal images at 224 px).
3. **int8**: the MAE gap of the int8 TFLite artifact against fp32 (both through their
   parity gate, then ``edgekit.bench --data`` on the held-out split) for a trained
   TinyAgeNet.
4. **curl**: that TinyAgeNet CURL-pruned to half its MACs and fine-tuned; MAE and LiteRT
   latency at 64 px against the unpruned one, measured in the same minute.

Usage::

    python benchmarks/dldl_ordinal.py --work /tmp/dldl_bench --parts losses deploy int8 curl

writes ``benchmarks/dldl_ordinal.md`` and ``benchmarks/dldl_ordinal.json``.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent
NETS = ("thin_age_net", "tiny_age_net")
LOSSES = ("dldl", "kl", "l1", "ce", "ranking")
LABEL_RANGE = "0:100:1"
#: CURL proxy images (exact KL scoring of TinyAgeNet at 64 px costs about 6 s per image on 2 cores)
PROXY = 64


def _cache(work: Path) -> dict[str, Any]:
    path = work / "results.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _save(work: Path, results: dict[str, Any]) -> None:
    tmp = work / "results.json.tmp"
    tmp.write_text(json.dumps(results, indent=1))
    tmp.replace(work / "results.json")


def data_spec(n: int, size: int) -> str:
    return f"ordinal:n={n},size={size}"


def train_one(net: str, loss: str, seed: int, work: Path, n: int, epochs: int, augment: str) -> dict[str, Any]:
    """Train ``net`` with ``loss``; validation MAE / epsilon-error (flip averaged) and wall time."""
    from edgekit.evaluation import evaluate
    from edgekit.training.trainer import train

    t0 = time.perf_counter()
    ckpt = train(net, data_spec(n, 64), work / f"{net}_{loss}_s{seed}.ckpt", epochs=epochs, batch_size=64,
                 seed=seed, optimizer="adam", lr=1e-3, task="label_distribution", label_range=LABEL_RANGE,
                 loss=loss, augment=augment, progress=False, force=True)
    seconds = time.perf_counter() - t0
    m = evaluate(ckpt)
    return {"net": net, "loss": loss, "seed": seed, "mae": m["mae"], "eps_error": m.get("eps_error"),
            "rmse": m["rmse"], "pearson": m["pearson"], "n_val": m["n"], "train_seconds": seconds}


def _fresh_checkpoint(arch: str, kwargs: dict[str, Any], loss: str, work: Path, size: int = 224) -> Path:
    """A freshly initialised label-distribution checkpoint on ordinal images at ``size`` px."""
    from edgekit.checkpoint import Checkpoint
    from edgekit.data import make_input_spec
    from edgekit.registry import create_model
    from edgekit.training.label_distribution import LabelTask

    torch.manual_seed(0)
    model = create_model(arch, **kwargs).eval()
    task = LabelTask(LABEL_RANGE, loss)
    ckpt = Checkpoint(arch=arch, arch_kwargs=kwargs, state_dict=model.state_dict(), task="label_distribution",
                      input_spec=make_input_spec(size), data={"spec": data_spec(96, size), "val": 0.5, "seed": 0},
                      extra={LabelTask.KEY: task.record()}, provenance={"stage": "benchmark (untrained)"})
    path = work / f"fresh_{arch}_{loss}.ckpt"
    ckpt.save(path, force=True)
    return path


def export_and_time(ckpt: Any, work: Path, name: str, precisions: tuple[str, ...], data: str | None = None,
                    parity_size: int = 32) -> dict[str, Any]:
    """Export to .tflite at each precision (parity-gated), time on LiteRT (1 thread), optionally MAE."""
    from edgekit.benchmark.run import bench
    from edgekit.exporters.pipeline import export

    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        for prec in precisions:
            rec = export(ckpt, "tflite", precision=prec, output_dir=tmp, name=f"{name}.{prec}", calib_size=64,
                         parity_size=parity_size, force=True)[0]
            row = bench(rec["path"], runtime="litert", threads=1, min_seconds=2.0, data=data)[0]
            if row.get("error"):
                raise RuntimeError(f"litert bench of {name} {prec} failed: {row['error']}")
            acc = row.get("accuracy") or {}
            out[prec] = {"p50_ms": row["p50_ms"], "size_mb": row["model_size_mb"], "mae": acc.get("mae"),
                         "parity": {k: v for k, v in (rec.get("parity") or {}).items() if isinstance(v, (int, float))}}
    return out


def deploy_rows(work: Path) -> list[dict[str, Any]]:
    from edgekit.checkpoint import load_checkpoint
    from edgekit.registry import count_macs, count_params

    configs = [("thin_age_net", {"head": "dldl", "label_range": LABEL_RANGE}, "dldl"),
               ("tiny_age_net", {"head": "dldl", "label_range": LABEL_RANGE}, "dldl"),
               ("resnet18", {"num_classes": 1}, "l1"),
               ("mobilenet_v2", {"head": "dldl", "label_range": LABEL_RANGE}, "dldl")]
    rows = []
    for arch, kwargs, loss in configs:
        ckpt = load_checkpoint(_fresh_checkpoint(arch, kwargs, loss, work))
        model = ckpt.model
        lat = export_and_time(ckpt, work, arch, ("fp32", "int8"))
        rows.append({"arch": arch, "head": kwargs.get("head", "one output (L1)"), "params": count_params(model),
                     "macs": count_macs(model, (1, 3, 224, 224)), "fp32_ms": lat["fp32"]["p50_ms"],
                     "int8_ms": lat["int8"]["p50_ms"], "int8_mb": lat["int8"]["size_mb"],
                     "fp32_mb": lat["fp32"]["size_mb"]})
    return rows


def int8_gap(work: Path) -> dict[str, Any]:
    from edgekit.checkpoint import load_checkpoint
    from edgekit.evaluation import evaluate

    path = work / "tiny_age_net_dldl_s0.ckpt"
    ckpt = load_checkpoint(path)
    lat = export_and_time(ckpt, work, "tiny_trained", ("fp32", "int8"), data=ckpt.data_record["spec"])
    return {"torch_mae_no_flip": evaluate(ckpt, flip=False)["mae"], "fp32_mae": lat["fp32"]["mae"],
            "int8_mae": lat["int8"]["mae"], "gap": lat["int8"]["mae"] - lat["fp32"]["mae"],
            "fp32_ms_64px": lat["fp32"]["p50_ms"], "int8_ms_64px": lat["int8"]["p50_ms"],
            "int8_parity": lat["int8"]["parity"]}


def curl_row(work: Path, finetune_epochs: int) -> dict[str, Any]:
    from edgekit.checkpoint import load_checkpoint
    from edgekit.compress.prune import prune
    from edgekit.evaluation import evaluate

    base = load_checkpoint(work / "tiny_age_net_dldl_s0.ckpt")
    t0 = time.perf_counter()
    pruned = prune(base, None, work / "tiny_age_net_dldl_s0.curl50.ckpt", target="macs=0.5", method="curl",
                   finetune_epochs=finetune_epochs, proxy_size=PROXY, progress=False, force=True)
    seconds = time.perf_counter() - t0
    lat_base = export_and_time(base, work, "tiny_base", ("fp32",))
    lat_pruned = export_and_time(pruned, work, "tiny_curl", ("fp32",))
    return {"base_mae": evaluate(base)["mae"], "pruned_mae": evaluate(pruned)["mae"],
            "base_ms": lat_base["fp32"]["p50_ms"], "pruned_ms": lat_pruned["fp32"]["p50_ms"],
            "metrics": {k: v for k, v in pruned.metrics.items() if isinstance(v, (int, float))},
            "prune_seconds": seconds, "finetune_epochs": finetune_epochs}


def _mean_std(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} +- {statistics.stdev(values):.2f}"


def table(results: dict[str, Any], args: argparse.Namespace) -> str:
    import edgekit

    lines = ["# DLDL-v2 on the built-in ordinal images", "",
             f"Generated by `python benchmarks/dldl_ordinal.py --work {args.work} --parts {' '.join(args.parts)} "
             f"--n {args.n} --epochs {args.epochs} --seeds {' '.join(map(str, args.seeds))} --augment {args.augment}` "
             f"(edgekit {edgekit.__version__}, torch {torch.__version__}, {platform.machine()}, "
             f"{torch.get_num_threads()} torch threads; {time.strftime('%Y-%m-%d')}).", ""]
    runs = [r for k, r in results.items() if k.startswith("losses/")]
    if runs:
        lines += ["## 1. Losses (validation split, image + flip averaged, 64x64, labels 0..100)", "",
                  f"`ordinal:n={args.n},size=64`, 20 % validation, Adam 1e-3, batch 64, {args.epochs} epochs, "
                  f"augment `{args.augment}`; mean +- std over seeds (each its own split and init).", "",
                  "| net | loss | MAE | epsilon-error | Pearson | seeds | train s/run |", "|---|---|---|---|---|---|---|"]
        for net in NETS:
            for loss in LOSSES:
                rs = [r for r in runs if r["net"] == net and r["loss"] == loss]
                if rs:
                    lines.append(f"| {net} | {loss} | {_mean_std([r['mae'] for r in rs])} | "
                                 f"{_mean_std([r['eps_error'] for r in rs])} | "
                                 f"{_mean_std([r['pearson'] for r in rs])} | {len(rs)} | "
                                 f"{statistics.mean(r['train_seconds'] for r in rs):.0f} |")
        lines.append("")
    if "deploy" in results:
        lines += ["## 2. Size and latency at 224x224 (LiteRT, batch 1, 1 thread, p50)", "",
                  "| model | head | params | MACs | fp32 ms | int8 ms | int8 .tflite MB | fp32 .tflite MB |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in results["deploy"]:
            lines.append(f"| {r['arch']} | {r['head']} | {r['params'] / 1e6:.2f} M | {r['macs'] / 1e9:.2f} G | "
                         f"{r['fp32_ms']:.2f} | {r['int8_ms']:.2f} | {r['int8_mb']:.2f} | {r['fp32_mb']:.2f} |")
        lines.append("")
    if "int8" in results:
        g = results["int8"]
        lines += ["## 3. int8 vs fp32 (trained TinyAgeNet, dldl, seed 0, 64x64, no flip averaging)", "",
                  "| PyTorch MAE | fp32 .tflite MAE | int8 .tflite MAE | int8 - fp32 | fp32 ms | int8 ms |",
                  "|---|---|---|---|---|---|",
                  f"| {g['torch_mae_no_flip']:.3f} | {g['fp32_mae']:.3f} | {g['int8_mae']:.3f} | {g['gap']:+.3f} | "
                  f"{g['fp32_ms_64px']:.3f} | {g['int8_ms_64px']:.3f} |", ""]
    if "curl" in results:
        c = results["curl"]
        lines += ["## 4. CURL-pruned TinyAgeNet (50 % MACs, 64x64)", "",
                  "| model | MAE (flip) | LiteRT fp32 ms | MACs |", "|---|---|---|---|",
                  f"| TinyAgeNet | {c['base_mae']:.3f} | {c['base_ms']:.3f} | {c['metrics'].get('macs_before', 0) / 1e6:.1f} M |",
                  f"| CURL 50 %, BN re-estimated | {c['metrics'].get('mae_pruned_bn', float('nan')):.3f} | - | "
                  f"{c['metrics'].get('macs', 0) / 1e6:.1f} M |",
                  f"| CURL 50 % + {c['finetune_epochs']} ep | {c['pruned_mae']:.3f} | {c['pruned_ms']:.3f} | "
                  f"{c['metrics'].get('macs', 0) / 1e6:.1f} M |", "",
                  f"CURL scored on {PROXY} proxy images; scoring, pruning and fine-tuning took "
                  f"{c['prune_seconds']:.0f} s.", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", required=True)
    ap.add_argument("--parts", nargs="+", default=["losses", "deploy", "int8", "curl"])
    ap.add_argument("--nets", nargs="+", default=list(NETS))
    ap.add_argument("--losses", nargs="+", default=list(LOSSES))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--augment", default="standard")
    ap.add_argument("--finetune-epochs", type=int, default=2)
    ap.add_argument("--out", default=str(HERE / "dldl_ordinal.md"))
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    results = _cache(work)
    if "losses" in args.parts:
        for seed in args.seeds:
            for net in args.nets:
                for loss in args.losses:
                    key = f"losses/{net}/{loss}/{seed}"
                    if key not in results:
                        results[key] = train_one(net, loss, seed, work, args.n, args.epochs, args.augment)
                        _save(work, results)
                        print(key, f"MAE {results[key]['mae']:.2f}", flush=True)
    if "deploy" in args.parts and "deploy" not in results:
        results["deploy"] = deploy_rows(work)
        _save(work, results)
    if "int8" in args.parts and "int8" not in results:
        results["int8"] = int8_gap(work)
        _save(work, results)
    if "curl" in args.parts and "curl" not in results:
        results["curl"] = curl_row(work, args.finetune_epochs)
        _save(work, results)
    Path(args.out).write_text(table(results, args) + "\n")
    Path(args.out).with_suffix(".json").write_text(json.dumps(results, indent=1) + "\n")
    print(Path(args.out).read_text())


if __name__ == "__main__":
    main()
