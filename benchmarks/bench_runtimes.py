"""Latency of mobilenet_v2 and resnet18 at 224x224 and 32x32 on torch (eager), onnxruntime (CPU EP),
LiteRT fp32 and LiteRT int8 (XNNPACK), at 1 and 2 threads, in one run of ``edgekit.bench``; and the
harness's p50 against a bare timing loop of the same runtime, model, threads and input.

    python benchmarks/bench_runtimes.py [--out benchmarks/results/runtimes] [--runs N] [--warmup 10]

Models are untrained (latency does not depend on the weights): ImageNet heads (1000 classes) at
224x224, CIFAR-style stride-1 stems (``small_input=True``, 10 classes) at 32x32. Artifacts come from
the export stage (``edgekit.export``: ONNX fp32, TFLite fp32, and TFLite int8 by litert-torch PT2E
full-integer quantization calibrated on 16 real images of scikit-learn's digits, resized by each
model's input spec). Where the export stage's parity gate rejects an untrained model's int8 file,
the same converter functions are called directly (said in the output).

Each harness measurement is bracketed by two bare loops (a fresh process that loads the artifact
with the runtime's plain API, runs ``warmup`` untimed calls and then as many timed calls as the
harness does by default -- at least 50 and at least 1 s -- each timed with perf_counter, and reports
the median); the ratio is harness p50 / mean of the two bare p50s, so slow drift of a
shared machine's load cancels to first order.

Writes OUT/results.json (edgekit results), OUT/bare_loops.json, OUT/report/ (``edgekit report``)
and benchmarks/bench_runtimes.md (the recorded tables).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from edgekit.benchmark.command import rerun_command

ROOT = Path(__file__).resolve().parents[1]
MODELS = [("mobilenet_v2", 224), ("mobilenet_v2", 32), ("resnet18", 224), ("resnet18", 32)]
THREADS = (1, 2)
CALIB_N = 16


# ---------------------------------------------------------------- bare loops (run in a child process)
def bare_loop(spec: dict[str, Any]) -> dict[str, Any]:
    """The simplest honest timing of one runtime: load, warm up, time each call, take the median."""
    import numpy as np

    n, runs, warmup, path = spec["threads"], spec["runs"], spec["warmup"], spec["artifact"]
    x = np.random.default_rng(0).standard_normal(spec["shape"]).astype(np.float32)
    if spec["runtime"] == "torch":
        import torch

        from edgekit.checkpoint import load_checkpoint

        torch.set_num_threads(n)
        torch.set_num_interop_threads(1)
        model, xt = load_checkpoint(path).model, torch.from_numpy(x)
        with torch.inference_mode():
            call = lambda: model(xt)  # noqa: E731
            times = _loop(call, runs, warmup)
    elif spec["runtime"] == "onnxruntime":
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads = n, 1
        sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        times = _loop(lambda: sess.run(None, {name: x}), runs, warmup)
    else:
        from ai_edge_litert.interpreter import Interpreter

        interp = Interpreter(model_path=path, num_threads=n)
        interp.allocate_tensors()
        inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
        if np.dtype(inp["dtype"]).kind != "f":
            scale, zero = inp["quantization"]
            info = np.iinfo(inp["dtype"])
            x = np.clip(np.round(x / scale) + zero, info.min, info.max).astype(inp["dtype"])

        def call() -> Any:
            interp.set_tensor(inp["index"], x)
            interp.invoke()
            return interp.get_tensor(out["index"])

        times = _loop(call, runs, warmup)
    return {"p50_ms": float(np.median(times)), "runs": len(times)}


def _loop(call: Any, runs: int | None, warmup: int) -> list[float]:
    """``runs`` timed calls, or (runs=None) at least 50 calls and at least 1 s, as the harness's default."""
    for _ in range(warmup + 1):
        call()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < (runs or 50) or (runs is None and time.perf_counter() - start < 1.0):
        t = time.perf_counter()
        call()
        times.append((time.perf_counter() - t) * 1e3)
    return times


def run_bare(spec: dict[str, Any]) -> dict[str, Any]:
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(spec["threads"])
    res = subprocess.run([sys.executable, __file__, "--bare", json.dumps(spec)], capture_output=True, text=True,
                         env=env, timeout=900)
    if res.returncode != 0:
        raise RuntimeError(f"bare loop failed: {res.stderr.strip().splitlines()[-1:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- artifacts
def build(work: Path, only: list[str] | None = None) -> list[dict[str, Any]]:
    """Checkpoints and their exports; returns one entry per (arch, size)."""
    import torch

    import edgekit
    from edgekit.checkpoint import save_checkpoint
    from edgekit.data.transforms import make_input_spec
    from edgekit.registry import create_model

    torch.manual_seed(0)
    torch.set_num_threads(2)
    out = []
    for arch, size in MODELS:
        if only and f"{arch}_{size}" not in only:
            continue
        small = size <= 64
        kwargs = {"num_classes": 10 if small else 1000, **({"small_input": True} if small else {})}
        name = f"{arch}_{size}"
        ckpt_path = work / f"{name}.pt"
        labels = [str(i) for i in range(kwargs["num_classes"])]
        if not ckpt_path.exists():
            save_checkpoint(ckpt_path, create_model(arch, **kwargs).eval(), arch=arch, arch_kwargs=kwargs,
                            labels=labels, input_spec=make_input_spec(size))
        files = {"torch": ckpt_path, "onnxruntime": work / f"{name}.fp32.onnx",
                 "litert fp32": work / f"{name}.fp32.tflite", "litert int8": work / f"{name}.int8.tflite"}
        notes = json.loads((work / "provenance.json").read_text()) if (work / "provenance.json").exists() else {}
        if not all(p.exists() for p in files.values()):
            t0 = time.perf_counter()
            how = "edgekit.export (fp32 and int8)"
            try:
                edgekit.export(ckpt_path, ["onnx", "tflite"], precision="fp32", output_dir=work, calib="digits",
                               parity_size=32, force=True)
            except Exception as exc:
                how = f"export converters called directly ({type(exc).__name__}: {str(exc)[:100]})"
            try:
                edgekit.export(ckpt_path, "tflite", precision="int8", output_dir=work, calib="digits",
                               calib_size=CALIB_N, parity_size=32, force=True)
            except Exception as exc:  # an untrained model's near-constant logits can fail the int8 gate
                how = (f"edgekit.export (fp32); int8 by the export stage's convert_int8 called directly, its parity "
                       f"gate having rejected the untrained model ({str(exc).split(':', 2)[-1].strip()[:60]}...)")
            _convert_directly(ckpt_path, files)
            notes[name] = how
            (work / "provenance.json").write_text(json.dumps(notes, indent=1))
            print(f"{name}: artifacts via {how} in {time.perf_counter() - t0:.0f} s", flush=True)
        how = notes.get(name, "edgekit.export")
        missing = [str(p) for p in files.values() if not p.exists()]
        if missing:
            raise SystemExit(f"missing artifacts: {missing}")
        out.append({"name": name, "arch": arch, "size": size, "files": files, "how": how})
    return out


def _convert_directly(ckpt_path: Path, files: dict[str, Path]) -> None:
    import torch

    from edgekit.checkpoint import load_checkpoint
    from edgekit.data import load_data
    from edgekit.exporters import onnx as onnx_conv
    from edgekit.exporters import tflite as tflite_conv

    ckpt = load_checkpoint(ckpt_path)
    model, tf = ckpt.model.eval(), ckpt.eval_transform
    bundle = load_data("digits")
    calib = torch.stack([tf(bundle.train[i][0]) for i in range(CALIB_N)])
    sample = calib[:1]
    if not files["onnxruntime"].exists():
        onnx_conv.export_fp32(model, sample, files["onnxruntime"])
    if not files["litert fp32"].exists():
        files["litert fp32"].write_bytes(tflite_conv.convert_fp32(model, sample))
    if not files["litert int8"].exists():
        files["litert int8"].write_bytes(tflite_conv.convert_int8(model, sample, calib))


# ---------------------------------------------------------------- main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "runtimes"))
    ap.add_argument("--runs", type=int, help="Timed runs (default: at least 50 and at least 1 s, both sides).")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--models", help="Only these, e.g. mobilenet_v2_32,resnet18_224 (default: all four).")
    ap.add_argument("--md", default=str(ROOT / "benchmarks" / "bench_runtimes.md"), help="Markdown to write.")
    ap.add_argument("--bare", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.bare:
        print(json.dumps(bare_loop(json.loads(args.bare))))
        return

    import edgekit
    from edgekit.benchmark.machine import load_average, machine_info
    from edgekit.benchmark.schema import results_document
    from edgekit.fileio import write_json

    out = Path(args.out)
    work = out / "artifacts"
    work.mkdir(parents=True, exist_ok=True)
    models = build(work, args.models.split(",") if args.models else None)
    rows, bare, loads = [], [], [load_average()]
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    for m in models:
        for label, path in m["files"].items():
            runtime = label.split()[0]
            for n in THREADS:
                spec = {"runtime": runtime, "artifact": str(path), "threads": n, "runs": args.runs,
                        "warmup": args.warmup, "shape": [1, 3, m["size"], m["size"]]}
                b1 = run_bare(spec)
                row = edgekit.bench([path], runtime=runtime, threads=n, runs=args.runs, warmup=args.warmup)[0]
                row["label"], row["input"] = label, f"{m['size']}x{m['size']}"
                if row.get("error"):
                    print(f"{m['name']} {label} t{n}: FAILED {row['error']}", flush=True)
                    rows.append(row)
                    continue
                b2 = run_bare(spec)
                ratio = row["p50_ms"] / ((b1["p50_ms"] + b2["p50_ms"]) / 2)
                bare.append({"model": m["name"], "label": label, "threads": n, "harness_p50_ms": row["p50_ms"],
                             "bare_p50_ms": [b1["p50_ms"], b2["p50_ms"]], "ratio": ratio})
                rows.append(row)
                loads.append(load_average())
                print(f"{m['name']:<18} {label:<12} t{n}: p50 {row['p50_ms']:8.3f}  p90 {row['p90_ms']:8.3f}  "
                      f"p99 {row['p99_ms']:8.3f} ms   bare p50 {b1['p50_ms']:.3f}/{b2['p50_ms']:.3f}  "
                      f"ratio {ratio:.3f}{'  NOISY' if row['noisy'] else ''}", flush=True)
    finished = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    cmd = rerun_command(__file__, sys.argv[1:])
    write_json(out / "results.json", results_document(rows, machine_info(), cmd))
    write_json(out / "bare_loops.json", bare)
    report = edgekit.report([out / "results.json"], out / "report", force=True,
                            title="edgekit runtimes: mobilenet_v2 and resnet18, 224 and 32 px, 1 and 2 threads")
    write_markdown(Path(args.md), models, rows, bare, loads, started, finished, cmd,
                   report, args)
    print(f"report: {report}")


def write_markdown(path: Path, models: list[dict], rows: list[dict], bare: list[dict], loads: list[Any],
                   started: str, finished: str, cmd: str, report: Path, args: Any) -> None:
    from edgekit.benchmark.machine import machine_info

    mi = machine_info()
    versions: dict[str, str] = {}
    for r in rows:
        versions.update(r.get("versions") or {})
    ratio_of = {(b["model"], b["label"], b["threads"]): b for b in bare}
    lines = ["# Runtimes: mobilenet_v2 and resnet18 at 224 and 32 px, 1 and 2 threads", "",
             f"Command: `{cmd}` (runs={args.runs or 'at least 50 and at least 1 s'}, warm-up={args.warmup}, batch 1, "
             "one process per measurement).",
             f"Run: {started} to {finished}.",
             f"Machine: {mi['cpu']}, {mi['logical_cores']} logical cores ({mi['usable_cores']} usable), "
             f"{mi['memory_gb']} GB, {mi['os']}, Python {mi['python']}.",
             "Versions: " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items()) if v) + ".", "",
             f"1-minute load average during the run: {min(x for x in loads if x is not None):.1f} to "
             f"{max(x for x in loads if x is not None):.1f} on 2 cores (above ~1, another job shared the CPU: "
             "absolute numbers are then pessimistic and noisy, 2-thread rows most). Rows flagged noisy have "
             "CV > 10%. The harness/bare ratio is measured back to back under the same conditions and is the "
             "number to read for harness overhead.", "",
             "Artifacts: " + "; ".join(f"{m['name']} via {m['how']}" for m in models) + ".", "",
             "## Latency (ms) and harness p50 / bare-loop p50", "",
             "| model | input | runtime | threads | p50 | p90 | p99 | mean ± std | bare p50 (before/after) "
             "| harness / bare | noisy |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r.get("error"):
            lines.append(f"| {r['model']} | {r['input']} | {r['label']} | {r['threads']} | failed: {r['error']} "
                         "| | | | | | |")
            continue
        b = ratio_of.get((r["model"], r["label"], r["threads"]))
        lines.append(
            f"| {r['model']} | {r['input']} | {r['label']} | {r['threads']} | {r['p50_ms']:.3f} | "
            f"{r['p90_ms']:.3f} | {r['p99_ms']:.3f} | {r['mean_ms']:.3f} ± {r['std_ms']:.3f} | "
            + (f"{b['bare_p50_ms'][0]:.3f} / {b['bare_p50_ms'][1]:.3f} | {b['ratio']:.3f} |" if b else "- | - |")
            + (f" yes (CV {r['cv']:.0%}) |" if r["noisy"] else " no |"))
    ratios = sorted(b["ratio"] for b in bare)
    if ratios:
        within = sum(1 for x in ratios if abs(x - 1) <= 0.03)
        lines += ["", f"Harness / bare p50 over {len(ratios)} measurements: median {ratios[len(ratios) // 2]:.3f}, "
                  f"range {ratios[0]:.3f} to {ratios[-1]:.3f}; {within} of {len(ratios)} within 3%."]
    rel = os.path.relpath(report, path.parent)
    lines += ["", f"Report: [`{rel}`]({rel}) (and `report.md` beside it): sources and machine; the full table "
              "with init and first-run times, throughput, size, peak memory and speed-up against torch eager; "
              "noisy-row warning; p50 bars with p90/p99 whiskers; the distribution of every timed run; "
              "size and speed-up bars; method.", ""]
    path.write_text("\n".join(lines))


if __name__ == "__main__":
    main()
