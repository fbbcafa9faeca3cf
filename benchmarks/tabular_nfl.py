"""Benchmark: NFL vs a parameter-matched MLP vs RandomForest vs HistGradientBoosting on tabular sets.

Tests the claim of Cao, Wu, Wang & Lasenby, "Neural Forest Learning" (arXiv 1911.07845,
2019), abstract: the NFL layer beats random forests and GBDTs on machine-learning data sets.
Every classification set scikit-learn ships on disk (``sklearn:breast_cancer``, ``wine``,
``iris``, ``digits`` as 64 features), the edgekit split (20 % validation, stratified),
5 runs per model with split seeds 0-4 (mean ± std of validation top-1, %).

Fair tuning, the same budget for every model: a grid of 4 configurations, each scored once
on an inner split (20 %, stratified) of the seed-0 training split; the best is then trained
on the full training split of every seed and scored on its validation split, which tuning
never saw. The neural nets train through ``edgekit.train`` (Adam, batch 128, warm-up +
cosine, precise BN, ``EPOCHS`` epochs) exactly as ``edgekit train --arch nfl_tabular
--data sklearn:NAME`` does, raw features in (the standardisation is the model's first
layer). Grids:

* nfl_tabular, mlp_tabular: lr {1e-3, 3e-3} x weight decay {1e-4, 1e-3}
* RandomForest (300 trees): max_features {sqrt, 0.5} x min_samples_leaf {1, 3}
* HistGradientBoosting (200 iterations): learning_rate {0.05, 0.1} x max_leaf_nodes {15, 31}

Latency: one sample (batch 1) on 1 thread, median of 200 calls, of the tuned seed-0 models:
the nets in PyTorch eager mode and scikit-learn's ``predict``; and the seed-0 NFL model
exported by ``edgekit export`` (ONNX fp32, TFLite fp32 and int8, parity-gated) and timed by
``edgekit bench`` (LiteRT with XNNPACK, ONNX Runtime; batch 1, 1 thread, p50).

Usage::

    python benchmarks/tabular_nfl.py            # writes benchmarks/tabular_nfl.md and .json
    python benchmarks/tabular_nfl.py --sets iris wine --runs 2 --epochs 20 --out /tmp/t.md
"""
from __future__ import annotations

import argparse
import itertools
import json
import platform
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from edgekit.checkpoint import Checkpoint
from edgekit.data import DataBundle, load_data
from edgekit.data.datasets import seeded_split
from edgekit.data.tabular import SKLEARN_SETS, Table, split_table
from edgekit.registry import count_params
from edgekit.training.trainer import train

HERE = Path(__file__).resolve().parent
EPOCHS = 60
NEURAL_GRID = [{"lr": lr, "weight_decay": wd} for lr, wd in itertools.product((1e-3, 3e-3), (1e-4, 1e-3))]
RF_GRID = [{"max_features": f, "min_samples_leaf": m} for f, m in itertools.product(("sqrt", 0.5), (1, 3))]
HGB_GRID = [{"learning_rate": lr, "max_leaf_nodes": n} for lr, n in itertools.product((0.05, 0.1), (15, 31))]
MODELS = ("nfl_tabular", "mlp_tabular", "random_forest", "hist_gbdt")


def arrays(bundle: DataBundle, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Raw feature rows and targets of one split."""
    ds = getattr(bundle, split)
    return torch.stack([ds[i][0] for i in range(len(ds))]).numpy(), np.asarray(ds.targets)


def inner_bundle(bundle: DataBundle) -> DataBundle:
    """The tuning split: 20 % of ``bundle``'s training split held out (stratified, seed 0)."""
    x, y = arrays(bundle, "train")
    table = Table(x, y.tolist(), bundle.labels, bundle.input_spec["features"])
    tr, va = seeded_split(len(y), 0.2, 0, table.targets)
    train_ds, val_ds, spec = split_table(table, tr, va)
    return DataBundle(f"{bundle.spec} (tuning split)", train_ds, val_ds, bundle.labels, "classify",
                      len(table.features), input_spec=spec)


def sklearn_model(kind: str, params: dict[str, Any], seed: int) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier

    if kind == "random_forest":
        return RandomForestClassifier(n_estimators=300, random_state=seed, n_jobs=1, **params)
    return HistGradientBoostingClassifier(max_iter=200, random_state=seed, **params)


def fit_score(kind: str, params: dict[str, Any], bundle: DataBundle, seed: int, work: Path,
              epochs: int) -> tuple[float, Any]:
    """Validation top-1 (%) of ``kind`` with ``params`` trained on ``bundle``, and the fitted model
    (for the neural nets, the checkpoint ``WORK/KIND-sSEED.ckpt``)."""
    if kind in ("nfl_tabular", "mlp_tabular"):
        ck = train(kind, bundle, work / f"{kind}-s{seed}.ckpt", epochs=epochs, batch_size=128, optimizer="adam",
                   seed=seed, device="cpu", progress=False, force=True, **params)
        return float(ck.metrics["val_top1"]), ck
    model = sklearn_model(kind, params, seed).fit(*arrays(bundle, "train"))
    x, y = arrays(bundle, "val")
    return 100.0 * float((model.predict(x) == y).mean()), model


def latency_us(predict: Callable[[], Any], reps: int = 200) -> float:
    """Median microseconds of one call (after 20 warm-up calls)."""
    for _ in range(20):
        predict()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        predict()
        times.append(time.perf_counter() - t)
    return 1e6 * float(np.median(times))


def run_set(name: str, runs: int, epochs: int, work: Path) -> dict[str, Any]:
    base = load_data(f"sklearn:{name}", seed=0)
    tuning = inner_bundle(base)
    grids = {"nfl_tabular": NEURAL_GRID, "mlp_tabular": NEURAL_GRID, "random_forest": RF_GRID,
             "hist_gbdt": HGB_GRID}
    row: dict[str, Any] = {"set": name, "d": base.input_spec["shape"][0], "classes": len(base.labels),
                           "n": (len(base.train), len(base.val))}
    for kind in MODELS:
        scores = [fit_score(kind, p, tuning, 0, work, epochs)[0] for p in grids[kind]]
        best = grids[kind][scores.index(max(scores))]  # the first best on ties
        accs, models = [], []
        for seed in range(runs):
            acc, model = fit_score(kind, best, load_data(f"sklearn:{name}", seed=seed), seed, work, epochs)
            accs.append(acc)
            models.append(model)
        model0 = models[0]
        x1 = arrays(base, "val")[0][:1]
        if isinstance(model0, Checkpoint):
            xt, net = torch.from_numpy(x1), model0.model
            with torch.no_grad():
                lat = latency_us(lambda: net(xt))
            row[f"{kind}_params"] = count_params(net)
        else:
            lat = latency_us(lambda: model0.predict(x1))
        row[kind] = {"accs": accs, "best": best, "tuning": [round(s, 2) for s in scores], "latency_us": lat}
        print(f"{name:14s} {kind:14s} {np.mean(accs):6.2f} ± {np.std(accs, ddof=1) if runs > 1 else 0:.2f}  "
              f"best {best}  {lat:.0f} us", flush=True)
        if kind == "nfl_tabular":
            row["exported"] = exported_latency(model0, work / f"{name}-export")
    return row


def exported_latency(ckpt: Checkpoint, out: Path) -> list[dict[str, Any]]:
    """Export ``ckpt`` (ONNX fp32, TFLite fp32 and int8, each behind the parity gate) and time each
    artifact with ``edgekit.bench`` at batch 1, 1 thread, with its validation accuracy."""
    import edgekit
    from edgekit.exporters.pipeline import export

    manifests = export(ckpt, ["onnx", "tflite"], precision=["fp32", "int8"], output_dir=out)
    rows = edgekit.bench([m["path"] for m in manifests], threads=1, min_seconds=1.0)
    by_file = {Path(m["path"]).name: m for m in manifests}
    found = []
    for r in rows:
        m = by_file[Path(r["artifact"]).name]
        found.append({"artifact": f"{m['target']} {m['precision']} ({r['runtime']})", "p50_us": 1e3 * r["p50_ms"],
                      "parity_top1": 100 * m["parity"]["top1_agreement"], "val_top1": m["parity"]["artifact_top1"]})
        print(f"  exported {found[-1]}", flush=True)
    return found


def cell(accs: list[float]) -> str:
    return f"{np.mean(accs):.2f} ± {np.std(accs, ddof=1):.2f}" if len(accs) > 1 else f"{accs[0]:.2f}"


def verdict(rows: list[dict[str, Any]]) -> str:
    """The paper's claim (NFL beats RF and GBDT) read off the table, with the runs' spread."""
    def mean(r: dict[str, Any], k: str) -> float:
        return float(np.mean(r[k]["accs"]))

    beats = [r["set"] for r in rows if mean(r, "nfl_tabular") > max(mean(r, "random_forest"), mean(r, "hist_gbdt"))]
    mlp = [r["set"] for r in rows if mean(r, "mlp_tabular") >= mean(r, "nfl_tabular")]
    within = [r["set"] for r in rows
              if abs(mean(r, "nfl_tabular") - max(mean(r, k) for k in MODELS[1:]))
              <= max(float(np.std(r[k]["accs"], ddof=1)) if len(r[k]["accs"]) > 1 else 0.0 for k in MODELS)]
    return (f"Reading: NFL's mean is above both RandomForest's and HistGBDT's on {len(beats)} of {len(rows)} sets "
            f"({', '.join(beats) or 'none'}); the parameter-matched MLP's mean equals or beats NFL's on {len(mlp)} "
            f"({', '.join(mlp) or 'none'}); on {len(within)} of {len(rows)} sets ({', '.join(within) or 'none'}) "
            "NFL's gap to the best other model is within one standard deviation of the runs (the largest of "
            "the four models'), i.e. not resolved "
            f"by {len(rows[0]['nfl_tabular']['accs'])} runs on validation splits this small.")


def render(rows: list[dict[str, Any]], runs: int, epochs: int, seconds: float) -> str:
    lines = ["# NFL vs MLP vs RandomForest vs HistGradientBoosting on scikit-learn's tabular sets", "",
             f"Written by `python benchmarks/tabular_nfl.py` (see its docstring for the protocol): {runs} runs "
             f"(split seeds 0-{runs - 1}), validation top-1 % as mean ± std, each model tuned on the same 4-point "
             f"grid on an inner split of the seed-0 training data; neural nets {epochs} epochs of Adam, batch 128. "
             f"torch {torch.__version__}, Python {platform.python_version()}, {seconds / 60:.1f} min on a shared "
             "2-core CPU, 1 thread.", "",
             "| set | d | classes | train/val | NFL | MLP (same params) | RandomForest | HistGBDT | best |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        means = {k: round(float(np.mean(r[k]["accs"])), 2) for k in MODELS}
        best = " = ".join(k for k in MODELS if means[k] == max(means.values()))
        lines.append(f"| {r['set']} | {r['d']} | {r['classes']} | {r['n'][0]}/{r['n'][1]} | "
                     + " | ".join(cell(r[k]["accs"]) for k in MODELS) + f" | {best} |")
    lines += ["", verdict(rows)]
    lines += ["", "Parameters, tuned configuration and batch-1 latency (median µs, 1 thread; NFL and MLP in "
              "PyTorch eager mode, the trees through scikit-learn `predict`):", "",
              "| set | model | params | tuned | tuning scores (%) | µs / sample |", "|---|---|---|---|---|---|"]
    for r in rows:
        for k in MODELS:
            lines.append(f"| {r['set']} | {k} | {r.get(k + '_params', '-')} | "
                         f"{', '.join(f'{a}={v}' for a, v in r[k]['best'].items())} | "
                         f"{', '.join(map(str, r[k]['tuning']))} | {r[k]['latency_us']:.0f} |")
    lines += ["", "The seed-0 NFL model exported by `edgekit export` (parity gate on the validation split) and "
              "timed by `edgekit bench` (batch 1, 1 thread, p50 µs); top-1 is the artifact's on the validation rows "
              "the gate used, agreement its top-1 agreement with the PyTorch model:", "",
              "| set | artifact | µs / sample | val top-1 | agreement % |", "|---|---|---|---|---|"]
    for r in rows:
        for e in r.get("exported", []):
            lines.append(f"| {r['set']} | {e['artifact']} | {e['p50_us']:.0f} | {e['val_top1']:.2f} | "
                         f"{e['parity_top1']:.1f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", nargs="+", default=list(SKLEARN_SETS), choices=SKLEARN_SETS)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=EPOCHS)
    ap.add_argument("--out", type=Path, default=HERE / "tabular_nfl.md")
    args = ap.parse_args()
    torch.set_num_threads(1)
    start = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [run_set(name, args.runs, args.epochs, Path(tmp)) for name in args.sets]
    args.out.write_text(render(rows, args.runs, args.epochs, time.time() - start))
    args.out.with_suffix(".json").write_text(json.dumps(rows, indent=1, default=str) + "\n")
    print(f"wrote {args.out} in {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
