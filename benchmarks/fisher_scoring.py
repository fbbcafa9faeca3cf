"""CURL scoring, exact KL against its Fisher estimate: rank agreement, accuracy after pruning, wall time.

For each architecture (a teacher trained on the built-in digits, or one given with
``--teacher ARCH=PATH``): score every prunable unit on the same proxy set with
``scoring="exact"`` and ``scoring="fisher"``, report the Spearman rank correlation of the
unit scores (all units pooled, and the median over groups), the ratio of the two scores'
medians, then prune a copy to 50 % MACs with each set of scores (kl-per-mac, BN
re-estimated, no recovery) and report the held-out top-1 of both. ``--time-only ARCH@SIZE``
times scoring of an untrained network (``resnet50@224``: the GPU figure the issue asks for).
``--steps K`` (repeatable) adds, for every trained teacher, ``edgekit prune`` itself at 50 % MACs with
no recovery: one-step exact, and Fisher in 1 and K re-scored steps (its own BN re-estimation and
timing, the whole prune call), the way a user runs it.

    python benchmarks/fisher_scoring.py --device cuda --out fisher_gpu.json \\
        --train resnet18_small@32 --train mobilenet_v2@96 --time-only resnet50@224

Rows are cached in ``--out`` (a rerun skips finished rows).
"""
from __future__ import annotations

import argparse
import copy
import json
import platform
import time
from pathlib import Path
from typing import Any

import torch


def _load(out: Path) -> dict[str, Any]:
    return json.loads(out.read_text()) if out.is_file() else {"rows": {}}


def _save(out: Path, obj: dict[str, Any]) -> None:
    out.write_text(json.dumps(obj, indent=1))


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize()


def _teacher(name: str, work: Path, device: str, epochs: int) -> Path:
    """``ARCH[_small]@SIZE`` trained on digits (``_small``: the small-input stem)."""
    from edgekit.training.trainer import train

    arch_part, size = name.split("@")
    small = arch_part.endswith("_small")
    arch = arch_part.removesuffix("_small")
    path = work / f"teacher_{arch_part}_{size}.pt"
    if not path.is_file():
        train(arch, "digits", path, epochs=epochs, input_size=int(size), small_input=small if arch != "compact_cnn"
              else None, device=device, progress=False, seed=0)
    return path


def score_and_prune(ck: Any, bundle: Any, x: torch.Tensor, y: torch.Tensor, scoring: str, dev: torch.device,
                    ratio: float, row: dict[str, Any], name: str, exact_precision: str = "fp32") -> dict:
    """Score a copy of ``ck``'s model with ``scoring`` (exact scoring in ``exact_precision``; float32,
    the paper's arithmetic, unless asked), prune it to ``ratio`` of the MACs with those scores
    (kl-per-mac, BN re-estimated, no recovery); ``row`` gains ``NAME_seconds``,
    ``NAME_top1_pruned_bn`` and ``NAME_macs_ratio``. Returns the scores."""
    from edgekit.compress.prune import score_units
    from edgekit.compress.selection import select
    from edgekit.compress.units import UnitGraph
    from edgekit.registry import count_macs
    from edgekit.training.metrics import evaluate_model
    from edgekit.training.precise_bn import bn_loader, precise_bn

    model = copy.deepcopy(ck.model).cpu().eval()
    for p in model.parameters():
        p.requires_grad_(True)
    graph = UnitGraph(model, x[:1])
    _sync(dev)
    t0 = time.perf_counter()
    s = score_units("curl", model, graph, x, y, progress=False, scoring=scoring, device=dev,
                    exact_precision=exact_precision)
    _sync(dev)
    row[f"{name}_seconds"] = time.perf_counter() - t0
    sel = select(graph, s, kind="macs", ratio=ratio, rank="kl-per-mac", min_keep=0.3)
    graph.prune(sel.removal)
    model.to(dev)
    precise_bn(model, bn_loader(bundle, ck.input_spec, 64), 8, device=dev)
    row[f"{name}_top1_pruned_bn"] = evaluate_model(model, bundle.loader("val", ck.eval_transform, 256), "classify",
                                                   dev)["top1"]
    row[f"{name}_macs_ratio"] = count_macs(model.cpu(), (1, *ck.input_spec["shape"])) / row["macs"]
    row["units"] = sum(v.numel() for v in s.values())
    return s


def rank_agreement(ref: dict[int, torch.Tensor], other: dict[int, torch.Tensor]) -> dict[str, float]:
    """Spearman rank correlation of two unit scorings (all units pooled, median over groups) and the
    median ratio other / ref."""
    from scipy.stats import spearmanr

    a = torch.cat([ref[k] for k in ref])
    b = torch.cat([other[k] for k in ref])
    per = [float(spearmanr(ref[k], other[k])[0]) for k in ref if ref[k].numel() > 2]
    return {"spearman_all": float(spearmanr(a, b)[0]), "spearman_group_median": float(torch.tensor(per).median()),
            "median_ratio": float((b / a.clamp_min(1e-12)).median())}


def open_checkpoint(ckpt_path: Path, proxy: int, dev: torch.device) -> tuple[Any, Any, torch.Tensor, torch.Tensor,
                                                                             dict[str, Any]]:
    """The checkpoint, its data split, its proxy set and a row with its unpruned top-1 and MACs."""
    from edgekit.checkpoint import load_checkpoint
    from edgekit.compress.prune import proxy_set
    from edgekit.registry import count_macs
    from edgekit.training.metrics import evaluate_model

    ck = load_checkpoint(ckpt_path)
    bundle = ck.load_data()
    x, y, _ = proxy_set(bundle, ck.eval_transform, proxy, 0)
    row: dict[str, Any] = {"arch": ck.arch, "input": ck.input_spec["shape"], "proxy": proxy, "device": str(dev),
                           "macs": count_macs(ck.model, (1, *ck.input_spec["shape"]))}
    loader = bundle.loader("val", ck.eval_transform, 256)
    row["top1_unpruned"] = evaluate_model(ck.model.to(dev), loader, "classify", dev)["top1"]
    return ck, bundle, x, y, row


def compare(ckpt_path: Path, proxy: int, device: str, ratio: float = 0.5) -> dict[str, Any]:
    """Exact vs fisher scores of one checkpoint, and top-1 after pruning with each."""
    dev = torch.device(device)
    ck, bundle, x, y, row = open_checkpoint(ckpt_path, proxy, dev)
    ex, fi = (score_and_prune(ck, bundle, x, y, scoring, dev, ratio, row, scoring) for scoring in ("exact", "fisher"))
    agree = rank_agreement(ex, fi)
    row.update(spearman_all=agree["spearman_all"], spearman_group_median=agree["spearman_group_median"],
               median_ratio_fisher_over_exact=agree["median_ratio"])
    row["speedup"] = row["exact_seconds"] / row["fisher_seconds"]
    return row


def time_only(name: str, proxy: int, device: str, exact_limit: float) -> dict[str, Any]:
    """Scoring wall time of an untrained ``ARCH@SIZE`` (1000 classes) on random proxy images."""
    from edgekit.compress import curl
    from edgekit.compress.prune import activation_budget
    from edgekit.compress.fisher import fisher_scores
    from edgekit.compress.units import UnitGraph
    from edgekit.registry import create_model

    arch, size = name.split("@")
    dev = torch.device(device)
    torch.manual_seed(0)
    model = create_model(arch, num_classes=1000).eval()
    x = torch.randn(proxy, 3, int(size), int(size))
    graph = UnitGraph(model, x[:1])
    units = sum(g.size for g in graph.groups if g.prunable)
    row: dict[str, Any] = {"arch": arch, "input": int(size), "proxy": proxy, "units": units, "device": str(dev)}
    model.to(dev)
    _sync(dev)
    t0 = time.perf_counter()
    fisher_scores(model, graph, x, progress=False, device=dev)
    _sync(dev)
    row["fisher_seconds"] = time.perf_counter() - t0
    # exact: score groups in order until the limit, then extrapolate by units (recorded as such)
    done, t0 = 0, time.perf_counter()
    todo = [g for g in graph.groups if g.prunable]
    for g in todo:
        if time.perf_counter() - t0 > exact_limit:
            break
        keep = {h.index: h.protected for h in graph.groups}
        for h in graph.groups:
            if h is not g:
                h.protected = h.protected or "timed separately"
        curl.kl_scores(model, graph, x.to(dev), progress=False, chunk=proxy, budget=activation_budget(dev))
        for h in graph.groups:
            h.protected = keep[h.index]
        done += g.size
        _sync(dev)
    row["exact_seconds_measured"] = time.perf_counter() - t0
    row["exact_units_measured"] = done
    row["exact_seconds"] = row["exact_seconds_measured"] * units / max(done, 1)
    row["exact_extrapolated"] = done < units
    return row


def by_steps(ckpt_path: Path, proxy: int, device: str, steps: list[int], work: Path) -> dict[str, Any]:
    """``edgekit prune`` to 50 % MACs without recovery: exact one-step and Fisher in 1 and each K steps."""
    from edgekit.compress.prune import prune

    row: dict[str, Any] = {}
    for scoring, k in [("exact", 1)] + [("fisher", k) for k in sorted({1, *steps})]:
        t0 = time.perf_counter()
        ck = prune(ckpt_path, None, work / f"{ckpt_path.stem}_{scoring}{k}.pt", target="macs=0.5", scoring=scoring,
                   steps=k, finetune_epochs=0, proxy_size=proxy, device=device, seed=0, force=True, progress=False,
                   exact_precision="fp32")  # the recorded reference: the paper's float32 exact KL
        row[f"{scoring}{k}"] = {"top1_pruned_bn": ck.metrics["top1_pruned_bn"], "top1_unpruned": ck.metrics["top1_unpruned"],
                                "macs_ratio": ck.metrics["macs_ratio"], "seconds": time.perf_counter() - t0}
        print(ckpt_path.stem, f"{scoring}{k}", json.dumps(row[f"{scoring}{k}"]), flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--work", type=Path, default=Path("fisher_work"))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--proxy", type=int, default=256)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--train", action="append", default=[], help="ARCH[_small]@SIZE teacher trained on digits")
    ap.add_argument("--teacher", action="append", default=[], help="NAME=CHECKPOINT")
    ap.add_argument("--time-only", action="append", default=[], help="ARCH@SIZE, untrained, timing only")
    ap.add_argument("--exact-limit", type=float, default=120.0, help="seconds of exact scoring before extrapolating")
    ap.add_argument("--steps", type=int, action="append", default=[], help="also prune with Fisher in K steps")
    args = ap.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    args.work.mkdir(parents=True, exist_ok=True)
    obj = _load(args.out)
    obj["machine"] = {"platform": platform.platform(), "torch": torch.__version__, "threads": torch.get_num_threads(),
                      "device": args.device, "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None}
    todo = [(f"{n}", lambda n=n: compare(_teacher(n, args.work, args.device, args.epochs), args.proxy, args.device))
            for n in args.train]
    todo += [(n, lambda p=p: compare(Path(p), args.proxy, args.device)) for n, p in (t.split("=", 1) for t in args.teacher)]
    todo += [(f"time:{n}", lambda n=n: time_only(n, args.proxy, args.device, args.exact_limit)) for n in args.time_only]
    if args.steps:
        todo += [(f"steps:{n}", lambda n=n: by_steps(_teacher(n, args.work, args.device, args.epochs), args.proxy,
                                                     args.device, args.steps, args.work)) for n in args.train]
    for key, fn in todo:
        key = f"{key}|{args.device}|{args.proxy}"
        if key in obj["rows"]:
            continue
        t0 = time.perf_counter()
        row = fn()
        row["wall_seconds"] = time.perf_counter() - t0
        obj["rows"][key] = row
        _save(args.out, obj)
        print(key, json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
