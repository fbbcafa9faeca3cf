"""``edgekit prune``: CURL structured pruning of a checkpoint to a MACs, params or latency target.

Pipeline (Luo & Wu, "Neural Network Pruning with Residual-Connections and Limited-Data",
CVPR 2020, as edgekit implements it: docs/methods.md section 1; docs/findings.md items 1-4):

1. units: Torch-Pruning dependency groups of the model (:mod:`edgekit.compress.units`);
2. importance: CURL's KL(masked || original) on a proxy set of ``proxy_size`` training
   images under the eval transform (:mod:`edgekit.compress.curl`), or a Torch-Pruning
   baseline (``l1``, ``l2``, ``bn``, ``taylor``, ``random``) on the same units: the criterion
   registered as ``method`` (:mod:`edgekit.compress.criteria`), which owns its options;
3. selection: global one-shot ranking (``kl-per-mac`` by default, chosen by the
   benchmark in ``benchmarks/prune_digits.md``; ``kl`` as in the paper) under a hard
   minimum keep ratio, the number of removed units found to meet the target;
4. BatchNorm re-estimation (:func:`edgekit.training.precise_bn.precise_bn`), then recovery
   (``finetune`` or ``limited-data``) with the unpruned checkpoint as teacher, ending with
   precise BN again;
5. the pruned checkpoint (channel plan + provenance + metrics) is written atomically.

Label-distribution checkpoints (DLDL-v2 heads, task ``label_distribution``; Gao et al.,
"Learning Expectation of Label Distribution for Facial Age and Attractiveness Estimation",
2020) prune the same way: CURL's KL compares the masked and original **label
distributions** (the output's first K columns, :func:`edgekit.compress.kd.soft_logits`),
the head's K outputs are never pruned (it is the layout's classifier), recovery trains
with the checkpoint's own label-distribution loss, and every score is the MAE (lower is
better; also RMSE, Pearson, epsilon-error) with the checkpoint's flip-test setting:
``mae_unpruned``, ``mae_pruned_bn``, ``val_mae`` where a classifier has ``top1_*``. A
one-output L1 model has no distribution: CURL refuses it in one line and the magnitude
baselines (``l1``, ``l2``, ``bn``, ``random``; ``taylor`` on its L1 loss) prune it.

Clip checkpoints (TSN, TSM; task ``clip_classify``) prune the same way on a proxy set of
clips (the eval clip transform), CURL's KL taken over the clip logits; the unit graph is
traced on the model's frame view and a TSM's shifted channels stay shifted, 1/8 of each
pruned width (:mod:`edgekit.compress.temporal`), so the pruned model's online form streams
with smaller state tensors. MACs are per clip (T frames). The limited-data recipe (image
edits) and latency targets are refused for clips, as is an online TSM checkpoint (prune the
causal TSM it streams from).

Each step is a phase function over one :class:`~edgekit.compress.prune_config.PruneConfig`.
Scores are cached next to the output while the run lasts (``OUTPUT.scores.pt``, keyed by
the parent's hash, method and proxy set), so an interrupted prune does not score again;
a finished prune removes that file, unless ``scores_path`` asked to keep the scores. A score
cache carries its own header (``edgekit.scores``, a version) and its parent checkpoint's hash:
a file that is not a score cache is never overwritten, and a named ``scores_path`` holding
another checkpoint's scores is replaced only with ``force``; both are checked before any work.
"""
from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..checkpoint import KIND as CHECKPOINT_KIND
from ..checkpoint import Checkpoint, load_checkpoint
from ..data import DataBundle
from ..device import resolve_device
from ..errors import EdgekitError
from ..fileio import Kind, atomic_path, check_writable, data_input, same_file
from ..formats import is_edgekit_checkpoint
from ..registry import count_macs, count_params
from ..seeding import seed_everything
from ..tasks import get_task
from ..training.guards import require_classes
from ..training.label_distribution import LabelTask
from ..training.metrics import evaluate_model
from ..training.precise_bn import bn_loader, precise_bn
from .criteria import Proxy, build_criterion
from .criteria.curl import activation_budget, curl_readout, exact_precision_on  # noqa: F401  (here for their existing callers)
from .prune_config import RANKS, RECIPES, TARGET_TOLERANCE, PruneConfig, off_target

log = logging.getLogger("edgekit.prune")

__all__ = ["prune", "PruneConfig", "RANKS", "RECIPES", "proxy_set", "score_units", "curl_readout"]


def proxy_set(bundle: DataBundle, transform: Any, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """CURL's proxy set: the training list shuffled once (seeded), first ``size`` images, eval transform.

    Targets: class indices, or float ``[N]`` / ``[N, 2]`` (label, sigma) for numeric data."""
    n = len(bundle.train)
    if size < 1:
        raise EdgekitError(f"proxy_size must be positive, got {size}")
    if n < size:
        raise EdgekitError(f"the training split has {n} images, fewer than the proxy set of {size}; "
                           f"lower --proxy-size")
    idx = np.random.default_rng(seed).permutation(n)[:size].tolist()
    items = [bundle.train[i] for i in idx]
    x = torch.stack([transform(img) for img, _ in items])
    if get_task(bundle.task).class_labels:
        y = torch.as_tensor([int(t) for _, t in items])
    else:
        y = torch.stack([torch.as_tensor(t, dtype=torch.float32) for _, t in items])
    return x, y, idx


def score_units(method: str, model: torch.nn.Module, graph: Any, x: torch.Tensor, y: torch.Tensor, *,
                seed: int = 0, progress: bool = True, label_task: LabelTask | None = None,
                scoring: str = "exact", device: torch.device | str | None = None,
                exact_precision: str = "auto") -> dict[int, torch.Tensor]:
    """Importance of every prunable unit under the criterion registered as ``method`` (lower = removed
    first; :mod:`edgekit.compress.criteria`).

    ``label_task``: the model is a label-distribution model (CURL compares its distributions,
    Taylor differentiates its own loss). ``scoring``, ``exact_precision``: CURL's options (ignored by
    criteria that do not own them). ``device``: where CURL's passes run (the model is moved there and
    back to the CPU)."""
    criterion = build_criterion(method, scoring=scoring, exact_precision=exact_precision)
    return criterion.score(model, graph, Proxy(x, y, seed=seed, progress=progress, label_task=label_task,
                                               device=device))


@dataclass
class _Run:
    """What the phases share: the parent, its data split, the model being pruned and the metrics so far."""

    cfg: PruneConfig
    ckpt: Checkpoint
    bundle: DataBundle
    device: torch.device
    teacher: nn.Module
    model: nn.Module
    output: Path
    progress: bool
    target: Any  # selection.Target
    label_task: LabelTask | None = None  # a label-distribution checkpoint's task (scored by MAE)
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (1, *self.ckpt.input_spec["shape"])

    @property
    def round_to(self) -> int | None:
        """The channel multiple in force: ``cfg.round_to`` resolved for the target's runtime
        (a latency target rounds to its runtime's fast multiple unless told otherwise)."""
        from .rounding import AUTO, resolve_round_to

        asked = self.cfg.round_to
        if asked is None and self.target.kind == "latency":
            asked = AUTO
        return resolve_round_to(asked, self.target.runtime)

    @property
    def rank(self) -> str:
        return self.cfg.criterion.rank

    def score(self, graph: Any, x: torch.Tensor, y: torch.Tensor) -> dict[int, torch.Tensor]:
        """Every unit's importance under the run's criterion, given what it needs (labels, the teacher)."""
        crit = self.cfg.criterion
        proxy = Proxy(x, y if crit.needs.labels else None, seed=self.cfg.seed, progress=self.progress,
                      label_task=self.label_task, device=self.device,
                      teacher=self.teacher if crit.needs.teacher else None)
        return crit.score(self.model, graph, proxy)

    @property
    def score_key(self) -> str:
        """The headline metric: ``top1`` (higher is better) or, for label distributions, ``mae`` (lower)."""
        return "mae" if self.label_task is not None else "top1"

    def eval(self, model: nn.Module) -> dict[str, Any]:
        """Validation metrics of ``model`` (a label-distribution model with the checkpoint's flip test),
        computed on the run's device; the model is left on the CPU, where pruning edits it."""
        loader = self.bundle.loader("val", self.ckpt.eval_transform, 256)
        model.to(self.device)
        try:
            if self.label_task is not None:
                return evaluate_model(model, loader, "label_distribution", self.device,
                                      flip=self.label_task.flip_test)
            return evaluate_model(model, loader, "classify", self.device)
        finally:
            model.cpu()

    def reestimate_bn(self) -> None:
        loader = bn_loader(self.bundle, self.ckpt.input_spec, self.cfg.batch_size)
        self.model.to(self.device)
        try:
            precise_bn(self.model, loader, self.cfg.precise_bn, device=self.device)
        finally:
            self.model.cpu()


def prune(checkpoint: str | Path | Checkpoint, data: str | DataBundle | None, output: str | Path, *,
          config: PruneConfig | None = None, force: bool = False, progress: bool = True,
          **options: Any) -> Checkpoint:
    """Prune ``checkpoint`` to a target on ``data`` and write the result to ``output``; returns it.

    ``options`` are the fields of :class:`~edgekit.compress.prune_config.PruneConfig`
    (``target="macs=0.5"``, ``method="curl"``, ``finetune_epochs=5``, ...), or pass a
    ``config``. ``data`` None is the checkpoint's own dataset; either way it is split as
    the checkpoint's training split it. The checkpoint's metrics hold accuracy unpruned /
    right after pruning (BN re-estimated) / after recovery, MACs and parameters before and
    after, and the scoring and pruning wall times.
    """
    cfg = config if config is not None else PruneConfig.from_options(options, "prune")
    inputs = [checkpoint, data_input(data)]
    output = check_writable(output, force, kind=CHECKPOINT_KIND, inputs=inputs)
    cache = _cache_path(cfg, output)
    if cache is not None:
        if same_file(cache, output):
            raise EdgekitError(f"--scores and --output both name {output}; keep the scores in another file")
        check_writable(cache, True, kind=SCORES_KIND, inputs=inputs)  # whose scores: checked once loaded
    run = _open(checkpoint, data, output, cfg, progress)
    if cache is not None and cfg.scores_path is not None:
        _check_cache_parent(cache, run.ckpt, force)
    t0 = time.perf_counter()
    groups = _prune_steps(run, cache)
    run.metrics["prune_seconds"] = time.perf_counter() - t0  # graphs + scoring + selection + pruning + BN
    _recover(run)
    child = _write(run, groups, force)
    if cache is not None and cfg.scores_path is None:
        cache.unlink(missing_ok=True)  # a temporary of this run: the scores were not asked to be kept
    return child


def _open(checkpoint: str | Path | Checkpoint, data: str | DataBundle | None, output: Path, cfg: PruneConfig,
          progress: bool) -> _Run:
    """Load the parent and its own train/val split (whatever the pruning seed), and copy the model to prune."""
    from .selection import parse_target

    target = parse_target(cfg.target)
    ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint)
    if not get_task(ckpt.task).prunable:
        raise EdgekitError(f"prune supports classifiers (of images or clips) and label-distribution models; "
                           f"this checkpoint is {ckpt.task!r}")
    if get_task(ckpt.task).clips:
        _check_clip(ckpt, cfg)
    label_task = get_task(ckpt.task).settings(ckpt.extra)
    if get_task(ckpt.task).settings_key and label_task is None:
        raise EdgekitError(f"the checkpoint does not record its label-distribution task (extra {LabelTask.KEY!r}); "
                           "retrain it with edgekit train --task label_distribution")
    cfg.criterion.check(label_task)  # a model it cannot score (CURL: one output) raises here, before any data loads
    # a val split drawn with another seed would hold images the unpruned model was trained on
    bundle = data if isinstance(data, DataBundle) else ckpt.load_data(data)
    if label_task is not None:
        if not get_task(ckpt.task).accepts_data(bundle.task):
            raise EdgekitError(f"data {bundle.spec!r} is a {bundle.task} set but the checkpoint is a "
                               "label_distribution model (numeric labels)")
    elif not get_task(ckpt.task).accepts_data(bundle.task) or len(bundle.labels) != ckpt.num_outputs:
        raise EdgekitError(f"data {bundle.spec!r} has {len(bundle.labels)} classes but the checkpoint "
                           f"has {ckpt.num_outputs} outputs")
    bundle = bundle.subset_train(cfg.train_fraction, cfg.data_seed)
    require_classes(bundle, "pruning")
    if cfg.recipe == "limited-data" and cfg.finetune_epochs > 0:
        from .recovery import expansion_for

        expansion_for(bundle, cfg.expansion, label_task)  # a bad --expansion fails before any scoring
    device = resolve_device(cfg.device)
    seed_everything(cfg.seed)
    teacher = ckpt.model.eval()
    model = copy.deepcopy(teacher).cpu().eval()
    for p in model.parameters():  # tracing the dependency graph needs autograd
        p.requires_grad_(True)
    return _Run(cfg, ckpt, bundle, device, teacher, model, output, progress, target, label_task)


def _check_clip(ckpt: Checkpoint, cfg: PruneConfig) -> None:
    """Clip checkpoints (TSN/TSM, :mod:`edgekit.compress.temporal`): the offline model prunes, its online
    form follows; the limited-data recipe's expanded set is made of image edits (one line each)."""
    from .temporal import check_prunable_arch

    check_prunable_arch(ckpt.arch)
    if cfg.recipe == "limited-data" and cfg.finetune_epochs > 0:
        raise EdgekitError("the limited-data recipe expands single images (patch shuffles, cutout, rotation); "
                           "recover a clip model with --recipe finetune")
    if cfg.target.strip().lower().startswith("latency"):
        raise EdgekitError("a latency target measures an exported image model; prune a clip model to macs= or "
                           "params= and measure its streaming export with edgekit bench")


#: The header of a score cache file (``format``, ``version``, ``parent``: the scored checkpoint's sha256).
SCORES_FORMAT, SCORES_VERSION = "edgekit.scores", 1


def _read_cache(path: Path) -> dict[str, Any] | None:
    """The score cache at ``path`` (header, key, scores), or None when the file is not one."""
    if not path.is_file() or is_edgekit_checkpoint(path):  # a checkpoint is never unpickled as scores
        return None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # not a torch file at all
        return None
    if not isinstance(obj, dict):
        return None
    if obj.get("format") == SCORES_FORMAT:
        return obj
    if set(obj) == {"key", "scores"} and isinstance(obj["key"], dict):  # written before the header existed
        return {"format": SCORES_FORMAT, "version": 0, "parent": obj["key"].get("parent"), **obj}
    return None


#: Only a score cache is ever overwritten by one.
SCORES_KIND = Kind("an edgekit score cache", lambda p: _read_cache(p) is not None)


def _check_cache_parent(path: Path, parent: Checkpoint, force: bool) -> None:
    """A named score file holding another checkpoint's scores is replaced only with ``force``."""
    obj = _read_cache(path)
    if obj is not None and obj.get("parent") != parent.sha256 and not force:
        raise EdgekitError(f"{path} holds the scores of another checkpoint (sha256 {str(obj.get('parent'))[:12]}); "
                           "pass --force to replace them")


def _cache_path(cfg: PruneConfig, output: Path) -> Path | None:
    if cfg.scores_path is not None:
        return Path(cfg.scores_path)
    return output.with_name(output.name + ".scores.pt") if cfg.score_cache else None


def _score(run: _Run, cache: Path | None) -> tuple[Any, dict[int, torch.Tensor]]:
    """The unit graph and every unit's importance on the proxy set (from the cache when it matches)."""
    from .units import UnitGraph

    cfg = run.cfg
    x, y, proxy_idx = proxy_set(run.bundle, run.ckpt.eval_transform, cfg.proxy_size, cfg.data_seed)
    graph = UnitGraph(run.model, x[:1])
    run.metrics.update(macs_before=count_macs(run.model, run.input_shape), params_before=count_params(run.model))
    key = {"parent": run.ckpt.sha256, "method": cfg.method, "proxy": proxy_idx, "data": run.bundle.spec,
           "fraction": cfg.train_fraction, "split": run.bundle.record,
           "subset_seed": cfg.data_seed if cfg.train_fraction < 1 else None,
           # seeded scores: random, and Fisher's Monte-Carlo draws
           "seed": cfg.seed if cfg.criterion.seeded else None,
           "scoring": cfg.criterion.option("scoring"),
           "precision": _exact_precision(run)}
    t0 = time.perf_counter()
    scores = _cached_scores(cache, key) if cache is not None else None
    run.metrics["scores_cached"] = scores is not None
    if scores is None:
        scores = run.score(graph, x, y)
        if cache is not None:
            with atomic_path(cache) as tmp:
                torch.save({"format": SCORES_FORMAT, "version": SCORES_VERSION, "parent": key["parent"], "key": key,
                            "scores": {str(k): v for k, v in scores.items()}}, tmp)
    run.metrics["score_seconds"] = time.perf_counter() - t0
    return graph, scores


def _exact_precision(run: _Run) -> str | None:
    """The arithmetic exact CURL scoring runs in on this run's device (None: no exact scoring)."""
    return run.cfg.criterion.precision_on(run.device)


def _prune_steps(run: _Run, cache: Path | None) -> list[dict[str, Any]]:
    """Score, select and remove units, in ``cfg.steps`` steps; returns the per-group summary.

    Step ``k`` of ``K`` prunes to ``target ** (k / K)`` of the original MACs (or parameters),
    so every step removes the same fraction of what is left; before each later step BN is
    re-estimated (and ``step_epochs`` of fine-tuning run), the unit graph is rebuilt and the
    remaining units are re-scored on the thinned network. The first step's scores (those of
    the unpruned network) are the ones cached. ``min_keep`` holds against the original widths."""
    from .units import UnitGraph

    cfg, tgt = run.cfg, run.target
    if cfg.steps > 1 and tgt.kind == "latency":
        raise EdgekitError("--steps > 1 needs a macs= or params= target (a latency target is met in one measured step)")
    graph, scores = _score(run, cache)
    original = {g.name: g.size for g in graph.groups}
    floors = {g.name: g.size - g.max_removable(cfg.min_keep, run.round_to) for g in graph.groups}
    steps: list[dict[str, Any]] = []
    for k in range(1, cfg.steps + 1):
        if k > 1:
            if cfg.step_epochs:
                _finetune(run, cfg.step_epochs)
            x, y, _ = proxy_set(run.bundle, run.ckpt.eval_transform, cfg.proxy_size, cfg.data_seed)
            graph = UnitGraph(run.model, x[:1])
            t0 = time.perf_counter()
            scores = run.score(graph, x, y)
            run.metrics["score_seconds"] += time.perf_counter() - t0
        sel = _select(run, graph, scores, step=(k, cfg.steps), floors=floors if cfg.steps > 1 else None)
        run.reestimate_bn()
        if cfg.steps > 1:
            steps.append({"step": k, "macs_ratio": run.metrics["macs"] / run.metrics["macs_before"],
                          "params_ratio": run.metrics["params"] / run.metrics["params_before"]})
    if steps:
        run.metrics["steps"] = steps
    kept = {g.name: g.size - len(sel.removal.get(g.index, [])) for g in graph.groups}
    return [{"group": name, "units": size, "kept": kept.get(name, size)} for name, size in original.items()]


def _cached_scores(path: Path, key: dict[str, Any]) -> dict[int, torch.Tensor] | None:
    obj = _read_cache(path)
    if obj is None or obj.get("key") != key:
        return None
    return {int(k): v for k, v in obj["scores"].items()}


def _select(run: _Run, graph: Any, scores: dict[int, torch.Tensor], *, step: tuple[int, int] = (1, 1),
            floors: dict[str, int] | None = None) -> Any:
    """Choose the units to remove for step ``k`` of ``K`` (measured for latency targets) and remove them."""
    from .selection import select
    from .temporal import keep_shift_folds

    cfg, tgt = run.cfg, run.target
    k, n_steps = step
    if tgt.kind == "latency":
        from .latency import select_for_latency

        sel, lat = select_for_latency(graph, scores, run.ckpt, tgt, rank=run.rank, min_keep=cfg.min_keep,
                                      round_to=run.round_to, data=run.bundle.spec, workdir=run.output.parent)
        run.metrics["latency_search"] = lat
    else:
        before = run.metrics["macs_before"] if tgt.kind == "macs" else run.metrics["params_before"]
        now = graph.macs({}) if tgt.kind == "macs" else graph.params({})
        ratio = min(1.0, tgt.value ** (k / n_steps) * before / now)
        try:
            sel = select(graph, scores, kind=tgt.kind, ratio=ratio, rank=run.rank, min_keep=cfg.min_keep,
                         round_to=run.round_to, floors=floors)
        except EdgekitError as exc:
            if n_steps == 1:
                raise
            raise EdgekitError(f"target {tgt} is unreachable with min_keep={cfg.min_keep:g}: in step {k} of "
                               f"{n_steps}, {exc}") from None
    sel = keep_shift_folds(run.model, graph, scores, sel)  # a TSM's shifted channels stay shifted, 1/8 of each width
    graph.prune(sel.removal)
    macs, params = count_macs(run.model, run.input_shape), count_params(run.model)
    if tgt.kind in ("macs", "params") and k == n_steps:
        got = macs / run.metrics["macs_before"] if tgt.kind == "macs" else params / run.metrics["params_before"]
        if off_target(got, tgt.value):
            log.warning("pruned to %s=%.4f, more than %g%% from the target %s", tgt.kind, got,
                        TARGET_TOLERANCE * 100, tgt)
    removed = run.metrics.get("units_removed", 0) if k > 1 else 0
    run.metrics.update(macs=macs, params=params, units_removed=removed + sel.units_removed)
    return sel


def _recover(run: _Run) -> None:
    """The score (top-1, or MAE) unpruned and right after pruning, then recovery (ending with precise
    BN) and the final validation metrics (``val_*``)."""
    cfg, key = run.cfg, run.score_key
    run.metrics[f"{key}_unpruned"] = run.eval(run.teacher)[key]
    pruned = run.eval(run.model)
    run.metrics[f"{key}_pruned_bn"] = pruned[key]
    t0 = time.perf_counter()
    history = _finetune(run, cfg.finetune_epochs, cfg.recipe) if cfg.finetune_epochs > 0 else []
    run.metrics["recovery_seconds"] = time.perf_counter() - t0
    run.model = run.model.cpu().eval()
    final = run.eval(run.model) if cfg.finetune_epochs > 0 else pruned
    if run.label_task is None:
        run.metrics["val_top1"] = final["top1"]
    else:
        run.metrics.update({f"val_{k}": v for k, v in final.items() if k != "n"})
    if history and "precise_bn" in history[-1]:
        run.metrics["precise_bn"] = history[-1]["precise_bn"]
    run.model = run.model.cpu().eval()


def _finetune(run: _Run, epochs: int, recipe: str = "finetune") -> list[dict[str, Any]]:
    """Train the pruned model ``epochs`` epochs with ``recipe`` (ending with precise BN); the history."""
    from . import recovery

    cfg = run.cfg
    val_loader = run.bundle.loader("val", run.ckpt.eval_transform, 256)
    common = dict(lr=cfg.lr, seed=cfg.seed, device=run.device, progress=run.progress, val_loader=val_loader,
                  precise_bn=cfg.precise_bn, label_task=run.label_task)
    spec = run.ckpt.input_spec
    try:
        if recipe == "finetune":
            return recovery.finetune(run.model, run.bundle, spec, epochs=epochs, batch_size=cfg.batch_size, **common)
        out = recovery.limited_data(run.model, run.teacher, run.bundle, spec, epochs=epochs,
                                    refine_epochs=cfg.refine_epochs, batch_size=min(cfg.batch_size, 32),
                                    expansion=cfg.expansion, label_lr=cfg.label_lr, mixup=cfg.mixup,
                                    refine_lr=cfg.refine_lr, **common)
        run.metrics["limited_data"] = {k: out[k] for k in ("expansion", "label_lr", "mixup", "refine_lr",
                                                           "refine_epochs", "expanded_images")}
        return out["stage3"] or out["stage2"]
    finally:
        run.model = run.model.cpu().eval()


def _write(run: _Run, groups: list[dict[str, Any]], force: bool) -> Checkpoint:
    """The pruned checkpoint: channel plan, metrics, provenance (and the measured speed-up if asked)."""
    cfg, metrics = run.cfg, dict(run.metrics)
    metrics.update(macs_ratio=metrics["macs"] / metrics["macs_before"],
                   params_ratio=metrics["params"] / metrics["params_before"])
    child = run.ckpt.derive(run.model, stage="prune", metrics=metrics)
    child.provenance.update({
        "method": cfg.method, "rank": cfg.criterion.option("rank"), "target": str(run.target),
        "scoring": cfg.criterion.option("scoring"), "exact_precision": _exact_precision(run),
        "steps": cfg.steps, "step_epochs": cfg.step_epochs,
        "min_keep": cfg.min_keep, "round_to": run.round_to, "proxy_size": cfg.proxy_size,
        "recipe": cfg.recipe if cfg.finetune_epochs else None, "finetune_epochs": cfg.finetune_epochs,
        "train_fraction": cfg.train_fraction, "seed": cfg.seed, "precise_bn": cfg.precise_bn,
        "data": run.bundle.spec, "groups": groups,
    })
    if cfg.measure_latency:
        from .latency import speedup

        child.metrics["latency"] = speedup(run.ckpt, child, runtimes=cfg.latency_runtimes, data=run.bundle.spec,
                                           workdir=run.output.parent)
    child.save(run.output, force=force)
    return child
