"""The search: candidate plans against the measured latency of the final artifact.

Order (each candidate exported and benchmarked as it would ship, :mod:`.candidate`):

1. the original's reference rows (torch eager, fp32 ONNX and TFLite; :mod:`.baseline`):
   the accuracy ``max_drop`` counts from and the speed-ups' denominators;
2. the **unpruned** model at the asked precision (int8 by default): when it meets the
   budget, pruning can only cost accuracy, and the search ends there (unless
   ``exhaustive``);
3. the CURL **grid** of MACs fractions, largest first, each pruned once and recovered by
   every configured method (KD from the original, fine-tuning on the labels: one candidate
   each, so the better recovery is measured per fraction): the first fraction with an artifact
   that meets the budget ends the grid (smaller ones are faster and less accurate) unless
   ``exhaustive``. When the budget runtime's channel multiple pushed a fraction's pruned
   model more than 2 % off it (narrow layers: 24 channels can keep only 16 or 24), the
   fraction is also tried with unrounded counts (labels ``macs0.50u+...``), and the
   measurement decides; for the same reason the grid goes on past a fitting fraction while
   the next fraction is above the MACs the fitting model actually kept, with unrounded
   counts only (a larger model that may still fit);
4. ``refine`` **bisection** steps between the largest fraction that met the budget and the
   smallest one above it that did not (the unpruned model counts as 1.0): a larger, more
   accurate model that still fits. Latency is measured, never predicted from MACs ("pruned
   but not faster" is what the measurement catches).

The chosen artifact is the most accurate candidate (ties: the faster) that meets the
budget and loses at most ``max_drop`` top-1 points against the original's torch row, both
compared on the ``select`` half of the held-out split; every accuracy reported is on the
other, ``report`` half, which the choice never saw
(:func:`edgekit.benchmark.accuracy.split_halves`);
when none does, ``optimize.json`` says so and names the closest (:mod:`.summary`).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from ..checkpoint import Checkpoint, load_checkpoint
from ..errors import EdgekitError
from ..fileio import check_writable, write_json
from ..tasks import get_task
from .baseline import original_rows, reference_top1
from .budget import Budget, parse_budget
from .candidate import Candidate, Say, Search, run_candidate
from .config import OptimizeConfig
from .plan import Plan

__all__ = ["optimize", "OptimizeConfig"]


class Progress:
    """``candidate i/n: PLAN STAGE ELAPSED`` lines on stderr (elapsed since the search began)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled, self.t0 = enabled, time.perf_counter()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def sayer(self, prefix: str) -> Say:
        return lambda stage: self.line(f"{prefix} {stage}")

    def line(self, text: str) -> None:
        if self.enabled:
            print(f"{text} {self.elapsed:.1f}s", file=sys.stderr, flush=True)


def optimize(checkpoint: str | Path | Checkpoint, data: str | None = None, output: str | Path = "optimize", *,
             budget: str | Budget, config: OptimizeConfig | None = None, resume: bool = False,
             progress: bool = True, **options: Any) -> dict[str, Any]:
    """Search compression plans of ``checkpoint`` for the most accurate artifact meeting ``budget``.

    ``budget``: ``"2ms@litert"`` (median latency at batch 1 on that runtime, measured at
    ``threads``). ``data`` None is the checkpoint's own dataset; either way it is split as
    the checkpoint's training split it (the accuracy is on images it never trained on).
    ``options`` are the fields of :class:`~edgekit.optimization.config.OptimizeConfig`
    (``max_drop=1.0``, ``precision="int8"``, ``ratios=(0.75, 0.5)``, ``recovery_epochs=3``,
    ...), or pass a ``config``. Everything is kept under ``output``; finished candidates
    found there are reused (a rerun after a kill continues), and ``resume=True`` insists
    that there is a search to continue. Returns the ``optimize.json`` document: ``chosen``
    is None when no candidate meets the budget within ``max_drop`` (``closest`` then names
    the nearest), which is a result, not an error.
    """
    from . import summary

    budget = parse_budget(budget)
    cfg = config if config is not None else OptimizeConfig.from_options(options, "optimize")
    root = check_writable(output, folder=True, inputs=[checkpoint])
    if resume and not (root / "candidates").is_dir():
        raise EdgekitError(f"nothing to resume: {root} holds no candidates/ of an earlier search")
    why = budget.unavailable()
    if why:
        raise EdgekitError(f"cannot measure the budget {budget}: {why}")
    ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint)
    if ckpt.path is None:
        raise EdgekitError("optimize needs a saved checkpoint (its hash keys the candidates); save it first")
    if not get_task(ckpt.task).optimizable:
        raise EdgekitError(f"optimize chooses by top-1 accuracy and supports classifiers; this checkpoint is "
                           f"{ckpt.task!r}")
    search = Search(ckpt, ckpt.load_data(data), budget, cfg, root)
    clock = Progress(progress)
    originals = original_rows(search, clock.sayer("original:"))
    reference = reference_top1(originals)
    if reference is None:
        errors = "; ".join(str(r.get("error")) for r in originals if r.get("error"))
        raise EdgekitError(f"the original model's accuracy could not be measured: {errors or 'no rows'}")
    candidates = _search(search, reference, clock)
    doc = summary.document(search, originals, candidates, reference)
    doc["wall_seconds"] = round(clock.elapsed, 1)
    write_json(root / "optimize.json", doc)
    return doc


def _search(search: Search, reference: float, clock: Progress) -> list[Candidate]:
    """Unpruned first, then the grid largest first, then bisection toward the budget."""
    cfg, budget = search.cfg, search.budget
    done: list[Candidate] = []
    per_ratio = 1 if cfg.recovery_epochs == 0 else len(cfg.recovery)
    total = 1 + (len(cfg.ratios) + cfg.refine) * per_ratio

    def run(plan: Plan) -> Candidate:
        prefix = f"candidate {len(done) + 1}/{total}: {plan.label}"
        cand = run_candidate(search, plan, clock.sayer(prefix))
        done.append(cand)
        if cand.ok:
            verdict = "meets the budget" if budget.met(cand.p50_ms) else f"over {budget.ms:g} ms"
            clock.line(f"{prefix} {'reused' if cand.reused else 'done'}: {cand.p50_ms:.3f} ms, top-1 "
                       f"{cand.top1 if cand.top1 is not None else float('nan'):.2f}% ({verdict})")
        else:
            clock.line(f"{prefix} failed: {str(cand.row.get('error'))[:200]}")
        return cand

    def meets(c: Candidate) -> bool:
        return c.ok and budget.met(c.p50_ms)

    def plans(ratio: float, unrounded: bool) -> list[Plan]:
        """Every recovery of one MACs fraction (one plan when there is no recovery)."""
        return list(dict.fromkeys(Plan.pruned(ratio, cfg.recovery_epochs, cfg.precision, budget.target, rec,
                                              unrounded) for rec in cfg.recovery))

    def run_ratio(ratio: float) -> list[Candidate]:
        """One fraction with the search's channel multiple, then with any counts when that multiple
        pushed the pruned model off the fraction (:func:`~edgekit.compress.prune_config.off_target`;
        on narrow layers a coarse multiple can cost more accuracy than it buys in latency)."""
        nonlocal total
        cands = [run(plan) for plan in plans(ratio, unrounded=False)]
        if search.round_to not in (None, 1) and any(_rounded_off(c, ratio) for c in cands):
            extra = plans(ratio, unrounded=True)
            total += len(extra)
            cands += [run(plan) for plan in extra]
        return cands

    first = run(Plan.unpruned(cfg.precision, budget.target))
    if meets(first) and not cfg.exhaustive:
        return done  # the whole model fits: pruning could only lose accuracy

    fitted: float | None = None  # the largest MACs fraction measured to meet the budget
    for ratio in cfg.ratios:
        if fitted is None or cfg.exhaustive:
            cands = run_ratio(ratio)
        elif ratio > fitted and search.round_to not in (None, 1):
            # rounding pushed the fitting model below this fraction: unrounded counts here keep
            # more of the network than the model that fits, and may still fit
            extra = plans(ratio, unrounded=True)
            total += len(extra) - per_ratio
            cands = [run(plan) for plan in extra]
        else:
            total = len(done) + cfg.refine * per_ratio  # the rest of the grid is smaller still: skipped
            break
        fits = [c.metrics.get("macs_ratio") or c.plan.macs or 1.0 for c in cands if meets(c)]
        if fits:
            fitted = max(fits + ([fitted] if fitted is not None else []))
    lo, hi = _bracket(done, budget)
    for _ in range(cfg.refine):
        if lo is None or hi is None or hi - lo < 0.02:
            break
        mid = round((lo + hi) / 2, 4)
        cands = run_ratio(mid)
        if any(meets(c) for c in cands):
            lo = mid
        elif any(c.ok for c in cands):
            hi = mid
        else:
            break
    return done


def _rounded_off(cand: Candidate, ratio: float) -> bool:
    """Whether this pruned candidate's MACs fraction missed ``ratio`` (False when it was refused)."""
    from ..compress.prune_config import off_target

    got = cand.metrics.get("macs_ratio")
    return got is not None and off_target(got, ratio)


def _bracket(done: list[Candidate], budget: Budget) -> tuple[float | None, float | None]:
    """(largest MACs fraction that met the budget, smallest fraction above it that did not;
    the unpruned model is 1.0). Failed candidates say nothing about latency."""
    measured = [(c.plan.macs or 1.0, budget.met(c.p50_ms)) for c in done if c.ok]
    lo = max((m for m, ok in measured if ok), default=None)
    if lo is None:
        return None, None
    hi = min((m for m, ok in measured if not ok and m > lo), default=None)
    return lo, hi
