"""One candidate: a :class:`~.plan.Plan` carried out on the original checkpoint and measured.

Stages, each reusing edgekit's own function and each skipped when its output exists:

1. ``prune``: CURL to the plan's MACs fraction (:func:`edgekit.compress.prune.prune`, no
   fine-tuning: recovery is the next stage; the config's scoring and steps, kept channel
   counts rounded to the budget runtime's multiple), scores of the unpruned network shared
   by every candidate of the search (``DIR/scores/``), so they are computed once; the pruned
   checkpoint is shared by every recovery of its fraction (``DIR/pruned/KEY.pt``);
2. ``recover``: KD from the original (:func:`edgekit.compress.distill.distill`, the pruned
   checkpoint as the student) or fine-tuning on the labels, written to a work file and
   renamed when finished;
3. ``export``: the plan's target at its precision behind the parity gate
   (:func:`edgekit.exporters.pipeline.export`; int8 calibrated on the checkpoint's own
   training images); a failed gate falls back to the next wider precision, each failure
   recorded;
4. ``bench``: the artifact on the budget's runtime with accuracy on the checkpoint's
   held-out split (:func:`edgekit.benchmark.run.bench`); its row, written atomically to
   ``bench.RUNTIME.tTHREADS.json``, is the candidate's finished marker.

Everything lives in ``DIR/candidates/KEY/``. A candidate whose marker exists is read back,
never recomputed; one killed half-way resumes at the first stage without its output. A
candidate that fails (every precision refused by its gate) gets an error row as its
marker: the failure is a result of the plan, and a rerun would repeat it.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..checkpoint import Checkpoint, load_checkpoint
from ..data import DataBundle
from ..errors import EdgekitError
from ..fileio import write_json
from .budget import Budget
from .config import OptimizeConfig
from .plan import Plan, prune_key

Say = Callable[[str], None]


@dataclass
class Search:
    """What every candidate of one search shares: the original, its data split, the options."""

    ckpt: Checkpoint
    bundle: DataBundle
    budget: Budget
    cfg: OptimizeConfig
    root: Path

    @property
    def round_to(self) -> int | None:
        """The channel multiple pruning keeps: ``cfg.round_to`` resolved for the budget's runtime."""
        from ..compress.rounding import resolve_round_to

        return resolve_round_to(self.cfg.round_to, self.budget.runtime)

    @property
    def settings(self) -> dict[str, Any]:
        return self.cfg.candidate_settings(self.bundle.record, self.round_to)

    @property
    def scores_path(self) -> Path:
        return self.root / "scores" / f"{str(self.ckpt.sha256)[:16]}.pt"

    def pruned_path(self, macs: float, round_to: int | None) -> Path:
        """Where the pruned checkpoint of a MACs fraction (counts rounded to ``round_to``) lives,
        whichever recovery follows."""
        settings = self.cfg.prune_settings(self.bundle.record, round_to)
        return self.root / "pruned" / f"{prune_key(str(self.ckpt.sha256), macs, settings)}.pt"


@dataclass
class Candidate:
    """A measured candidate: where it lives, its artifact, its bench row, whether it was reused."""

    plan: Plan
    key: str
    folder: Path
    row: dict[str, Any]
    export: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    reused: bool = False
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.row.get("error") and self.p50_ms is not None

    @property
    def p50_ms(self) -> float | None:
        return self.row.get("p50_ms")

    @property
    def top1(self) -> float | None:
        """Top-1 on the report half of the held-out split: what optimize.json reports."""
        return part_top1(self.row, "report")

    @property
    def select_top1(self) -> float | None:
        """Top-1 on the select half of the held-out split: what the choice compares."""
        return part_top1(self.row, "select")

    def record(self, budget: Budget, reference: dict[str, float | None]) -> dict[str, Any]:
        """The candidate as optimize.json lists it; ``reference``: the original's top-1 per half."""
        drop = _minus(reference.get("report"), self.top1)
        select_drop = _minus(reference.get("select"), self.select_top1)
        return {"key": self.key, "label": self.plan.label, "plan": self.plan.as_dict(), "folder": str(self.folder),
                "artifact": self.row.get("artifact"), "checkpoint": self.export.get("checkpoint"),
                "precision": self.export.get("precision"), "fallbacks": self.export.get("fallbacks", []),
                "p50_ms": self.p50_ms, "p90_ms": self.row.get("p90_ms"), "noisy": self.row.get("noisy"),
                "top1": self.top1, "drop": drop, "select_top1": self.select_top1, "select_drop": select_drop,
                "meets_budget": budget.met(self.p50_ms) if self.ok else False,
                "macs_ratio": self.metrics.get("macs_ratio"), "params": self.metrics.get("params"),
                "pruned": self.metrics.get("pruned"),
                "error": self.row.get("error"), "reused": self.reused, "seconds": round(self.seconds, 1)}


def part_top1(row: dict[str, Any], part: str) -> float | None:
    """A bench row's top-1 on one half of the held-out split (``select`` or ``report``, see
    :func:`edgekit.benchmark.accuracy.split_halves`); the whole split's for a row without halves."""
    acc = row.get("accuracy") or {}
    halves = acc.get("halves")
    return (halves.get(part) or {}).get("top1") if halves else acc.get("top1")


def _minus(a: float | None, b: float | None) -> float | None:
    return a - b if a is not None and b is not None else None


def bench_name(budget: Budget, threads: int) -> str:
    return f"bench.{budget.runtime}.t{threads}.json"


def run_candidate(search: Search, plan: Plan, say: Say) -> Candidate:
    """Carry out ``plan`` (or read it back when finished) and return the measured candidate."""
    key = plan.key(str(search.ckpt.sha256), search.settings)
    folder = search.root / "candidates" / key
    marker = folder / bench_name(search.budget, search.cfg.threads)
    if marker.is_file():  # finished: read back, never recomputed
        done = json.loads(marker.read_text())
        return Candidate(plan, key, folder, done["row"], done.get("export", {}), done.get("metrics", {}),
                         reused=True)
    t0 = time.perf_counter()
    write_json(folder / "plan.json", {"key": key, "plan": plan.as_dict(), "parent": search.ckpt.lineage,
                                      "settings": search.settings})
    try:
        source, metrics = _compressed(search, plan, folder, say)
    except EdgekitError as exc:  # e.g. a MACs fraction min_keep cannot reach: a result of this plan, kept
        say(f"compression refused: {str(exc)[:160]}")
        row = _error_row(search, plan, f"compression failed: {exc}")
        write_json(marker, {"row": row, "export": {"artifact": None, "fallbacks": []}, "metrics": {}})
        return Candidate(plan, key, folder, row, {}, {}, seconds=time.perf_counter() - t0)
    exported = _export(search, plan, source, folder, say)
    say("bench")
    row = _bench(search, exported) if exported.get("artifact") else _failed_row(search, plan, exported)
    if exported.get("artifact") is None or not row.get("error"):  # a failed timing is retried by a rerun
        write_json(marker, {"row": row, "export": exported, "metrics": metrics})
    return Candidate(plan, key, folder, row, exported, metrics, seconds=time.perf_counter() - t0)


def _compressed(search: Search, plan: Plan, folder: Path, say: Say) -> tuple[Checkpoint, dict[str, Any]]:
    """The checkpoint to export: the original, or pruned (and recovered) into ``folder``."""
    if plan.macs is None:
        return search.ckpt, {"macs_ratio": 1.0}
    cfg = search.cfg
    round_to = None if plan.unrounded else search.round_to
    pruned_path = search.pruned_path(plan.macs, round_to)
    if not pruned_path.is_file():
        say("prune")
        from ..compress.prune import prune

        prune(search.ckpt, search.bundle, pruned_path, config=cfg.prune_config(plan.macs, round_to, search.scores_path),
              progress=False, force=True)
    pruned = load_checkpoint(pruned_path)
    metrics = {k: pruned.metrics.get(k) for k in ("macs_ratio", "macs", "params", "top1_unpruned", "top1_pruned_bn")}
    metrics["pruned"] = str(pruned_path)
    if plan.recovery is None:
        return pruned, metrics
    final = folder / f"{plan.label}.pt"
    if not final.is_file():
        say(f"recover ({plan.recovery}, {plan.recovery_epochs} epochs)")
        work = folder / "recovering.pt"  # written while recovering: renamed only when it is done
        if plan.recovery == "finetune":
            _finetuned(search, pruned, plan.recovery_epochs, work)
        else:
            from ..compress.distill import distill

            distill(search.ckpt, pruned, search.bundle, work, method=plan.recovery, epochs=plan.recovery_epochs,
                    lr=cfg.recovery_lr, seed=cfg.seed, batch_size=cfg.batch_size, precise_bn=cfg.precise_bn,
                    device=cfg.device, progress=False, force=True)
        os.replace(work, final)
    recovered = load_checkpoint(final)
    metrics["val_top1"] = recovered.metrics.get("val_top1")
    return recovered, metrics


def _finetuned(search: Search, pruned: Checkpoint, epochs: int, output: Path) -> None:
    """Plain fine-tuning of ``pruned`` on the search's training split (cross-entropy, ending with
    precise BN), written to ``output`` with its validation top-1 as ``val_top1``."""
    from ..compress.recovery import finetune
    from ..device import resolve_device
    from ..training.metrics import evaluate_model

    cfg = search.cfg
    model = pruned.model
    finetune(model, search.bundle, pruned.input_spec, epochs=epochs, lr=cfg.recovery_lr, batch_size=cfg.batch_size,
             seed=cfg.seed, device=resolve_device(cfg.device), progress=False, precise_bn=cfg.precise_bn)
    model = model.cpu().eval()
    top1 = evaluate_model(model, search.bundle.loader("val", pruned.eval_transform, 256), "classify", "cpu")["top1"]
    pruned.derive(model, stage="finetune", metrics={**pruned.metrics, "val_top1": top1}).save(output, force=True)


def _export(search: Search, plan: Plan, source: Checkpoint, folder: Path, say: Say) -> dict[str, Any]:
    """Export at the plan's precision, falling back to wider ones when the parity gate refuses it."""
    from ..exporters.pipeline import export

    fallbacks: list[dict[str, str]] = []
    for precision in plan.precisions():
        say(f"export {precision}")
        try:
            rec = export(source, plan.target, precision=precision, output_dir=folder, name=plan.label,
                         calib=search.bundle, calib_size=search.cfg.calib_size,
                         parity_size=search.cfg.parity_size, force=True)[0]
        except EdgekitError as exc:
            fallbacks.append({"precision": precision, "error": str(exc)})
            say(f"export {precision} refused: {str(exc)[:160]}")
            continue
        return {"artifact": rec["path"], "precision": precision, "fallbacks": fallbacks,
                "checkpoint": str(source.path) if source.path else None, "parity": rec.get("parity")}
    return {"artifact": None, "precision": None, "fallbacks": fallbacks,
            "checkpoint": str(source.path) if source.path else None}


def _bench(search: Search, exported: dict[str, Any]) -> dict[str, Any]:
    from ..benchmark.run import bench

    return bench(exported["artifact"], runtime=search.budget.runtime, threads=search.cfg.threads,
                 min_seconds=search.cfg.min_seconds, data=search.bundle.spec)[0]


def _failed_row(search: Search, plan: Plan, exported: dict[str, Any]) -> dict[str, Any]:
    why = "; ".join(f"{f['precision']}: {f['error']}" for f in exported["fallbacks"])
    return _error_row(search, plan, f"no precision passed the parity gate ({why})")


def _error_row(search: Search, plan: Plan, message: str) -> dict[str, Any]:
    """The bench row of a candidate that produced no artifact (it marks the candidate finished)."""
    from ..benchmark.schema import error_row

    return error_row({"model": plan.label, "artifact": None, "runtime": search.budget.runtime,
                      "threads": search.cfg.threads, "batch": 1}, message)
