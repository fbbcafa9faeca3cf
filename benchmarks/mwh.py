"""Benchmark: mixup without hesitation (mWh) measured against mixup, CutMix and no mixing (issue 27, section 2).

Yu, Wang & Wu, "Mixup Without Hesitation" (arXiv 2101.04342; code github.com/yuhao318/mwh,
``easy_mwh.py``). The paper's claim under test: on CIFAR-100 with a PreAct ResNet-18 trained for
100 epochs, mixup reaches 75.27 % and mWh 77.00 % (+1.73), and mWh reaches mixup's accuracy in
fewer epochs ("less training time than original mixup").

What runs (each run cached in ``WORK/results.json``, so an interrupted benchmark resumes):

* ``compact_cnn`` (``--width-mult``) trained by :func:`edgekit.train` with each of ``--mix`` none,
  mixup, mwh, cutmix and mwh-cutmix at equal epochs ``--epochs``, on the built-in digits (32 px)
  and the cluttered shapes (``synthetic:classes=8,clutter=3,...``), for ``--seeds`` (each seed
  its own split and initialisation, shared by the five modes, so differences are paired);
* the authors' recipe where it is theirs: SGD momentum 0.9, the step schedule (lr / 10 at 0.5 and
  0.75 of the epochs, their epochs 50 and 75 of 100), weight decay 1e-4, no warm-up (the authors
  warm up only for several GPUs), Beta(0.5, 0.5) mixup with lambda = max(lambda, 1 - lambda),
  Beta(1, 1) CutMix; lr 0.05 at batch 64 (their 0.1 at batch 128, scaled linearly);
* "equal accuracy in fewer epochs": mwh and mixup (``--short-modes``) at ``--short-fraction``
  of the epochs, compared with mixup at the full epochs;
* from each run's training log (``OUT.metrics.jsonl``): every epoch's fraction of mixed batches
  (the ``mixed`` term) against the schedule (:func:`edgekit.training.mix.mwh_probability`; 1 for
  mixup and CutMix, 0 for none), and every epoch's learning rate against the step schedule.

Usage::

    python benchmarks/mwh.py --work /tmp/mwh_bench

writes ``benchmarks/mwh.md`` and ``benchmarks/mwh.json``.
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent
MODES = ("none", "mixup", "mwh", "cutmix", "mwh-cutmix")
DATASETS = {"digits": "digits", "clutter": "synthetic:classes=8,clutter=3,n={n},size=32"}
MILESTONES = (0.5, 0.75)
LR, WEIGHT_DECAY, BATCH = 0.05, 1e-4, 64
#: validation images per data set (digits: 20 % of 1,797); the clutter set's is 20 % of --clutter-n
VAL_IMAGES = {"digits": 359}
#: what the page says where mixing itself costs accuracy on a data set (a reading, not a measurement)
NOTES = {"clutter": "The label of a cluttered image is its largest shape. Neither a blend of two images (two "
                    "largest shapes at two opacities) nor a pasted box (which can cover the largest shape, or paste "
                    "a larger one) keeps that property, so part of every mixed label is wrong; at this length the "
                    "regularisation does not pay for it. That is a reading of the numbers; these runs do not test it."}


#: the two-sided 95 % critical value of Student's t by degrees of freedom (the paired test above)
T95 = {1: 12.71, 2: 4.30, 3: 3.18, 4: 2.78, 5: 2.57, 6: 2.45, 7: 2.36, 8: 2.31, 9: 2.26}


def sizes(dataset: str, args: argparse.Namespace) -> tuple[int, int]:
    """(training images, validation images) of a data set as the benchmark loads it."""
    val = VAL_IMAGES.get(dataset) or round(0.2 * args.clutter_n)
    total = 1797 if dataset == "digits" else args.clutter_n
    return total - val, val


def _cache(work: Path) -> dict[str, Any]:
    path = work / "results.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _save(work: Path, results: dict[str, Any]) -> None:
    tmp = work / "results.json.tmp"
    tmp.write_text(json.dumps(results, indent=1))
    tmp.replace(work / "results.json")


def expected_lr(epoch: int, epochs: int) -> float:
    """The learning rate the log records after 0-based ``epoch`` (that of the next step)."""
    return LR * 0.1 ** sum(epoch + 1 >= m * epochs for m in MILESTONES)


def schedule_check(log: list[dict[str, Any]], mode: str, epochs: int) -> dict[str, Any]:
    """Each epoch's logged mixed fraction and lr against the schedules.

    Epochs whose probability is 0 or 1 must match exactly; an epoch of the mWh ramp mixes each
    batch with probability p, so its fraction is a binomial draw: ``z`` is its deviation in
    standard deviations of that draw."""
    from edgekit.training.mix import Mixer

    mixer = Mixer(mode) if mode != "none" else None
    rows = []
    for rec in log:
        e = rec["epoch"] - 1
        p = mixer.probability(e, epochs) if mixer else 0.0
        rows.append({"epoch": rec["epoch"], "p": p, "mixed": rec["mixed"], "lr": rec["lr"],
                     "lr_expected": expected_lr(e, epochs)})
    exact = [abs(r["mixed"] - r["p"]) for r in rows if r["p"] in (0.0, 1.0)]
    ramp = [r for r in rows if r["p"] not in (0.0, 1.0)]
    return {"epochs": rows, "max_dev_exact": max(exact) if exact else None,
            "max_dev_ramp": max((abs(r["mixed"] - r["p"]) for r in ramp), default=None),
            "lr_max_rel_err": max(abs(r["lr"] - r["lr_expected"]) / r["lr_expected"] for r in rows)}


def train_one(dataset: str, mode: str, seed: int, epochs: int, args: argparse.Namespace) -> dict[str, Any]:
    """Train one model; final validation top-1 (after precise BN) and the schedule check of its log."""
    from edgekit.training.trainer import metrics_path, train

    work = Path(args.work)
    out = work / f"{dataset}_{mode}_e{epochs}_s{seed}.pt"
    spec = DATASETS[dataset].format(n=args.clutter_n)
    t0 = time.perf_counter()
    ckpt = train("compact_cnn", spec, out, epochs=epochs, batch_size=BATCH, seed=seed, optimizer="sgd", lr=LR,
                 weight_decay=WEIGHT_DECAY, warmup_epochs=0.0, lr_schedule="step", milestones=MILESTONES, mix=mode,
                 arch_kwargs={"width_mult": args.width_mult}, progress=False, force=True)
    seconds = time.perf_counter() - t0
    log = [json.loads(line) for line in metrics_path(out).read_text().splitlines() if line.strip()]
    pbn = ckpt.metrics.get("precise_bn") or {}
    return {"dataset": dataset, "spec": spec, "mode": mode, "seed": seed, "epochs": epochs,
            "top1": ckpt.metrics["val_top1"], "top1_before_bn": (pbn.get("before") or {}).get("top1"),
            "best_epoch_top1": max(r["val_top1"] for r in log), "train_seconds": seconds,
            "lr_schedule": ckpt.provenance.get("lr_schedule"), "mixer": ckpt.provenance.get("mixer"),
            "check": schedule_check(log, mode, epochs)}


def plan(args: argparse.Namespace) -> list[tuple[str, str, int, int]]:
    """(dataset, mode, seed, epochs) in the order they run: seed by seed, so a cut-short benchmark
    still has whole paired sets; the shorter runs after each seed's full-length ones."""
    short = max(1, round(args.short_fraction * args.epochs))
    runs = []
    for seed in args.seeds:
        for dataset in args.datasets:
            runs += [(dataset, mode, seed, args.epochs) for mode in args.modes]
            runs += [(dataset, mode, seed, short) for mode in args.short_modes]
    return runs


def _key(dataset: str, mode: str, seed: int, epochs: int) -> str:
    return f"{dataset}/{mode}/e{epochs}/s{seed}"


def _ramp(epochs: int) -> str:
    """The mixing probabilities of mWh's last phase at ``epochs``: '1, 0.5'."""
    from edgekit.training.mix import mwh_probability

    return ", ".join(f"{mwh_probability(e, epochs):.2g}" for e in range(round(0.9 * epochs), epochs))


def _ms(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def _paired(results: dict[str, Any], dataset: str, a: tuple[str, int], b: tuple[str, int],
            seeds: list[int]) -> tuple[str, list[float]]:
    """Per-seed differences top1(a) - top1(b) over the seeds both ran: 'mean ± std (d0, d1, d2)'."""
    diffs = []
    for s in seeds:
        ra, rb = results.get(_key(dataset, a[0], s, a[1])), results.get(_key(dataset, b[0], s, b[1]))
        if ra and rb:
            diffs.append(ra["top1"] - rb["top1"])
    if not diffs:
        return "-", diffs
    return f"{_ms(diffs)} ({', '.join(f'{d:+.2f}' for d in diffs)})", diffs


def verdict(results: dict[str, Any], args: argparse.Namespace, seeds: list[int]) -> list[str]:
    """The paper's two claims against these runs, read off the paired differences (means and signs)."""
    E, short = args.epochs, max(1, round(args.short_fraction * args.epochs))
    lines = ["## The paper's claims at this scale", ""]
    for dataset in args.datasets:
        _, d = _paired(results, dataset, ("mwh", E), ("mixup", E), seeds)
        _, f = _paired(results, dataset, ("mwh", short), ("mixup", E), seeds)
        _, n = _paired(results, dataset, ("mixup", E), ("none", E), seeds)
        if not d:
            continue
        mean, up = statistics.mean(d), sum(x > 0 for x in d)
        sd = statistics.stdev(d) if len(d) > 1 else float("nan")
        line = (f"- **{dataset}**: mWh − mixup at {E} epochs = {mean:+.2f} points (sd {sd:.2f} over {len(d)} paired "
                f"seeds, {up} of them above)")
        if len(d) > 1 and sd > 0 and len(d) - 1 in T95:
            t = mean / (sd / math.sqrt(len(d)))
            line += f", paired t = {t:+.2f} ({len(d) - 1} degrees of freedom; 95 % two-sided needs {T95[len(d) - 1]})"
            if abs(t) < T95[len(d) - 1]:
                line += (": no difference distinguishable from the seed-to-seed spread, so the paper's +1.73 is "
                         "not reproduced at this scale")
            else:
                line += ": " + ("in mWh's favour, as the paper" if mean > 0 else "in mixup's favour, against the paper")
        line += "."
        if f:
            fm = statistics.mean(f)
            line += (f" Fewer epochs: mWh at {short} epochs − mixup at {E} = {fm:+.2f} "
                     f"({sum(x >= 0 for x in f)} of {len(f)} seeds at or above), "
                     + ("equal or better accuracy in fewer epochs" if fm >= 0
                        else "so not equal accuracy in fewer epochs"))
            _, g = _paired(results, dataset, ("mwh", short), ("mixup", short), seeds)
            if g:
                line += f"; at {short} epochs each, mWh − mixup = {statistics.mean(g):+.2f}"
            line += "."
        if n:
            line += f" Mixup itself − no mixing = {statistics.mean(n):+.2f}."
            if statistics.mean(n) < 0 and dataset in NOTES:
                line += " " + NOTES[dataset]
        lines.append(line)
    lines += ["", f"Scale: the paper trains 100 epochs on CIFAR-100's 50,000 images of 100 classes; these runs train "
              f"{E} epochs on {' and '.join(f'{sizes(d, args)[0]:,}' for d in args.datasets)} images of 10 and 8 "
              "classes, where one validation image moves top-1 by "
              f"{' and '.join(f'{100 / sizes(d, args)[1]:.2f}' for d in args.datasets)} points. A difference as "
              "large as the paper's +1.73 would show against the paired spread above; a much smaller one would not."]
    return lines + [""]


def table(results: dict[str, Any], args: argparse.Namespace, command: str) -> str:
    import edgekit

    E, short = args.epochs, max(1, round(args.short_fraction * args.epochs))
    lines = ["# mWh (mixup without hesitation) measured", "",
             f"Generated by `{command}` (edgekit {edgekit.__version__}, torch {torch.__version__}, "
             f"{platform.machine()}, {torch.get_num_threads()} torch thread(s), a 2-core machine shared with other "
             f"jobs; {time.strftime('%Y-%m-%d')}). Raw per-run results, per-epoch logs included: "
             "`benchmarks/mwh.json`.",
             "",
             "**The paper's claim** (Yu, Wang & Wu, arXiv 2101.04342; the authors' README): CIFAR-100, PreAct "
             "ResNet-18, alpha 0.5, 100 epochs: mixup 75.27 %, mWh 77.00 % (+1.73 points); mWh is also said to "
             "reach mixup's accuracy with less training time.", "",
             f"**Setup.** `compact_cnn` (width_mult {args.width_mult}), {E} epochs, SGD momentum 0.9 (Nesterov), "
             f"lr {LR} at batch {BATCH}, the step schedule (`--lr-schedule step --milestones 0.5,0.75`: lr / 10 at "
             f"epochs {MILESTONES[0] * E:g} and {MILESTONES[1] * E:g}), weight decay {WEIGHT_DECAY}, no warm-up, "
             "standard augmentation (no flips for digits), precise BN at the end; mixup/mwh Beta(0.5, 0.5) with "
             "lambda = max(lambda, 1 - lambda), cutmix/mwh-cutmix Beta(1, 1). Data: `digits` (scikit-learn's "
             f"8x8 digits at 32 px, 1438 train / 359 val) and `{DATASETS['clutter'].format(n=args.clutter_n)}` "
             "(the largest of 8 shapes among 3 distractors; 80/20 split). Each seed is its own split and "
             "initialisation, shared by every mode, so differences are paired per seed. Metric: validation top-1 "
             "after the last epoch.", ""]
    planned = plan(args)
    done = sum(_key(*run) in results for run in planned)
    lines += [f"**What ran**: {done} of the {len(planned)} planned runs ({len(args.modes)} modes x "
              f"{len(args.datasets)} data sets x {len(args.seeds)} seeds at {E} epochs, and "
              f"{', '.join(args.short_modes) or 'nothing'} at {short} epochs)"
              + ("." if done == len(planned) else "; the tables below hold only the runs that finished.")
              + f" mWh's last 10 % mixes with probability {_ramp(E)} at {E} epochs and {_ramp(short)} at {short}.", ""]
    seeds = args.seeds
    for dataset in args.datasets:
        lines += [f"## {dataset}", "", f"| mode | epochs | top-1 (mean ± std) | per seed | vs mixup (paired) | "
                  "vs none (paired) | s/run |", "|---|---|---|---|---|---|---|"]
        for mode, ep in [(m, E) for m in args.modes] + [(m, short) for m in args.short_modes]:
            rs = [results[k] for s in seeds if (k := _key(dataset, mode, s, ep)) in results]
            if not rs:
                continue
            vs_mix, _ = _paired(results, dataset, (mode, ep), ("mixup", E), seeds)
            vs_none, _ = _paired(results, dataset, (mode, ep), ("none", E), seeds)
            per_seed = ", ".join(f"{r['top1']:.2f}" for r in rs)
            lines.append(f"| {mode} | {ep} | {_ms([r['top1'] for r in rs])} | "
                         f"{per_seed} | {vs_mix if (mode, ep) != ('mixup', E) else ''} "
                         f"| {vs_none if (mode, ep) != ('none', E) else ''} | "
                         f"{statistics.mean(r['train_seconds'] for r in rs):.0f} |")
        lines.append("")
        val = sizes(dataset, args)[1]
        lines += [f"Paired differences in points of top-1 (one validation image is {100 / val:.2f} points):", ""]
        for label, a, b in [(f"mWh − mixup, {E} epochs", ("mwh", E), ("mixup", E)),
                            (f"mWh-CutMix − CutMix, {E} epochs", ("mwh-cutmix", E), ("cutmix", E)),
                            (f"mixup − none, {E} epochs", ("mixup", E), ("none", E)),
                            (f"mWh at {short} epochs − mixup at {E}", ("mwh", short), ("mixup", E)),
                            (f"mWh − mixup, both {short} epochs", ("mwh", short), ("mixup", short))]:
            text, diffs = _paired(results, dataset, a, b, seeds)
            if diffs:
                lines.append(f"- {label}: {text}; {sum(d > 0 for d in diffs)} of {len(diffs)} seeds above, "
                             f"{sum(d == 0 for d in diffs)} equal.")
        lines.append("")
    lines += verdict(results, args, seeds)
    lines += ["## Does each run follow its schedule? (from `OUT.metrics.jsonl`)", "",
              "The training log's `mixed` is each epoch's fraction of mixed batches, `lr` the rate after the "
              "epoch's last step. Epochs whose mixing probability is 0 or 1 (none; mixup and CutMix; mWh's "
              "first 60 % and its alternating epochs) must match exactly; an epoch of mWh's last 10 % mixes each "
              "batch with probability p, so its fraction is a binomial draw around p.", "",
              "| dataset | mode | epochs | runs | max deviation, p in {0, 1} | max deviation, ramp epochs (p) | "
              "max relative lr error |", "|---|---|---|---|---|---|---|"]
    for dataset in args.datasets:
        for mode, ep in [(m, E) for m in args.modes] + [(m, short) for m in args.short_modes]:
            rs = [results[k] for s in seeds if (k := _key(dataset, mode, s, ep)) in results]
            if not rs:
                continue
            ramp = [r["check"]["max_dev_ramp"] for r in rs if r["check"]["max_dev_ramp"] is not None]
            ps = sorted({e["p"] for r in rs for e in r["check"]["epochs"] if e["p"] not in (0.0, 1.0)})
            batches = sizes(dataset, args)[0] // BATCH
            sd = ", ".join(f"{math.sqrt(p * (1 - p) / batches):.3f}" for p in ps)
            ramp_text = (f"{max(ramp):.3f} (p = {', '.join(f'{p:.2f}' for p in ps)}; binomial sd {sd} over {batches} "
                         "batches)" if ramp else "no ramp epoch")
            lines.append(f"| {dataset} | {mode} | {ep} | {len(rs)} | "
                         f"{max(r['check']['max_dev_exact'] for r in rs):.3g} | {ramp_text} | "
                         f"{max(r['check']['lr_max_rel_err'] for r in rs):.2g} |")
    example = next((r for r in results.values() if r["mode"] == "mwh" and r["epochs"] == E), None)
    if example:
        lines += ["", f"mWh at {E} epochs, {example['dataset']} seed {example['seed']}, per epoch "
                  "(expected p / logged fraction / lr):", "",
                  "| epoch | " + " | ".join(str(e["epoch"]) for e in example["check"]["epochs"]) + " |",
                  "|---|" + "---|" * len(example["check"]["epochs"]),
                  "| p | " + " | ".join(f"{e['p']:.2f}" for e in example["check"]["epochs"]) + " |",
                  "| mixed | " + " | ".join(f"{e['mixed']:.2f}" for e in example["check"]["epochs"]) + " |",
                  "| lr | " + " | ".join(f"{e['lr']:.0e}" for e in example["check"]["epochs"]) + " |"]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", required=True)
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    ap.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    ap.add_argument("--short-modes", nargs="*", default=["mwh", "mixup"], choices=list(MODES))
    ap.add_argument("--short-fraction", type=float, default=0.75)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--epochs", type=int, default=16)
    ap.add_argument("--width-mult", type=float, default=0.5)
    ap.add_argument("--clutter-n", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--report-only", action="store_true", help="Write the page from the cached runs, train nothing.")
    ap.add_argument("--out", default=str(HERE / "mwh.md"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    results = _cache(work)
    command = (f"python benchmarks/mwh.py --work {args.work} --datasets {' '.join(args.datasets)} --modes "
               f"{' '.join(args.modes)} --short-modes {' '.join(args.short_modes)} --short-fraction "
               f"{args.short_fraction} --seeds {' '.join(map(str, args.seeds))} --epochs {args.epochs} --width-mult "
               f"{args.width_mult} --clutter-n {args.clutter_n} --threads {args.threads}")
    if not args.report_only:
        for dataset, mode, seed, epochs in plan(args):
            key = _key(dataset, mode, seed, epochs)
            if key not in results:
                results[key] = train_one(dataset, mode, seed, epochs, args)
                _save(work, results)
                r = results[key]
                print(f"{key}: top-1 {r['top1']:.2f} ({r['train_seconds']:.0f} s; mixed max dev "
                      f"{r['check']['max_dev_exact']:.3g})", flush=True)
    Path(args.out).write_text(table(results, args, command))
    Path(args.out).with_suffix(".json").write_text(json.dumps(results, indent=1) + "\n")
    print(Path(args.out).read_text())


if __name__ == "__main__":
    main()
