"""``edgekit run RECIPE -o DIR``: a recipe's stages in order, each through the library, cached.

Stages: ``train`` (:func:`edgekit.training.trainer.train`), ``prune``
(:func:`edgekit.compress.prune.prune`), ``distill`` (:func:`edgekit.compress.distill.distill`,
the trained model as the teacher), ``export`` (:func:`edgekit.exporters.pipeline.export`),
``bench`` (:func:`edgekit.benchmark.run.bench`, then :func:`edgekit.benchmark.report.report`)
and ``optimize`` (:func:`edgekit.optimization.search.optimize` on the trained model); a
stage runs when its section is in the recipe.

Each stage writes under ``DIR/<stage>/`` and is keyed by content: the sha256 of its
resolved section (the typed configuration, defaults filled in) and of what it reads (the
upstream checkpoints' or artifacts' sha256). ``DIR/<stage>/stage.json``, written last, is
the finished marker; a stage whose marker holds the same key is read back, never rerun, so
a rerun, or a run after a kill, recomputes only what changed and what follows from it. A
killed ``train`` resumes from its last epoch when its key is unchanged; ``optimize`` keeps
its own per-candidate cache. ``DIR/run.json`` lists the stages, keys, outputs, whether each
was reused or computed, and the wall times.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from ..errors import EdgekitError
from ..fileio import atomic_path, check_writable, write_json
from .load import PRUNED, Recipe, RelativeBudget, load_recipe

MARKER = "stage.json"
STARTED = "key.txt"


@dataclass
class Stage:
    """One stage of a run: its key, folder, outputs (``sha256`` of checkpoints or artifacts
    included, the next stages' inputs), whether it was reused, and how long it took."""

    name: str
    key: str
    folder: Path
    outputs: dict[str, Any] = field(default_factory=dict)
    reused: bool = False
    seconds: float = 0.0

    def record(self) -> dict[str, Any]:
        return {"stage": self.name, "key": self.key, "folder": str(self.folder), "reused": self.reused,
                "seconds": round(self.seconds, 2), "outputs": self.outputs}


def stage_key(name: str, section: Any, inputs: dict[str, Any]) -> str:
    """sha256 of the stage's name, resolved section and its inputs' hashes."""
    doc = json.dumps({"stage": name, "section": section, "inputs": inputs}, sort_keys=True, default=str)
    return hashlib.sha256(doc.encode()).hexdigest()


class Runner:
    """Runs stages under ``root``: reuses a finished one with the same key, else computes it."""

    def __init__(self, root: Path, say: Callable[[str], None], progress: bool) -> None:
        self.root, self.say, self.progress = root, say, progress
        self.stages: dict[str, Stage] = {}

    def stage(self, name: str, section: Any, inputs: dict[str, Any],
              compute: Callable[[Path, bool], dict[str, Any]], keep: bool = False) -> Stage:
        """``compute(folder, resume)`` writes into ``folder`` and returns the outputs;
        ``resume`` is True when a killed run with this very key left its work there. A
        folder holding another key's work is emptied first, unless ``keep`` (a stage that
        caches its own work by content, as ``optimize`` does its candidates)."""
        key = stage_key(name, section, inputs)
        folder = self.root / name
        marker, started = folder / MARKER, folder / STARTED
        if marker.is_file():
            done = json.loads(marker.read_text())
            if done.get("key") == key:
                self.say(f"{name}: reused ({key[:12]})")
                result = Stage(name, key, folder, done.get("outputs", {}), reused=True)
                self.stages[name] = result
                return result
        resume = started.is_file() and started.read_text().strip() == key
        if not resume and not keep and folder.exists():
            if not (started.is_file() or marker.is_file()):
                raise EdgekitError(f"{folder} holds files no stage of a run wrote; move them, or run into "
                                   "another folder")
            shutil.rmtree(folder)  # another key's outputs: never mixed with this one's
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(started) as tmp:
            tmp.write_text(key + "\n")
        self.say(f"{name}: {'resuming' if resume else 'running'} ({key[:12]})")
        t0 = time.perf_counter()
        outputs = compute(folder, resume)
        result = Stage(name, key, folder, outputs, seconds=time.perf_counter() - t0)
        write_json(marker, {"key": key, "section": section, "inputs": inputs, "outputs": outputs,
                            "seconds": round(result.seconds, 2)})
        self.say(f"{name}: done in {result.seconds:.1f}s")
        self.stages[name] = result
        return result


def check_run_folder(root: Path) -> None:
    """A run writes into an empty folder or one an earlier run wrote (``run.json``, a stage's
    marker): a folder of other files is refused up front, before any stage runs, so a run
    never mixes with, or removes, files it did not write."""
    if not root.is_dir() or not any(root.iterdir()):
        return
    if (root / "run.json").is_file() or any((d / STARTED).is_file() or (d / MARKER).is_file()
                                            for d in root.iterdir() if d.is_dir()):
        return
    raise EdgekitError(f"{root} is a folder of other files, not an earlier run's; run into an empty or new folder")


def _checkpoint_output(path: Path) -> dict[str, Any]:
    from ..checkpoint import load_checkpoint

    ckpt = load_checkpoint(path)
    return {"checkpoint": str(path), "sha256": ckpt.sha256, "metrics": ckpt.metrics}


def _section(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def run_recipe(recipe: str | Path | Recipe, output: str | Path, *, overrides: Iterable[str] = (),
               progress: bool = True) -> dict[str, Any]:
    """Run ``recipe`` (a path, a name in ``models/`` or a loaded :class:`~.load.Recipe`) into ``output``.

    ``overrides``: ``KEY=VALUE`` dotted overrides (``training.epochs=2``,
    ``optimize=null``). Stages already finished in ``output`` with the same key are
    reused. Returns the ``run.json`` document."""
    rec = recipe if isinstance(recipe, Recipe) else load_recipe(recipe, overrides)
    root = check_writable(output, folder=True, inputs=[rec.path])
    check_run_folder(root)
    root.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()

    def say(text: str) -> None:
        if progress:
            print(f"run {rec.name}: {text} [{time.perf_counter() - t0:.1f}s]", file=sys.stderr, flush=True)

    runner = Runner(root, say, progress)
    _train(runner, rec)
    if rec.prune is not None:
        _prune(runner, rec)
    if rec.distill is not None:
        _distill(runner, rec)
    if rec.export is not None:
        _export(runner, rec)
    if rec.bench is not None:
        _bench(runner, rec)
    if rec.optimize is not None:
        _optimize(runner, rec)
    doc = {"recipe": rec.name, "path": str(rec.path), "overrides": list(rec.overrides), "resolved": rec.resolved,
           "stages": [s.record() for s in runner.stages.values()],
           "computed": [s.name for s in runner.stages.values() if not s.reused],
           "wall_seconds": round(time.perf_counter() - t0, 2)}
    write_json(root / "run.json", doc)
    return doc


def _train(runner: Runner, rec: Recipe) -> Stage:
    def compute(folder: Path, resume: bool) -> dict[str, Any]:
        from ..training.trainer import resume_path, train

        out = folder / "model.pt"
        train(rec.arch, rec.data, out, config=rec.training, resume=resume and resume_path(out).is_file(),
              force=True, progress=runner.progress)
        return _checkpoint_output(out)

    section = {"arch": rec.arch, "data": rec.data, **_section(rec.training)}
    return runner.stage("train", section, {}, compute)


def _prune(runner: Runner, rec: Recipe) -> Stage:
    parent = runner.stages["train"].outputs

    def compute(folder: Path, resume: bool) -> dict[str, Any]:
        from ..compress.prune import prune

        prune(parent["checkpoint"], None, folder / "model.pt", config=rec.prune, force=True,
              progress=runner.progress)
        return _checkpoint_output(folder / "model.pt")

    return runner.stage("prune", _section(rec.prune), {"checkpoint": parent["sha256"]}, compute)


def _distill(runner: Runner, rec: Recipe) -> Stage:
    teacher = runner.stages["train"].outputs
    student = runner.stages["prune"].outputs if rec.student == PRUNED else None

    def compute(folder: Path, resume: bool) -> dict[str, Any]:
        from ..compress.distill import distill

        distill(teacher["checkpoint"], student["checkpoint"] if student else rec.student, None,
                folder / "model.pt", config=rec.distill, force=True, progress=runner.progress)
        return _checkpoint_output(folder / "model.pt")

    inputs = {"teacher": teacher["sha256"], "student": student["sha256"] if student else rec.student}
    return runner.stage("distill", {"student": rec.student, **_section(rec.distill)}, inputs, compute)


def _export(runner: Runner, rec: Recipe) -> Stage:
    models = rec.export.models or rec.checkpoint_stages
    sources = {m: runner.stages[m].outputs for m in models}

    def compute(folder: Path, resume: bool) -> dict[str, Any]:
        from ..exporters.pipeline import export

        artifacts = []
        for model, src in sources.items():
            for m in export(src["checkpoint"], output_dir=folder, name=model, force=True, **rec.export.arguments()):
                artifacts.append({"model": model, "path": m["path"], "sha256": m["sha256"], "target": m["target"],
                                  "precision": m["precision"], "parity": m.get("parity")})
        return {"artifacts": artifacts, "checkpoints": {m: s["checkpoint"] for m, s in sources.items()}}

    inputs = {m: s["sha256"] for m, s in sources.items()}
    return runner.stage("export", dataclasses.asdict(rec.export), inputs, compute)


def _bench(runner: Runner, rec: Recipe) -> Stage:
    exported = runner.stages["export"].outputs
    opts = rec.bench
    files = [a["path"] for a in exported["artifacts"]]
    inputs = {a["path"].rsplit("/", 1)[-1]: a["sha256"] for a in exported["artifacts"]}
    if opts.times_checkpoints:
        files += list(exported["checkpoints"].values())
        inputs.update({f"{m}.pt": runner.stages[m].outputs["sha256"] for m in exported["checkpoints"]})

    def compute(folder: Path, resume: bool) -> dict[str, Any]:
        from ..benchmark.run import bench

        results = folder / "results.json"
        rows = bench(files, runtime=opts.runtimes, threads=opts.threads, warmup=opts.warmup, runs=opts.runs,
                     min_seconds=opts.min_seconds, max_samples=opts.max_samples,
                     data=rec.data if opts.accuracy else None, output=results, force=True,
                     progress=runner.progress)
        out: dict[str, Any] = {"results": str(results), "rows": [_row(r) for r in rows]}
        if opts.report:
            from ..benchmark.report import report

            out["report"] = str(report([results], folder / "report", title=f"edgekit run {rec.name}", force=True))
        return out

    return runner.stage("bench", {**dataclasses.asdict(opts), "data": rec.data}, inputs, compute)


def _row(row: dict[str, Any]) -> dict[str, Any]:
    """The columns of a bench row that run.json and a relative budget read."""
    return {"artifact": row.get("artifact"), "runtime": row.get("runtime"), "threads": row.get("threads"),
            "precision": row.get("precision"), "p50_ms": row.get("p50_ms"),
            "top1": (row.get("accuracy") or {}).get("top1"), "error": row.get("error")}


def reference_ms(runner: Runner, budget: RelativeBudget, threads: int) -> float:
    """The trained model's fp32 latency on the budget's runtime, as this run's bench stage measured it."""
    exported = runner.stages["export"].outputs
    paths = {a["path"] for a in exported["artifacts"]
             if a["model"] == "train" and a["precision"] == "fp32" and a["target"] == budget.target}
    for row in runner.stages["bench"].outputs.get("rows", []):
        if (row["artifact"] in paths and row["runtime"] == budget.runtime and row["threads"] == threads
                and not row["error"] and row["p50_ms"]):
            return float(row["p50_ms"])
    raise EdgekitError(f"budget {budget}: the bench stage has no fp32 {budget.runtime} row of the trained model "
                       f"at {threads} thread(s) to scale")


def _optimize(runner: Runner, rec: Recipe) -> Stage:
    parent = runner.stages["train"].outputs
    budget = rec.budget
    if isinstance(budget, RelativeBudget):
        ref = reference_ms(runner, budget, rec.optimize.threads)
        budget = budget.resolve(ref)
        runner.say(f"optimize: budget {rec.budget} of {ref:.4f} ms = {budget}")

    def compute(folder: Path, resume: bool) -> dict[str, Any]:
        from ..optimization.search import optimize

        doc = optimize(parent["checkpoint"], None, folder, budget=budget, config=rec.optimize,
                       progress=runner.progress)
        chosen = doc.get("chosen") or {}
        return {"optimize_json": str(folder / "optimize.json"), "meets_budget": doc.get("meets_budget"),
                "chosen": {k: chosen.get(k) for k in ("label", "artifact", "p50_ms", "top1", "drop")} or None}

    section = {"budget": str(budget), "recipe_budget": str(rec.budget), **_section(rec.optimize)}
    return runner.stage("optimize", section, {"checkpoint": parent["sha256"]}, compute, keep=True)
