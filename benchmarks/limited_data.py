"""Benchmark: CURL's limited-data recipe against plain fine-tuning on 10 % of the data, 3 seeds.

Issue 13 item 4. For each dataset (real digits, the built-in synthetic shapes) a teacher
trained by ``edgekit train`` is pruned to 50 % MACs with a 10 % training subset (L1
importance, so scoring costs nothing and every recipe starts from the same pruned model;
``seed`` varies the BN re-estimation sample and the recovery), then recovered on that 10 %
with the same epoch budget by:

* ``finetune``: plain cross-entropy fine-tuning;
* ``mixup-kd``: CURL stage 2 only (mixup + KD, no expanded set);
* ``paper+refine``: stages 2 + 3 with the paper's expansion (2x2/3x3/4x4 patch shuffles,
  cutout, rotation in [0, 360)) and label refinement at lr 1, i.e. the recipe as published;
* ``policy+refine``: stages 2 + 3 with the dataset's label-preserving expansion
  (:mod:`edgekit.compress.expansion`) and label refinement at lr 1;
* ``policy-fixed``: the same expansion, the teacher's logits kept fixed (``label_lr=0``);
* ``paper-fixed``: the paper's expansion with fixed logits;
* ``kd``: stage 2 without mixup (KD + cross-entropy on the augmented images), no stage 3;
* ``...@lr/10``: stage 3 at 1/10 of stage 2's learning rate instead of the paper's 1/100
  (at 1/100 the two stage-3 epochs barely move the student);
* ``kd+policy-fixed@lr/10``: no mixup, the dataset's expansion, fixed logits, stage 3 at 1/10
  (the defaults this measurement chose); ``@lr``: stage 3 at stage 2's learning rate.

Every run ends with precise BN (200 batches) like ``edgekit prune``; top-1 is on the
teacher's own validation split. Rows are cached in the JSON next to the table, so an
interrupted run resumes.

Usage::

    edgekit train --arch resnet18 --data digits -o teacher_digits.pt --epochs 12 --no-small-input --augment no_flip
    edgekit train --arch resnet18 --data synthetic:classes=8,n=2000 -o teacher_synthetic.pt --epochs 12 --no-small-input
    python benchmarks/limited_data.py --work /tmp/ld \\
        --dataset digits=teacher_digits.pt --dataset synthetic:classes=8,n=2000=teacher_synthetic.pt
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from prune_digits import mean_std  # the same "mean ± std" cell as the pruning table (script folder)
from edgekit.benchmark.command import rerun_command

HERE = Path(__file__).resolve().parent

#: recipe name -> (recipe, expansion, label_lr, refine stage on, stage-3 lr / stage-2 lr);
#: recipe ``kd``: limited-data without mixup
CONFIGS = {
    "finetune": ("finetune", None, None, False, None),
    "mixup-kd": ("limited-data", None, None, False, None),
    "paper+refine": ("limited-data", "paper", 1.0, True, 0.01),
    "policy+refine": ("limited-data", "auto", 1.0, True, 0.01),
    "policy-fixed": ("limited-data", "auto", 0.0, True, 0.01),
    "paper-fixed": ("limited-data", "paper", 0.0, True, 0.01),
    "kd": ("kd", None, None, False, None),
    "policy+refine@lr/10": ("limited-data", "auto", 1.0, True, 0.1),
    "paper+refine@lr/10": ("limited-data", "paper", 1.0, True, 0.1),
    "policy-fixed@lr/10": ("limited-data", "auto", 0.0, True, 0.1),
    "kd+policy-fixed@lr/10": ("kd", "auto", 0.0, True, 0.1),
    "kd+policy-fixed@lr": ("kd", "auto", 0.0, True, 1.0),
}


#: the hand-written reading of the table below this heading survives a rerun
NOTES = "## Reading the table"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", action="append", required=True, metavar="SPEC=TEACHER",
                    help="data spec and its teacher checkpoint (the last '=' splits them); repeatable")
    ap.add_argument("--work", required=True, help="folder for the pruned checkpoints")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    ap.add_argument("--target", default="macs=0.5")
    ap.add_argument("--method", default="l1")
    ap.add_argument("--fraction", type=float, default=0.1)
    ap.add_argument("--epochs", type=int, default=15, help="fine-tuning / mixup+KD epochs")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(HERE / "limited_data.md"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from edgekit.checkpoint import load_checkpoint
    from edgekit.compress import recovery
    from edgekit.compress.prune import prune
    from edgekit.seeding import seed_everything
    from edgekit.training.metrics import evaluate_model

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    raw_path = Path(args.out).with_suffix(".json")
    results: list[dict] = json.loads(raw_path.read_text()) if raw_path.is_file() else []
    done = {(r["data"], r["config"], r["seed"]) for r in results}
    datasets = [tuple(d.rsplit("=", 1)) for d in args.dataset]
    teachers = {spec: load_checkpoint(path) for spec, path in datasets}
    for seed in args.seeds:  # seeds outermost: a cut-short run still covers every dataset
        for spec, teacher in teachers.items():
            tag = spec.partition(":")[0]
            pruned_path = work / f"{tag}-{args.method}-s{seed}.pt"
            if not pruned_path.is_file():
                prune(teacher, spec, pruned_path, method=args.method, target=args.target, train_fraction=args.fraction,
                      proxy_seed=0, proxy_size=128, seed=seed, finetune_epochs=0, progress=False, force=True)
            pruned = load_checkpoint(pruned_path)
            bundle = teacher.load_data(spec).subset_train(args.fraction, 0)
            val_loader = bundle.loader("val", teacher.eval_transform, 256)
            for config in args.configs:
                if (spec, config, seed) in done:
                    continue
                recipe, expansion, label_lr, refine, ratio = CONFIGS[config]
                model = copy.deepcopy(pruned.model).train()
                seed_everything(seed)
                t0 = time.perf_counter()
                common = dict(lr=0.01, seed=seed, progress=False, val_loader=val_loader, precise_bn=200)
                extra: dict = {}
                if recipe == "finetune":
                    recovery.finetune(model, bundle, teacher.input_spec, epochs=args.epochs, batch_size=64, **common)
                else:
                    out = recovery.limited_data(model, teacher.model, bundle, teacher.input_spec, epochs=args.epochs,
                                                refine_epochs=None if refine else 0, batch_size=32,
                                                expansion=expansion, label_lr=label_lr, mixup=recipe != "kd",
                                                refine_lr=0.01 * ratio if ratio else None, **common)
                    extra = {k: out[k] for k in ("expansion", "refine_epochs", "expanded_images", "label_lr", "refine_lr")}
                seconds = time.perf_counter() - t0
                top1 = evaluate_model(model.eval(), val_loader, "classify", "cpu")["top1"]
                rec = {"data": spec, "config": config, "seed": seed, "val_top1": top1,
                       "top1_pruned_bn": pruned.metrics["top1_pruned_bn"],
                       "top1_unpruned": pruned.metrics["top1_unpruned"], "macs_ratio":
                       pruned.metrics["macs"] / pruned.metrics["macs_before"], "train_images": len(bundle.train),
                       "recovery_seconds": seconds, **extra}
                results.append(rec)
                raw_path.write_text(json.dumps(results, indent=1))
                print(f"{spec} {config} seed {seed}: {rec['top1_pruned_bn']:.2f} -> {top1:.2f} ({seconds:.0f} s)",
                      flush=True)
    write_table(args, teachers, results)


def write_table(args: argparse.Namespace, teachers: dict, results: list[dict]) -> None:
    import edgekit

    seeds = sorted({r["seed"] for r in results})
    lines = [
        "# Limited data: CURL's recipe vs plain fine-tuning on 10 % of the data",
        "",
        f"Command (last run; rows are cached in {Path(args.out).with_suffix('.json').name}, see the notes): `{rerun_command(__file__, sys.argv[1:], args.work)}`  ",
        f"Machine: {platform.processor() or platform.machine()}, {args.threads} torch thread(s), "
        f"2 CPU cores shared with other jobs; edgekit {edgekit.__version__}, torch {torch.__version__}  ",
        f"Pruning: `{args.method}` to {args.target} on a {args.fraction:.0%} training subset (drawn with seed 0); "
        f"recovery {args.epochs} epochs (SGD lr 0.01, cosine; limited-data: {args.epochs} stage-2 epochs, mixup+KD "
        f"or KD alone, then {max(1, math.ceil(args.epochs / 8))} epoch(s) on the expanded set at the stage-3 lr "
        f"shown), precise BN (200 batches) at the end; mean ± std over seeds; Δ is paired by seed.",
        "",
    ]
    for spec, teacher in teachers.items():
        rows = [r for r in results if r["data"] == spec]
        if not rows:
            continue
        lines += [f"## `{spec}`", "",
                  f"Teacher: `{teacher.provenance.get('command', '')}` ({teacher.arch}, input "
                  f"{teacher.input_spec.get('shape')}, val top-1 {teacher.metrics.get('val_top1', float('nan')):.2f} %); "
                  f"{rows[0]['train_images']} training images; MACs ratio {rows[0]['macs_ratio']:.3f}.", ""]
        first = seeds[:3]
        lines += [f"Every recipe, seeds {first}:", ""] + _table([r for r in rows if r["seed"] in first])
        more = {r["config"] for r in rows if r["seed"] not in first}
        if more:
            lines += [f"The deciding recipes, seeds {seeds}:", ""] + _table([r for r in rows if r["config"] in more])
        described = sorted({r["expansion"] for r in rows if r.get("refine_epochs")})
        lines += [f"- expansion {d}" for d in described] + [""]
    out = Path(args.out)
    notes = out.read_text().partition(NOTES)[2] if out.is_file() else ""
    out.write_text("\n".join(lines) + "\n" + (NOTES + notes if notes else ""))
    print("\n".join(lines))


def _table(rows: list[dict]) -> list[str]:
    lines = ["| recovery | expansion | label lr | stage-3 lr | top-1 pruned + BN | top-1 after recovery | "
             "Δ vs finetune | recovery s | n |", "|---|---|---|---|---|---|---|---|---|"]
    base = {r["seed"]: r["val_top1"] for r in rows if r["config"] == "finetune"}
    for config in CONFIGS:
        rs = [r for r in rows if r["config"] == config]
        if not rs:
            continue
        deltas = [r["val_top1"] - base[r["seed"]] for r in rs if r["seed"] in base]
        stage3 = bool(rs[0].get("refine_epochs"))
        exp = rs[0].get("expansion", "-").partition(":")[0] if stage3 else "-"
        lines.append(f"| {config} | {exp} | {rs[0].get('label_lr', '-') if stage3 else '-'} | "
                     f"{format(rs[0].get('refine_lr', 1e-4), 'g') if stage3 else '-'} | "
                     f"{mean_std([r['top1_pruned_bn'] for r in rs])} | {mean_std([r['val_top1'] for r in rs])} | "
                     f"{mean_std(deltas) if config != 'finetune' else '-'} | "
                     f"{statistics.mean(r['recovery_seconds'] for r in rs):.0f} | {len(rs)} |")
    return lines + [""]


if __name__ == "__main__":
    main()
