"""Which channel counts are slow on which CPU runtime, and why pruned models got slower on onnxruntime.

Part 1 (``micro``): chains of ``DEPTH`` identical convolutions (3x3 dense, 1x1 dense, 3x3
depthwise; fp32, batch 1, 1 thread, each followed by ReLU) at the spatial sizes of the
small-input nets edgekit prunes (compact_cnn and resnet18 at 32 px, mobilenet_v2 at 96 px),
swept over channel counts. A chain (not one conv) so that layout changes at the graph's
edges are amortised as they are in a real network. Timed on:

* onnxruntime CPU with all graph optimisations (its default, what ``edgekit bench`` uses),
* onnxruntime with ``ORT_ENABLE_EXTENDED`` (everything except the NCHWc layout transformer),
* LiteRT (XNNPACK), on a subset of the counts (each count is a litert-torch conversion).

Every configuration is timed in ``--rounds`` interleaved rounds (shuffled order each round,
median per round, median of the round medians), because this CPU is shared.

Part 2 (``graph``): the operators onnxruntime actually runs for a chain after optimisation
(``SessionOptions.optimized_model_filepath``): NCHWc ``Conv`` nodes of the
``com.microsoft.nchwc`` domain and ``ReorderInput``/``ReorderOutput`` nodes, per count.

Part 3 (``models``): whole checkpoints (a parent and its pruned children, e.g. with and
without ``--round-to``) exported with ``edgekit.export`` and timed with ``edgekit.bench``
(one process per measurement, 1 thread), interleaved over rounds.

Part 4 (``search``): the ``latency=`` target search (L1 scores) on each runtime without channel
rounding and with ``round_to="auto"``: the MACs each keeps at the same measured latency.

Usage::

    python benchmarks/ort_channels.py micro --work bench_ort --out benchmarks/ort_channels.json
    python benchmarks/ort_channels.py models --work bench_ort --out benchmarks/ort_channels.models.json \\
        parent.pt pruned.pt pruned_r16.pt
    python benchmarks/ort_channels.py search --work bench_ort --out benchmarks/ort_channels.search.json \\
        parent.pt --fraction 0.8
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
from edgekit.benchmark.command import rerun_command

DEPTH = 4
# (kind, spatial size, ORT channel counts, LiteRT channel counts)
SMALL = list(range(8, 73))
LITERT_SMALL = [8, 12, 15, 16, 17, 20, 24, 28, 31, 32, 33, 40, 44, 48, 50, 56, 60, 63, 64, 65, 72]
AROUND_128 = list(range(116, 141))
LITERT_128 = [120, 124, 127, 128, 129, 132, 136]
AROUND_256 = list(range(240, 265))
CONFIGS = [
    ("conv3x3", 16, SMALL, LITERT_SMALL),
    ("conv3x3", 8, SMALL + AROUND_128, LITERT_128),
    ("conv3x3", 4, AROUND_128 + AROUND_256, []),
    ("conv1x1", 16, SMALL, LITERT_SMALL),
    ("conv1x1", 8, AROUND_128, LITERT_128),
    ("dw3x3", 16, SMALL, LITERT_SMALL),
    ("dw3x3", 8, AROUND_128, []),
]


# ----------------------------------------------------------------------------- model builders

def onnx_chain(kind: str, c: int, hw: int, depth: int = DEPTH) -> bytes:
    """A chain of ``depth`` conv+ReLU layers with ``c`` channels in and out, NCHW, as ONNX bytes."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(c * 1000 + hw)
    k, group = (1, 1) if kind == "conv1x1" else (3, c if kind == "dw3x3" else 1)
    nodes, inits, x = [], [], "x"
    for i in range(depth):
        w = rng.standard_normal((c, c // group, k, k)).astype(np.float32) * 0.1
        b = rng.standard_normal(c).astype(np.float32) * 0.1
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
        nodes.append(helper.make_node("Conv", [x, f"w{i}", f"b{i}"], [f"c{i}"], kernel_shape=[k, k],
                                      pads=[k // 2] * 4, group=group))
        out = "y" if i == depth - 1 else f"r{i}"
        nodes.append(helper.make_node("Relu", [f"c{i}"], [out]))
        x = out
    graph = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, hw, hw])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, c, hw, hw])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def tflite_chain(kind: str, c: int, hw: int, cache: Path, depth: int = DEPTH) -> Path:
    """The same chain converted with litert-torch, NHWC in and out (no transposes left), cached on disk."""
    path = cache / f"{kind}_c{c}_hw{hw}_d{depth}.tflite"
    if path.exists():
        return path
    import torch
    from torch import nn

    import litert_torch

    litert_torch.config.show_progress = False
    k, group = (1, 1) if kind == "conv1x1" else (3, c if kind == "dw3x3" else 1)

    class Chain(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(*[m for _ in range(depth) for m in (nn.Conv2d(c, c, k, 1, k // 2, groups=group),
                                                                         nn.ReLU())])

        def forward(self, x: torch.Tensor) -> torch.Tensor:  # NHWC in, NHWC out
            return self.body(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)

    torch.manual_seed(c)
    em = litert_torch.convert(Chain().eval(), (torch.randn(1, hw, hw, c),))
    tmp = path.with_suffix(".part")
    tmp.write_bytes(bytes(em.model_content()))
    tmp.replace(path)
    return path


# ----------------------------------------------------------------------------- sessions and timing

def ort_session(model: bytes, level: str, optimized_path: str | None = None):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    opts.graph_optimization_level = {"all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
                                     "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED}[level]
    if optimized_path:
        opts.optimized_model_filepath = optimized_path
    return ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])


def ort_runner(model: bytes, level: str, shape: tuple[int, ...]):
    sess = ort_session(model, level)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    feed = {"x": x}
    return lambda: sess.run(None, feed)


def litert_runner(path: Path):
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path), num_threads=1)
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    x = np.random.default_rng(0).standard_normal(inp["shape"]).astype(np.float32)

    def run():
        interp.set_tensor(inp["index"], x)
        interp.invoke()
        return interp.get_tensor(out["index"])
    return run


def median_us(fn, budget_s: float, min_runs: int = 15, max_runs: int = 400) -> float:
    """Median wall time (microseconds) of ``fn`` over as many runs as fit in ``budget_s``."""
    for _ in range(3):
        fn()
    lat, t_end = [], time.perf_counter() + budget_s
    while len(lat) < max_runs and (len(lat) < min_runs or time.perf_counter() < t_end):
        t = time.perf_counter_ns()
        fn()
        lat.append(time.perf_counter_ns() - t)
    return statistics.median(lat) / 1e3


def tflite_ops(path: Path) -> list[str]:
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))
    return sorted({d["op_name"] for d in interp._get_ops_details()})


def ort_graph(kind: str, c: int, hw: int) -> dict[str, int]:
    """Operators onnxruntime runs for the chain after all optimisations (domain-qualified)."""
    import onnx

    with tempfile.TemporaryDirectory() as tmp:
        p = str(Path(tmp) / "opt.onnx")
        ort_session(onnx_chain(kind, c, hw), "all", p)
        g = onnx.load(p).graph
    return dict(Counter(f"{n.domain + '.' if n.domain else ''}{n.op_type}" for n in g.node))


# ----------------------------------------------------------------------------- parts

def micro(args: argparse.Namespace) -> dict:
    work = Path(args.work)
    cache = work / "tflite_chains"
    cache.mkdir(parents=True, exist_ok=True)
    jobs = []  # (key, runner factory)
    for kind, hw, counts, lcounts in CONFIGS:
        for c in counts:
            for level in ("all", "extended"):
                jobs.append(((f"ort-{level}", kind, hw, c), ("ort", kind, c, hw, level)))
        if not args.no_litert:
            for c in lcounts:
                jobs.append((("litert", kind, hw, c), ("litert", kind, c, hw, None)))
    t0 = time.time()
    runners = {}
    for key, (rt, kind, c, hw, level) in jobs:
        if rt == "ort":
            runners[key] = ort_runner(onnx_chain(kind, c, hw), level, (1, c, hw, hw))
        else:
            runners[key] = litert_runner(tflite_chain(kind, c, hw, cache))
    print(f"built {len(runners)} sessions in {time.time() - t0:.0f} s", flush=True)
    rounds: dict[tuple, list[float]] = {k: [] for k in runners}
    rng = random.Random(0)
    for r in range(args.rounds):
        keys = list(runners)
        rng.shuffle(keys)
        for key in keys:
            rounds[key].append(median_us(runners[key], args.budget))
        print(f"round {r + 1}/{args.rounds} done ({time.time() - t0:.0f} s)", flush=True)
    rows = [{"runtime": k[0], "kind": k[1], "hw": k[2], "channels": k[3], "depth": DEPTH,
             "us": statistics.median(v), "rounds_us": v} for k, v in rounds.items()]
    graphs = []
    for kind, hw, counts, _ in CONFIGS:
        for c in sorted(set(counts) & {8, 12, 16, 24, 32, 40, 48, 50, 56, 64, 65, 120, 128, 129, 136, 256, 250}):
            graphs.append({"kind": kind, "hw": hw, "channels": c, "ops": ort_graph(kind, c, hw)})
    lt_ops = {}
    if not args.no_litert:
        for kind, hw, _, lcounts in CONFIGS:
            if lcounts:
                lt_ops[f"{kind}@{hw}"] = tflite_ops(tflite_chain(kind, lcounts[0], hw, cache))
    return {"rows": rows, "ort_graphs": graphs, "litert_ops": lt_ops}


def models(args: argparse.Namespace) -> dict:
    import edgekit

    work = Path(args.work) / "model_exports"
    arts: dict[str, dict[str, str]] = {}
    for ck in args.checkpoints:
        name = Path(ck).stem
        paths = {"onnxruntime": work / name / f"{name}.fp32.onnx", "litert": work / name / f"{name}.fp32.tflite"}
        if not all(p.exists() for p in paths.values()):  # exported once, reused by later runs
            edgekit.export(ck, ["onnx", "tflite"], output_dir=work / name, name=name, parity_size=32, force=True)
        arts[name] = {rt: str(p) for rt, p in paths.items()}
    times: dict[tuple[str, str], list[float]] = {}
    rng = random.Random(0)
    for r in range(args.rounds):
        pairs = [(n, rt) for n in arts for rt in args.runtimes]
        rng.shuffle(pairs)
        for n, rt in pairs:
            row = edgekit.bench(arts[n][rt], runtime=rt, threads=1, min_seconds=args.min_seconds)[0]
            if row.get("error"):
                raise SystemExit(f"{n} on {rt}: {row['error']}")
            times.setdefault((n, rt), []).append(float(row["p50_ms"]))
        print(f"round {r + 1}/{args.rounds} done", flush=True)
    from edgekit.checkpoint import load_checkpoint

    metas = {}
    for ck in args.checkpoints:
        c = load_checkpoint(ck)
        metas[Path(ck).stem] = {"macs": c.metrics.get("macs"), "val_top1": c.metrics.get("val_top1"),
                                "round_to": c.provenance.get("round_to"),
                                "kept": [g["kept"] for g in c.provenance.get("groups") or []]}
    rows = [{"model": n, "runtime": rt, "p50_ms": statistics.median(v), "rounds_ms": v, **metas.get(n, {})}
            for (n, rt), v in times.items()]
    return {"rows": rows}


def search(args: argparse.Namespace) -> dict:
    """``latency=FRACTION*parent ms@RUNTIME`` searches with L1 scores, without rounding and with
    ``round_to="auto"``: the MACs each keeps at the same measured latency, and the confirmation."""
    import logging

    import torch

    from edgekit.checkpoint import load_checkpoint
    from edgekit.compress.latency import measure_latency, select_for_latency
    from edgekit.compress.prune import score_units
    from edgekit.compress.selection import Target
    from edgekit.compress.units import UnitGraph
    from edgekit.errors import EdgekitError

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    ck = load_checkpoint(args.checkpoint)
    x = torch.randn(8, 3, *ck.input_spec.get("size", [32, 32]))
    out: dict = {"checkpoint": args.checkpoint, "fraction": args.fraction, "runs": []}
    for rt in args.runtimes:
        base = measure_latency(ck, rt)
        for rnd in (None, "auto"):
            graph = UnitGraph(ck.model, x[:1])
            scores = score_units("l1", ck.model, graph, x, torch.zeros(8, dtype=torch.long), progress=False)
            row: dict = {"runtime": rt, "round_to_arg": rnd, "target_ms": args.fraction * base}
            t0 = time.time()
            try:
                sel, info = select_for_latency(graph, scores, ck, Target("latency", args.fraction * base, rt),
                                               rank="raw", min_keep=0.3, round_to=rnd, iterations=4)
                row.update(info, kept=[g.size - len(sel.removal.get(g.index, [])) for g in graph.groups])
            except EdgekitError as exc:
                row["error"] = str(exc)
            row["seconds"] = time.time() - t0
            out["runs"].append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "trials"})[:400], flush=True)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="part", required=True)
    m = sub.add_parser("micro")
    m.add_argument("--rounds", type=int, default=3)
    m.add_argument("--budget", type=float, default=0.03, help="seconds of timed runs per config per round")
    m.add_argument("--no-litert", action="store_true")
    w = sub.add_parser("models")
    w.add_argument("checkpoints", nargs="+")
    w.add_argument("--rounds", type=int, default=3)
    w.add_argument("--min-seconds", type=float, default=0.5)
    w.add_argument("--runtimes", nargs="+", default=["onnxruntime", "litert"])
    s = sub.add_parser("search")
    s.add_argument("checkpoint")
    s.add_argument("--fraction", type=float, default=0.8, help="target = this fraction of the parent's latency")
    s.add_argument("--runtimes", nargs="+", default=["onnxruntime", "litert"])
    for q in (m, w, s):
        q.add_argument("--work", required=True)
        q.add_argument("--out", required=True)
    args = p.parse_args()
    import onnxruntime

    result = {"micro": micro, "models": models, "search": search}[args.part](args)
    result["meta"] = {"command": rerun_command(__file__, sys.argv[1:], getattr(args, "work", None)), "machine": platform.machine(),
                      "cpu_count": os.cpu_count(), "load_avg_1m": os.getloadavg()[0],
                      "onnxruntime": onnxruntime.__version__,
                      "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
