"""Accuracy against MACs and against measured latency: CURL (one step, Fisher, multi-step,
group-normalised) and the Torch-Pruning baselines (L1, Taylor, random), before and after recovery.

Phases (each resumable: rows are cached in the JSON files under ``--work``):

``prune``   every (method, MACs ratio, seed): ``edgekit.prune`` the teacher (on ``--device``;
            a CUDA GPU makes the grid minutes), record top-1 right after pruning (BN
            re-estimated) and after ``--finetune-epochs`` of fine-tuning, and the channel plan;
``latency`` on this CPU, batch 1, ``--threads`` threads: the teacher and every seed-0 plan of
            the grid, rebuilt from its channel plan and exported, on onnxruntime and LiteRT
            (latency depends on the widths alone, so a plan pruned on the GPU is timed here);
            the teacher is re-timed between models so load drift shows;
``equal``   every method pruned to the **same measured latency** (``--target latency=`` on each
            runtime, the channel multiple of that runtime), then recovered the same way, for each
            of ``--seeds`` (the budget is the teacher's median of 3 timings, taken once);
``report``  ``prune_curves.md`` tables and ``prune_curves.png`` (accuracy vs MACs, vs latency).

    python benchmarks/prune_curves.py prune --teacher teacher_r18.pt --work curves --device cuda
    python benchmarks/prune_curves.py latency --teacher teacher_r18.pt --work curves
    python benchmarks/prune_curves.py equal --teacher teacher_r18.pt --work curves --fraction 0.5
    python benchmarks/prune_curves.py report --teacher teacher_r18.pt --work curves --md benchmarks/prune_curves.md

The same phases on a harder built-in set (``prune_curves_cluttered.md``), where the digits'
98 % teacher leaves the methods within an image of each other:

    edgekit train --arch resnet18 --data "synthetic:classes=8,n=8000,clutter=6,val=0.3" \
        --epochs 16 --no-small-input --seed 0 -o teacher_c6.pt
    python benchmarks/prune_curves.py prune --teacher teacher_c6.pt --work cluttered --tag cpu \
        --methods curl-ms3 curl l1 taylor random
    (then latency, equal --fraction 0.5 and 0.3, and report --md benchmarks/prune_curves_cluttered.md)
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Any

#: name -> prune() options. One-step CURL rows share their scores across ratios and seeds; their
#: step count is explicit, since ``edgekit prune`` now defaults to 3 Fisher steps for a MACs target
#: (``curl-ms3`` is that default); exact rows keep the paper's float32 arithmetic (``exact_precision``).
METHODS: dict[str, dict[str, Any]] = {
    "curl": {"method": "curl", "scoring": "exact", "steps": 1, "exact_precision": "fp32"},
    "curl-fisher": {"method": "curl", "scoring": "fisher", "steps": 1},
    "curl-ms3": {"method": "curl", "scoring": "fisher", "steps": 3},
    "curl-ms6": {"method": "curl", "scoring": "fisher", "steps": 6},
    "curl-ms6-ft": {"method": "curl", "scoring": "fisher", "steps": 6, "step_epochs": 1},
    "curl-norm": {"method": "curl", "scoring": "exact", "rank": "kl-norm", "steps": 1, "exact_precision": "fp32"},
    "l1": {"method": "l1"},
    "taylor": {"method": "taylor"},
    "random": {"method": "random"},
}
RATIOS = (0.75, 0.5, 0.35, 0.25)
#: the heading of a page's hand-written part, which ``report`` keeps when it rewrites the tables
READING = "## Reading"
RUNTIMES = ("onnxruntime", "litert")


def _rows(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}


def _put(path: Path, key: str, row: dict[str, Any]) -> None:
    rows = _rows(path)
    rows[key] = row
    path.write_text(json.dumps(rows, indent=1))


def _scores_file(work: Path, opts: dict[str, Any]) -> Path | None:
    if opts["method"] != "curl" or opts.get("steps", 1) > 1:
        return None
    return work / f"scores_{opts['method']}_{opts['scoring']}.pt"


def prune_grid(args: argparse.Namespace) -> None:
    from edgekit.compress.prune import prune

    out = args.work / f"prune_{args.tag}.json"
    for seed in args.seeds:
        for ratio in args.ratios:
            for name in args.methods:
                key = f"{name}|{ratio}|{seed}"
                if key in _rows(out):
                    continue
                opts = dict(METHODS[name])
                scores = _scores_file(args.work, opts)
                t0 = time.perf_counter()
                ck = prune(args.teacher, None, args.work / f"tmp_{args.tag}.pt", target=f"macs={ratio}", proxy_size=args.proxy,
                           finetune_epochs=args.finetune_epochs, seed=seed, device=args.device, force=True,
                           progress=False, scores_path=scores, train_fraction=args.train_fraction, **opts)
                m = ck.metrics
                row = {k: m.get(k) for k in ("macs_ratio", "params_ratio", "top1_unpruned", "top1_pruned_bn",
                                             "val_top1", "score_seconds", "prune_seconds", "recovery_seconds",
                                             "scores_cached", "steps")}
                row.update(method=name, ratio=ratio, seed=seed, device=args.device, wall=time.perf_counter() - t0,
                           train_fraction=args.train_fraction, finetune_epochs=args.finetune_epochs,
                           plan=ck.channel_plan, groups=ck.provenance["groups"])
                _put(out, key, row)
                print(key, {k: row[k] for k in ("macs_ratio", "top1_pruned_bn", "val_top1", "wall")}, flush=True)


def _merged(work: Path, prefix: str) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    # later sources replace the same rows of earlier ones: GPU workers with TF32 convolutions (the first device
    # run), then GPU workers scoring in true float32 (files tagged g32*), then rows re-run on this CPU (cpu*)
    def rank(p: Path) -> tuple[int, str]:
        tag = p.stem[len(prefix) + 1:]
        return (2 if tag.startswith("cpu") else 1 if tag.startswith("g32") else 0), p.name

    for p in sorted(work.glob(f"{prefix}_*.json"), key=rank):
        rows.update({k: {**r, "file": p.name} for k, r in _rows(p).items()})
    return rows


def latency(args: argparse.Namespace) -> None:
    """Seed-0 plans of the grid on each runtime here; the teacher before and after them (drift)."""
    from edgekit.checkpoint import build_model, load_checkpoint
    from edgekit.compress.latency import measure_latency

    teacher = load_checkpoint(args.teacher)
    out = args.work / "latency.json"
    grid = {k: r for k, r in _merged(args.work, "prune").items() if r["seed"] == 0}
    for rt in args.runtimes:
        before = _rows(out).get(f"teacher|{rt}")
        if before is None:
            before = {"runtime": rt, "ms": measure_latency(teacher, rt, threads=args.threads, workdir=args.work)}
            _put(out, f"teacher|{rt}", before)
        for key, row in sorted(grid.items()):
            lk = f"{key}|{rt}"
            if lk in _rows(out):
                continue
            child = teacher.derive(build_model(teacher.arch, teacher.arch_kwargs, row["plan"]), stage="prune")
            ms = measure_latency(child, rt, threads=args.threads, workdir=args.work)
            _put(out, lk, {"runtime": rt, "ms": ms, "parent_ms": before["ms"], "speedup": before["ms"] / ms})
            print(lk, round(ms, 3), round(before["ms"], 3), flush=True)
        after = measure_latency(teacher, rt, threads=args.threads, workdir=args.work)
        _put(out, f"teacher-after|{rt}", {"runtime": rt, "ms": after})


def equal(args: argparse.Namespace) -> None:
    """Each method pruned to ``fraction`` x the teacher's measured latency on each runtime."""
    from edgekit.checkpoint import load_checkpoint
    from edgekit.compress.latency import measure_latency
    from edgekit.compress.prune import prune

    teacher = load_checkpoint(args.teacher)
    out = args.work / "equal.json"
    for rt in args.runtimes:
        base_key = f"teacher|{rt}"
        if base_key not in _rows(out):
            ms = statistics.median(measure_latency(teacher, rt, threads=args.threads, workdir=args.work)
                                   for _ in range(3))
            _put(out, base_key, {"runtime": rt, "ms": ms})
        budget = _rows(out)[base_key]["ms"] * args.fraction
        for seed in args.seeds:
            for name in args.methods:
                opts = dict(METHODS[name])
                if opts.get("steps", 1) > 1:
                    continue  # a latency target is met in one measured step
                key = f"{name}|{rt}|{args.fraction}" + (f"|{seed}" if seed else "")  # seed 0: the first rows' keys
                if key in _rows(out):
                    continue
                t0 = time.perf_counter()
                ck = prune(teacher, None, args.work / "tmp_eq.pt", target=f"latency={budget:.4f}ms@{rt}",
                           proxy_size=args.proxy, finetune_epochs=args.finetune_epochs, seed=seed, device=args.device,
                           force=True, progress=False, scores_path=_scores_file(args.work, opts), **opts)
                m = ck.metrics
                lat = m.get("latency_search", {})
                _put(out, key, {"runtime": rt, "method": name, "seed": seed, "budget_ms": budget,
                                "macs_ratio": m["macs_ratio"], "params_ratio": m["params_ratio"],
                                "top1_pruned_bn": m["top1_pruned_bn"], "val_top1": m["val_top1"], "search": lat,
                                "wall": time.perf_counter() - t0})
                print(key, m["macs_ratio"], m["top1_pruned_bn"], m["val_top1"], flush=True)


def _mean_std(v: list[float]) -> str:
    return f"{statistics.mean(v):.2f} ± {statistics.stdev(v):.2f}" if len(v) > 1 else f"{v[0]:.2f}"


def report(args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = _merged(args.work, "prune")
    lat = _rows(args.work / "latency.json")
    eq = _rows(args.work / "equal.json")
    by: dict[tuple[str, float], list[dict[str, Any]]] = {}
    for r in grid.values():
        by.setdefault((r["method"], r["ratio"]), []).append(r)
    lines = ["| method | target MACs | MACs ratio | params ratio | top-1 pruned + BN | top-1 after recovery | "
             + " | ".join(f"{rt} ms (speed-up)" for rt in RUNTIMES) + " | seeds |",
             "|---|---|---|---|---|---|" + "---|" * len(RUNTIMES) + "---|"]
    for ratio in sorted({k[1] for k in by}, reverse=True):
        for name in METHODS:
            rs = by.get((name, ratio))
            if not rs:
                continue
            cells = []
            for rt in RUNTIMES:
                lr = lat.get(f"{name}|{ratio}|0|{rt}")
                cells.append(f"{lr['ms']:.3f} ({lr['speedup']:.2f}x)" if lr else "-")
            lines.append(f"| {name} | {ratio} | {statistics.mean(r['macs_ratio'] for r in rs):.3f} | "
                         f"{statistics.mean(r['params_ratio'] for r in rs):.3f} | "
                         f"{_mean_std([r['top1_pruned_bn'] for r in rs])} | {_mean_std([r['val_top1'] for r in rs])} | "
                         + " | ".join(cells) + f" | {len(rs)} |")
    eq_lines = ["| runtime | budget (x teacher) | budget ms | method | seed | measured ms (confirmed speed-up) | "
                "MACs ratio | params ratio | top-1 pruned + BN | top-1 after recovery |",
                "|---|---|---|---|---|---|---|---|---|---|"]
    rows = [(r["runtime"], -r["budget_ms"], list(METHODS).index(r["method"]), r.get("seed", 0), k.split("|")[2], r)
            for k, r in eq.items() if not k.startswith("teacher")]
    for rt, _, _, seed, fraction, r in sorted(rows, key=lambda t: t[:4]):
        conf = r["search"].get("confirmed", {})
        eq_lines.append(f"| {rt} | {fraction} | {r['budget_ms']:.3f} | {r['method']} | {seed} | "
                        f"{conf.get('pruned_ms', float('nan')):.3f} ({conf.get('speedup', float('nan')):.2f}x) | "
                        f"{r['macs_ratio']:.3f} | "
                        f"{r['params_ratio']:.3f} | {r['top1_pruned_bn']:.2f} | {r['val_top1']:.2f} |")
    # top row after recovery, bottom row right after pruning (BN re-estimated): each on its own scale,
    # so the recovered curves, a point or two apart, are not flattened by the collapses below
    fig, grid_axes = plt.subplots(2, 1 + len(RUNTIMES), figsize=(5 * (1 + len(RUNTIMES)), 8))
    for name in METHODS:
        pts = sorted((statistics.mean(r["macs_ratio"] for r in rs), statistics.mean(r["val_top1"] for r in rs),
                      statistics.mean(r["top1_pruned_bn"] for r in rs), ratio)
                     for (n, ratio), rs in by.items() if n == name)
        if not pts:
            continue
        color = None
        for axes, col in zip(grid_axes, (1, 2)):
            line = axes[0].plot([p[0] for p in pts], [p[col] for p in pts], "o-", color=color, label=name)[0]
            color = line.get_color()
            for ax, rt in zip(axes[1:], RUNTIMES):
                lp = sorted((lat[f"{name}|{p[3]}|0|{rt}"]["ms"], p[col]) for p in pts if f"{name}|{p[3]}|0|{rt}" in lat)
                ax.plot([q[0] for q in lp], [q[1] for q in lp], "o-", color=color, label=name)
    for axes, what in zip(grid_axes, ("after recovery", "right after pruning + BN")):
        axes[0].set_xlabel("MACs ratio")
        axes[0].set_ylabel(f"val top-1 %, {what}")
        for ax, rt in zip(axes[1:], RUNTIMES):
            ax.set_xlabel(f"{rt} ms, seed-0 plans (batch 1, {args.threads} thread)")
        axes[0].legend(fontsize=7)
    fig.tight_layout()
    png = Path(args.md).with_suffix(".png")
    fig.savefig(png, dpi=110)
    from edgekit.checkpoint import load_checkpoint

    teacher = load_checkpoint(args.teacher)
    n_val = len(teacher.load_data().val)
    top1 = next(iter(grid.values()))["top1_unpruned"] if grid else float("nan")
    head = [f"# Pruning curves: accuracy vs MACs and vs measured latency", "",
            f"Teacher: `{Path(args.teacher).name}` ({teacher.arch}, data `{teacher.data_record.get('spec')}`, val top-1 {top1:.2f} % "
            f"on {n_val} held-out images, one image = {100 / n_val:.2f} points); machine for latency: "
            f"{platform.machine()}, {args.threads} thread; grid rows from `{args.work}/prune_*.json`; raw rows "
            f"`{Path(args.md).with_suffix('.json').name}`.", "", "## Accuracy vs MACs (mean ± std over seeds)", ""]
    raw = {"grid": {k: {f: v for f, v in r.items() if f != "plan"} for k, r in sorted(grid.items())},
           "latency": lat, "equal": eq}
    Path(args.md).with_suffix(".json").write_text(json.dumps(raw, indent=1) + "\n")
    equal_part = ["", "## At equal measured latency", ""] + eq_lines if rows else []
    md = Path(args.md)
    old = md.read_text() if md.is_file() else ""
    reading = old[old.index(READING):] if READING in old else ""  # written by hand: kept across reports
    md.write_text("\n".join(head + lines + ["", f"![curves]({png.name})"] + equal_part) + "\n"
                  + (f"\n{reading}" if reading else ""))
    print(Path(args.md).read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("phase", choices=("prune", "latency", "equal", "report"))
    ap.add_argument("--teacher", type=Path, required=True)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--tag", default="grid", help="prune phase: the JSON file's suffix (parallel workers)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--ratios", type=float, nargs="+", default=list(RATIOS))
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    ap.add_argument("--runtimes", nargs="+", default=list(RUNTIMES))
    ap.add_argument("--proxy", type=int, default=256)
    ap.add_argument("--finetune-epochs", type=int, default=3)
    ap.add_argument("--train-fraction", type=float, default=1.0,
                    help="prune phase: proxy set and recovery drawn from this fraction of the training split "
                         "(CURL's limited-data setting; use its own --work, rows are keyed without it)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--fraction", type=float, default=0.5, help="equal phase: budget = fraction x teacher ms")
    ap.add_argument("--md", default="benchmarks/prune_curves.md")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    {"prune": prune_grid, "latency": latency, "equal": equal, "report": report}[args.phase](args)


if __name__ == "__main__":
    main()
