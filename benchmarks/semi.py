"""Benchmark: R2-D2 against pseudo-labelling and labelled-only training at few labels (issue 27, section 3).

For each data spec, labelled fraction and seed, three runs of ``edgekit train`` at the same
``--epochs``, the same network, batch size and recipe, differing only in ``--semi``:

* ``none``: the labelled images alone;
* ``pseudo-label``: R2-D2's stage 1, then confident hard labels (0.95) re-predicted every epoch;
* ``r2d2``: supervised stage 1, D2 (learnt pseudo-label table), R2 (``--repredict`` cycles),
  fine-tune on hard pseudo-labels, split 300 : 300 : 300 : 50 as the authors do.

The labelled set is a stratified draw seeded by the seed; the pool is the rest of the training
split, its labels hidden from training. After a run, and only then, this script reads the hidden
labels of the pool (``bundle.labeled_split(F, seed)[1].indices`` into ``bundle.train.targets``) and
scores the pseudo-labels the checkpoint kept after every stage and cycle (``extra["semi"]
["pseudo_labels"]``; -1 = no label, pseudo-label's unconfident images: their accuracy is over the
labelled ones, with the share labelled next to it). Top-1 is the checkpoint's ``val_top1`` on the
held-out validation split. Wall time is the whole ``edgekit.train`` call.

Every finished run is one JSON file under ``WORK/results`` and one row of the JSON next to the page,
so a cut-short or parallel benchmark resumes (a run interrupted mid-way resumes from its
``.resume`` file). Two processes may share ``--work`` and ``--out`` (give them different
``--fractions`` or ``--seeds``); the page is rewritten from all rows by every process.

Usage::

    python benchmarks/semi.py --work /tmp/semi --data digits --fractions 0.05 0.1 --seeds 0 1 2 \\
        --arch compact_cnn --arch-arg width_mult=0.5 --epochs 30 --batch-size 16
    python benchmarks/semi.py --work /tmp/semi --data synthetic:clutter=3,n=600,size=32 --fractions 0.05 0.1 ...
    python benchmarks/semi.py --work /tmp/semi --data gestures:n=220,size=32 --fractions 0.1 ...
    python benchmarks/semi.py --work /tmp/semi --page-only   # rewrite the page from the JSON
"""
from __future__ import annotations

import argparse
import fcntl
import json
import platform
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import torch
from prune_digits import mean_std  # the same "mean ± std" cell as the other pages (script folder)
from edgekit.benchmark.command import rerun_command

HERE = Path(__file__).resolve().parent
MODES = ("none", "pseudo-label", "r2d2")
BASELINES = ("none", "pseudo-label")
#: the hand-written reading of the tables below this heading survives a rerun
NOTES = "## Reading the tables"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", required=True, help="folder for checkpoints and per-run results")
    ap.add_argument("--data", action="append", default=[], help="data spec; repeatable")
    ap.add_argument("--fractions", type=float, nargs="+", default=[0.01, 0.05, 0.1])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    ap.add_argument("--arch", default="compact_cnn")
    ap.add_argument("--arch-arg", action="append", default=[], metavar="KEY=VALUE",
                    help="architecture keyword (numbers parsed as JSON); repeatable")
    ap.add_argument("--epochs", type=int, default=30, help="the whole budget of every mode")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(HERE / "semi.md"))
    ap.add_argument("--page-only", action="store_true", help="only rewrite the page from the JSON")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(args.work)
    (work / "results").mkdir(parents=True, exist_ok=True)
    raw_path = Path(args.out).with_suffix(".json")
    if not args.page_only:
        arch_kwargs = {k: _number(v) for k, _, v in (a.partition("=") for a in args.arch_arg)}
        for spec in args.data:
            for fraction in args.fractions:
                for seed in args.seeds:  # seeds before modes: a cut-short run has complete pairs
                    for mode in args.modes:
                        key = dict(data=spec, fraction=fraction, seed=seed, mode=mode, arch=args.arch,
                                   arch_kwargs=arch_kwargs, epochs=args.epochs, batch_size=args.batch_size)
                        if _find(raw_path, key) is None:
                            rec = run_one(work, key, sys.argv[1:])
                            if rec is None:
                                print(f"{spec} {fraction:.0%} seed {seed} {mode}: another process is running it",
                                      flush=True)
                                continue
                            _append(raw_path, rec)
                            print(_summary(rec), flush=True)
    with _locked(raw_path):
        results = json.loads(raw_path.read_text()) if raw_path.is_file() else []
    write_page(Path(args.out), results)


def run_one(work: Path, key: dict, argv: list[str]) -> dict | None:
    """Train one run (resuming a cut-short one), then score its pseudo-labels on the hidden pool;
    None when another process holds the run (its lock file under ``WORK``)."""
    kw = "".join(f"_{k}{v}" for k, v in (key["arch_kwargs"] or {}).items())
    name = "{}-{}{}-e{}-b{}-f{}-s{}-{}".format(key["data"].replace(":", "_").replace(",", "_").replace("=", ""),
                                               key["arch"], kw, key["epochs"], key["batch_size"], key["fraction"],
                                               key["seed"], key["mode"])
    done = work / "results" / f"{name}.json"
    if done.is_file():
        rec = json.loads(done.read_text())
        if all(rec.get(k) == v for k, v in key.items()):
            return rec
    claim = open(work / f"{name}.lock", "w")
    try:
        fcntl.flock(claim, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        claim.close()
        return None
    try:
        return _train_and_score(work, name, key, argv)
    finally:
        fcntl.flock(claim, fcntl.LOCK_UN)
        claim.close()


def _train_and_score(work: Path, name: str, key: dict, argv: list[str]) -> dict:
    import edgekit
    from edgekit.checkpoint import load_checkpoint

    done = work / "results" / f"{name}.json"
    if done.is_file():  # finished by another process since the JSON was read
        return json.loads(done.read_text())
    out = work / f"{name}.pt"
    resume = Path(str(out) + ".resume").is_file()
    t0 = time.perf_counter()
    edgekit.train(key["arch"], key["data"], out, labeled_fraction=key["fraction"], semi=key["mode"],
                  epochs=key["epochs"], seed=key["seed"], batch_size=key["batch_size"],
                  arch_kwargs=key["arch_kwargs"] or None, progress=False, force=not resume, resume=resume)
    seconds = time.perf_counter() - t0
    ckpt = load_checkpoint(out)
    semi = ckpt.extra.get("semi") or {}
    # the benchmark, not training, reads the hidden labels: the same seeded split as training's
    bundle = edgekit.load_data(key["data"], seed=key["seed"])
    labelled, rest = bundle.labeled_split(key["fraction"], key["seed"])
    truth = torch.as_tensor(bundle.train.targets)[torch.as_tensor(rest.indices)]
    scored = {}
    for stage, labels in (semi.get("pseudo_labels") or {}).items():
        has = labels >= 0
        scored[stage] = {"accuracy": 100.0 * float((labels[has] == truth[has]).float().mean()) if bool(has.any())
                         else None, "labelled_share": 100.0 * float(has.float().mean())}
    log = [json.loads(line) for line in Path(str(out) + ".metrics.jsonl").read_text().splitlines() if line.strip()]
    rec = {**key, "val_top1": ckpt.metrics["val_top1"], "seconds": seconds, "resumed": resume,
           # a resumed run's wall time covers only its last part: the epochs' own times cover all of it
           "epoch_seconds": sum(r.get("epoch_seconds", 0.0) for r in log),
           "labelled_images": len(labelled), "pool_images": len(rest), "val_images": len(bundle.val),
           "stage_epochs": semi.get("stage_epochs"), "pseudo_labels": scored,
           "command": ckpt.provenance.get("command", ""), "bench_command": rerun_command(__file__, argv, work),
           "threads": torch.get_num_threads()}
    done.write_text(json.dumps(rec, indent=1))
    return rec


def _number(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return text


@contextmanager
def _locked(raw_path: Path):
    """Serialise read-modify-write of the JSON between processes sharing it."""
    # the lock file lives in the temp folder, not next to the recorded JSON
    with open(Path(tempfile.gettempdir()) / f"edgekit-bench-{raw_path.resolve().as_posix().replace('/', '_')}.lock",
              "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _same(rec: dict, key: dict) -> bool:
    return all(rec.get(k) == v for k, v in key.items())


def _find(raw_path: Path, key: dict) -> dict | None:
    with _locked(raw_path):
        rows = json.loads(raw_path.read_text()) if raw_path.is_file() else []
    return next((r for r in rows if _same(r, key)), None)


def _append(raw_path: Path, rec: dict) -> None:
    with _locked(raw_path):
        rows = json.loads(raw_path.read_text()) if raw_path.is_file() else []
        rows = [r for r in rows if not _same(r, {k: rec[k] for k in ("data", "fraction", "seed", "mode", "arch",
                                                                        "arch_kwargs", "epochs", "batch_size")})]
        raw_path.write_text(json.dumps(rows + [rec], indent=1))


def _summary(rec: dict) -> str:
    last = list(rec["pseudo_labels"].items())[-1:] if rec["pseudo_labels"] else []
    pl = "".join(f"; pseudo-labels {k}: {_acc(v)}" for k, v in last)
    return (f"{rec['data']} {rec['fraction']:.0%} seed {rec['seed']} {rec['mode']}: top-1 {rec['val_top1']:.2f} "
            f"({rec['seconds']:.0f} s){pl}")


def _acc(v: dict) -> str:
    if v["accuracy"] is None:
        return "- (0 % labelled)"
    return f"{v['accuracy']:.1f}" + (f" ({v['labelled_share']:.0f} % labelled)" if v["labelled_share"] < 100 else "")


# --------------------------------------------------------------------------- the page


def write_page(out: Path, results: list[dict]) -> None:
    import edgekit

    # run from inside benchmarks/ the script is cited by its name alone: cite it from the checkout
    commands = list(dict.fromkeys(r["bench_command"].replace("python semi.py ", "python benchmarks/semi.py ", 1)
                                  for r in results))
    lines = ["# Semi-supervised training at few labels: R2-D2 vs pseudo-labelling vs labelled-only", "",
             f"Commands that produced the rows below (each skips the runs already in {out.with_suffix('.json').name}; "
             f"`--page-only` rewrites this page from it):", ""]
    lines += [f"    {c}" for c in commands] + [""]
    lines += [f"Machine: {platform.processor() or platform.machine()}, 1 torch thread per run, 2 CPU cores shared "
              f"with other jobs (wall times are noisy); edgekit {edgekit.__version__}, torch {torch.__version__}.  ",
              "Every run is `edgekit train --labeled-fraction F --semi MODE` with the same epochs, network, batch "
              "size and default recipe; top-1 is on the held-out validation split; mean ± std over seeds; "
              "Δ is paired by seed; pseudo-label accuracy is scored against the pool's hidden labels after "
              "training, by this script only.", ""]
    for spec in dict.fromkeys(r["data"] for r in results):
        rows = [r for r in results if r["data"] == spec]
        for setting in dict.fromkeys(_setting(r) for r in rows):
            rs = [r for r in rows if _setting(r) == setting]
            lines += [f"## `{spec}`, {setting}", ""] + _tables(rs)
    old = out.read_text().partition(NOTES)[2] if out.is_file() else ""
    out.write_text("\n".join(lines) + "\n" + (NOTES + old if old else ""))
    print("\n".join(lines))


def _setting(r: dict) -> str:
    kw = ",".join(f"{k}={v}" for k, v in (r["arch_kwargs"] or {}).items())
    return f"{r['arch']}{'(' + kw + ')' if kw else ''}, {r['epochs']} epochs, batch {r['batch_size']}"


def _tables(rows: list[dict]) -> list[str]:
    fractions = sorted({r["fraction"] for r in rows})
    lines = ["| labels | labelled / pool images | mode | top-1 | Δ vs none | n | wall s (mean) | stage epochs |",
             "|---|---|---|---|---|---|---|---|"]
    paired = ["| labels | better baseline (by mean) | r2d2 − it, per seed | mean ± std | r2d2 above in |",
              "|---|---|---|---|---|"]
    for f in fractions:
        at = [r for r in rows if r["fraction"] == f]
        top = {m: {r["seed"]: r["val_top1"] for r in at if r["mode"] == m} for m in MODES}
        for m in MODES:
            rs = [r for r in at if r["mode"] == m]
            if not rs:
                continue
            deltas = [top[m][s] - top["none"][s] for s in top[m] if s in top["none"]]
            counts = sorted({(r["labelled_images"], r["pool_images"]) for r in rs})
            lines.append(f"| {f:.0%} | {', '.join(f'{a} / {b}' for a, b in counts)} | {m} | "
                         f"{mean_std([r['val_top1'] for r in rs])} | {mean_std(deltas) if m != 'none' else '-'} | "
                         f"{len(rs)} | {statistics.mean(r['seconds'] for r in rs):.0f} | "
                         f"{_epochs(rs[0].get('stage_epochs'), m, rs[0]['epochs'])} |")
        bases = [b for b in BASELINES if top[b]]
        if top["r2d2"] and bases:
            best = max(bases, key=lambda b: statistics.mean(top[b].values()))
            seeds = sorted(s for s in top["r2d2"] if s in top[best])
            d = [top["r2d2"][s] - top[best][s] for s in seeds]
            if d:
                paired.append(f"| {f:.0%} | {best} ({statistics.mean(top[best].values()):.2f}) | "
                              f"{', '.join(f'seed {s}: {x:+.2f}' for s, x in zip(seeds, d))} | {mean_std(d)} | "
                              f"{sum(x > 0 for x in d)} of {len(d)} seeds |")
    lines += ["", "Paired by seed, r2d2 against the better of the two baselines at that fraction:", ""] + paired
    lines += ["", "Pseudo-labels on the hidden pool (accuracy %, mean over seeds; pseudo-label: over its confident "
              "images, share of the pool labelled in brackets):", ""]
    lines += ["| labels | mode | " + " | ".join(_stage_header()) + " |", "|---|---|" + "---|" * len(_stage_header())]
    for f in fractions:
        for m in ("pseudo-label", "r2d2"):
            rs = [r for r in rows if r["fraction"] == f and r["mode"] == m]
            if rs:
                lines.append(f"| {f:.0%} | {m} | " + " | ".join(_stage_cells(rs, m)) + " |")
    return lines + [""]


def _stage_header() -> list[str]:
    return ["after stage 1", "after D2 / 1st PL epoch", "R2 cycle 1", "2", "3", "4 / last PL epoch",
            "final (r2d2's fine-tune labels)"]


def _stage_cells(rs: list[dict], mode: str) -> list[str]:
    def cell(names: list[str]) -> str:
        vals = [r["pseudo_labels"][n] for r in rs for n in names[:1] if n in r["pseudo_labels"]]
        acc = [v["accuracy"] for v in vals if v["accuracy"] is not None]
        if not vals:
            return "-"
        if not acc:
            return "none confident (0 %)"
        share = statistics.mean(v["labelled_share"] for v in vals)
        return f"{statistics.mean(acc):.1f}" + (f" ({share:.0f} %)" if share < 99.95 else "")

    if mode == "r2d2":
        return [cell(["d2_init"]), cell(["stage2"]), cell(["cycle1"]), cell(["cycle2"]), cell(["cycle3"]),
                cell(["cycle4"]), cell(["final"])]
    epochs = sorted((int(k[5:]) for k in rs[0]["pseudo_labels"] if k.startswith("epoch")))
    if not epochs:
        return ["-"] * 7
    # pseudo-label's first labelling is made by the stage-1 network: "after stage 1"
    return [cell([f"epoch{epochs[0]}"]), cell([f"epoch{epochs[min(1, len(epochs) - 1)]}"]), "-", "-", "-",
            cell([f"epoch{epochs[-1]}"]), "-"]


def _epochs(stages, mode: str, epochs: int) -> str:
    if mode == "none" or not stages:
        return str(epochs)
    return " + ".join("×".join([str(s[0]), str(len(s))]) if isinstance(s, list) else str(s) for s in stages)


if __name__ == "__main__":
    main()
