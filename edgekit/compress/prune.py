"""``edgekit prune``: CURL structured pruning of a checkpoint to a MACs, params or latency target.

Pipeline (methods.md 1, findings.md 1-4):

1. units: Torch-Pruning dependency groups of the model (:mod:`edgekit.compress.units`);
2. importance: CURL's KL(masked || original) on a proxy set of ``proxy_size`` training
   images under the eval transform (:mod:`edgekit.compress.curl`), or a Torch-Pruning
   baseline (``l1``, ``l2``, ``bn``, ``taylor``, ``random``) on the same units;
3. selection: global one-shot ranking (``kl-per-mac`` by default, chosen by the
   benchmark in ``benchmarks/prune_digits.md``; ``kl`` as in the paper) under a hard
   minimum keep ratio, the number of removed units found to meet the target;
4. BatchNorm re-estimation, then recovery (``finetune`` or ``limited-data``) with the
   unpruned checkpoint as teacher;
5. the pruned checkpoint (channel plan + provenance + metrics) is written atomically.

Scores are cached next to the output (``OUTPUT.scores.pt``, keyed by the parent's hash,
method and proxy set), so an interrupted or repeated prune does not score again.
"""
from __future__ import annotations

import copy
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..checkpoint import Checkpoint, load_checkpoint
from ..data import DataBundle
from ..errors import EdgekitError
from ..fileio import atomic_path, check_writable
from ..registry import count_macs, count_params
from ..training.metrics import evaluate_model
from ..training.trainer import resolve_device, seed_everything

log = logging.getLogger("edgekit.prune")

METHODS = ("curl", "l1", "l2", "bn", "taylor", "random")
RECIPES = ("finetune", "limited-data")


def proxy_set(bundle: DataBundle, transform: Any, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """CURL's proxy set: the training list shuffled once (seeded), first ``size`` images, eval transform."""
    n = len(bundle.train)
    if size < 1:
        raise EdgekitError(f"proxy_size must be positive, got {size}")
    if n < size:
        raise EdgekitError(f"the training split has {n} images, fewer than the proxy set of {size}; "
                           f"lower --proxy-size")
    idx = np.random.default_rng(seed).permutation(n)[:size].tolist()
    items = [bundle.train[i] for i in idx]
    x = torch.stack([transform(img) for img, _ in items])
    y = torch.as_tensor([int(t) for _, t in items])
    return x, y, idx


def score_units(method: str, model: torch.nn.Module, graph: Any, x: torch.Tensor, y: torch.Tensor, *,
                seed: int = 0, progress: bool = True) -> dict[int, torch.Tensor]:
    """Importance of every prunable unit under ``method`` (lower = removed first)."""
    if method == "curl":
        from .curl import kl_scores

        return kl_scores(model, graph, x, progress=progress)
    from .baselines import tp_scores

    return tp_scores(method, model, graph, x, y, seed=seed)


def _cached_scores(path: Path, key: dict[str, Any]) -> dict[int, torch.Tensor] | None:
    if not path.is_file():
        return None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        return None
    if obj.get("key") != key:
        return None
    return {int(k): v for k, v in obj["scores"].items()}


def _eval(model: torch.nn.Module, bundle: DataBundle, transform: Any, device: torch.device) -> float:
    return evaluate_model(model, bundle.loader("val", transform, 256), "classify", device)["top1"]


def prune(checkpoint: str | Path | Checkpoint, data: str | DataBundle | None, output: str | Path, *,
          target: str = "macs=0.5", method: str = "curl", rank: str = "kl-per-mac", min_keep: float = 0.3,
          proxy_size: int = 256, round_to: int | None = None, finetune_epochs: int = 5,
          recipe: str = "finetune", train_fraction: float = 1.0, lr: float = 0.01, batch_size: int = 64,
          refine_epochs: int | None = None, seed: int = 0, proxy_seed: int | None = None, device: str = "auto",
          bn_images: int = 512, scores_path: str | Path | None = None, score_cache: bool = True,
          measure_latency: bool = False, latency_runtimes: tuple[str, ...] = ("onnxruntime", "litert"),
          force: bool = False,
          progress: bool = True) -> Checkpoint:
    """Prune ``checkpoint`` to ``target`` on ``data`` and write the result to ``output``; returns it.

    ``target``: ``macs=0.5`` / ``params=0.5`` (fraction of the original) or
    ``latency=5ms@litert`` (exported and measured with the bench runners). ``method``:
    curl | l1 | l2 | bn | taylor | random. ``rank`` (curl only): kl-per-mac | kl.
    ``recipe``: finetune | limited-data (mixup+KD from the unpruned model, then the
    expanded set with label refinement). ``train_fraction`` < 1 simulates limited data
    (the proxy set and recovery both draw from that fraction); ``proxy_seed`` fixes the
    data draw (the training subset and the proxy set) independently of ``seed``, which
    then varies selection ties, BN re-estimation and recovery. ``measure_latency`` exports the model before and
    after and records the measured speed-up. The checkpoint's metrics
    hold accuracy unpruned / right after pruning (BN re-estimated) / after recovery,
    MACs and parameters before and after, and the scoring and pruning wall times.
    """
    from .bn import reestimate_bn
    from .selection import RANKS, parse_target, select, summary
    from .units import UnitGraph

    output = Path(output)
    check_writable(output, force)
    if method not in METHODS:
        raise EdgekitError(f"unknown pruning method {method!r}; expected one of {', '.join(METHODS)}")
    if recipe not in RECIPES:
        raise EdgekitError(f"unknown recovery recipe {recipe!r}; expected one of {', '.join(RECIPES)}")
    if rank not in RANKS:
        raise EdgekitError(f"unknown ranking {rank!r}; expected one of {', '.join(RANKS)}")
    if round_to is not None and round_to < 1:
        raise EdgekitError(f"round_to must be a positive integer, got {round_to}")
    if finetune_epochs < 0:
        raise EdgekitError("finetune_epochs must be >= 0")
    tgt = parse_target(target)
    ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint)
    if ckpt.task != "classify":
        raise EdgekitError(f"prune supports classifiers (task 'classify'); this checkpoint is {ckpt.task!r}")
    # the train/val split of the checkpoint's own training run, whatever the pruning seed: a val
    # split drawn with another seed would hold images the unpruned model was trained on
    bundle = data if isinstance(data, DataBundle) else ckpt.load_data(data)
    if bundle.task != "classify" or len(bundle.labels) != ckpt.num_outputs:
        raise EdgekitError(f"data {bundle.spec!r} has {len(bundle.labels)} classes but the checkpoint "
                           f"has {ckpt.num_outputs} outputs")
    data_seed = seed if proxy_seed is None else proxy_seed
    bundle = bundle.subset_train(train_fraction, data_seed)
    dev = resolve_device(device)
    seed_everything(seed)
    transform = ckpt.eval_transform
    spec = ckpt.input_spec
    teacher = ckpt.model.eval()
    model = copy.deepcopy(teacher).cpu().eval()
    for p in model.parameters():  # tracing the dependency graph needs autograd
        p.requires_grad_(True)
    input_shape = (1, *spec["shape"])

    x, y, proxy_idx = proxy_set(bundle, transform, proxy_size, data_seed)
    t0 = time.perf_counter()
    graph = UnitGraph(model, x[:1])
    macs0, params0 = count_macs(model, input_shape), count_params(model)
    key = {"parent": ckpt.sha256, "method": method, "proxy": proxy_idx, "data": bundle.spec,
           "fraction": train_fraction, "split": bundle.record, "subset_seed": data_seed if train_fraction < 1 else None,
           "seed": seed if method == "random" else None}
    cache = Path(scores_path) if scores_path else output.with_name(output.name + ".scores.pt")
    scores = _cached_scores(cache, key) if score_cache else None
    t_score = time.perf_counter()
    cached = scores is not None
    if scores is None:
        scores = score_units(method, model, graph, x, y, seed=seed, progress=progress)
        if score_cache:
            with atomic_path(cache) as tmp:
                torch.save({"key": key, "scores": {str(k): v for k, v in scores.items()}}, tmp)
    score_seconds = time.perf_counter() - t_score

    metrics: dict[str, Any] = {}
    if tgt.kind == "latency":
        from .latency import select_for_latency

        sel, lat = select_for_latency(graph, scores, ckpt, tgt, rank=rank if method == "curl" else "raw",
                                      min_keep=min_keep, round_to=round_to, data=bundle.spec,
                                      workdir=output.parent)
        metrics["latency_search"] = lat
    else:
        sel = select(graph, scores, kind=tgt.kind, ratio=tgt.value, rank=rank if method == "curl" else "raw",
                     min_keep=min_keep, round_to=round_to)
    graph.prune(sel.removal)
    macs1, params1 = count_macs(model, input_shape), count_params(model)
    if tgt.kind in ("macs", "params"):
        got = (macs1 / macs0) if tgt.kind == "macs" else (params1 / params0)
        if abs(got - tgt.value) > 0.02 * tgt.value + 1e-9:
            log.warning("pruned to %s=%.4f, more than 2%% from the target %s", tgt.kind, got, tgt)
    bn_loader = bundle.loader("train", transform, 64, shuffle=True)
    reestimate_bn(model, bn_loader, max_images=bn_images)
    prune_seconds = time.perf_counter() - t0  # graph + scoring + selection + pruning + BN

    top1_unpruned = _eval(teacher, bundle, transform, dev)
    top1_pruned = _eval(model, bundle, transform, dev)
    t_rec = time.perf_counter()
    if finetune_epochs > 0:
        from . import recovery

        if recipe == "finetune":
            recovery.finetune(model, bundle, spec, epochs=finetune_epochs, lr=lr, batch_size=batch_size, seed=seed,
                              device=dev, progress=progress)
        else:
            recovery.limited_data(model, teacher, bundle, spec, epochs=finetune_epochs, refine_epochs=refine_epochs,
                                  lr=lr, batch_size=min(batch_size, 32), seed=seed, device=dev, progress=progress)
    recovery_seconds = time.perf_counter() - t_rec
    model = model.cpu().eval()
    top1 = _eval(model, bundle, transform, dev) if finetune_epochs > 0 else top1_pruned
    model = model.cpu().eval()
    metrics.update({
        "val_top1": top1, "top1_unpruned": top1_unpruned, "top1_pruned_bn": top1_pruned,
        "macs": macs1, "macs_before": macs0, "macs_ratio": macs1 / macs0,
        "params": params1, "params_before": params0, "params_ratio": params1 / params0,
        "units_removed": sel.units_removed, "score_seconds": score_seconds, "scores_cached": cached,
        "prune_seconds": prune_seconds, "recovery_seconds": recovery_seconds,
    })
    child = ckpt.derive(model, stage="prune", metrics=metrics)
    child.provenance.update({
        "method": method, "rank": rank if method == "curl" else None, "target": str(tgt), "min_keep": min_keep,
        "round_to": round_to, "proxy_size": proxy_size, "recipe": recipe if finetune_epochs else None,
        "finetune_epochs": finetune_epochs, "train_fraction": train_fraction, "seed": seed, "data": bundle.spec,
        "groups": summary(graph, sel),
    })
    if measure_latency:
        from .latency import speedup

        child.metrics["latency"] = speedup(ckpt, child, runtimes=latency_runtimes, data=bundle.spec,
                                           workdir=output.parent)
    child.save(output, force=force)
    return child
