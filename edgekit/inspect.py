"""Readable summaries: ``edgekit info`` (one checkpoint) and ``edgekit zoo`` (the registry)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .channel_plan import describe_plan
from .checkpoint import load_checkpoint
from .training.label_distribution import LabelTask
from .registry import build_for_shape, count_macs, count_params, get_entry, list_models


def checkpoint_summary(path: str | Path) -> dict[str, Any]:
    """Everything ``edgekit info`` shows, as plain data (also printed with --json)."""
    ckpt = load_checkpoint(path)
    model = ckpt.model
    shape = ckpt.input_spec.get("shape")
    macs = count_macs(model, (1, *shape)) if shape else None
    return {"path": str(path), "sha256": ckpt.sha256, "arch": ckpt.arch, "arch_kwargs": ckpt.arch_kwargs,
            "task": ckpt.task, "params": count_params(model), "macs": macs,
            "pruned_layers": describe_plan(ckpt.channel_plan), "input_spec": ckpt.input_spec,
            "labels": ckpt.labels, "label_task": (ckpt.extra or {}).get(LabelTask.KEY),
            "metrics": ckpt.metrics, "provenance": ckpt.provenance}


def format_summary(s: dict[str, Any]) -> str:
    """Human-readable multi-line rendering of :func:`checkpoint_summary`."""
    spec = s["input_spec"]
    prov = s["provenance"]
    labels = s["labels"]
    lines = [
        f"checkpoint   {s['path']}",
        f"sha256       {s['sha256'][:16]}...",
        f"architecture {s['arch']} {s['arch_kwargs']}",
        f"task         {s['task']}",
        f"params       {s['params'] / 1e6:.3f} M",
        f"MACs         {s['macs'] / 1e6:.2f} M at {spec.get('shape')}" if s["macs"] is not None else "MACs         -",
        f"input        {spec.get('layout', '?')} {spec.get('shape')} {spec.get('dtype', '')} "
        f"mean={spec.get('mean')} std={spec.get('std')} resize={spec.get('resize')} crop={spec.get('crop')}",
    ]
    task = s.get("label_task")
    if task:
        sigma = "per-image (the data's)" if task.get("sigma") is None else f"{task['sigma']:g}"
        lines.append(f"label set    {task['label_range']} (loss {task['loss']}, lambda {task['lam']:g}, sigma {sigma}, "
                     f"flip-averaged evaluation {'on' if task.get('flip_test') else 'off'})")
    else:
        lines.append(f"labels       {len(labels)}: {', '.join(labels[:12])}{' ...' if len(labels) > 12 else ''}")
    if s["pruned_layers"]:
        lines.append(f"channel plan {len(s['pruned_layers'])} resized layer(s):")
        lines += [f"  {row}" for row in s["pruned_layers"][:20]]
        if len(s["pruned_layers"]) > 20:
            lines.append(f"  ... {len(s['pruned_layers']) - 20} more")
    if s["metrics"]:
        lines.append("metrics      " + ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in s["metrics"].items()))
    lines.append(f"lineage      stage={prov.get('stage', '?')} parent={(prov.get('parent') or '-')[:16]} "
                 f"created={prov.get('created', '?')}")
    if prov.get("command"):
        lines.append(f"command      {prov['command']}")
    if prov.get("versions"):
        lines.append("versions     " + ", ".join(f"{k} {v}" for k, v in prov["versions"].items()))
    return "\n".join(lines)


def zoo_rows(pattern: str = "", macs: bool = True) -> list[dict[str, Any]]:
    """One row per registry name: source, default input, params and MACs (built on the meta device)."""
    rows = []
    for name in list_models():
        if pattern and pattern not in name:
            continue
        entry = get_entry(name)
        row: dict[str, Any] = {"name": name, "source": entry.source, "input": entry.default_input,
                               "params": None, "macs": None}
        try:
            model = build_for_shape(name)
            row["params"] = count_params(model)
            if macs:
                row["macs"] = count_macs(model, (1, 3, entry.default_input, entry.default_input))
        except Exception as exc:  # a model that cannot be built on meta still gets listed
            row["error"] = str(exc).splitlines()[0][:80]
        rows.append(row)
    return rows
