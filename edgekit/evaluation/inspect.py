"""Readable summaries: ``edgekit info`` (one checkpoint) and ``edgekit zoo`` (the registry)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..channel_plan import describe_plan
from ..checkpoint import load_checkpoint
from ..data.transforms import is_tabular
from ..models.tabular import takes_features
from ..pretrained import describe
from ..training.label_distribution import LabelTask
from ..registry import build_for_shape, count_macs, count_params, get_entry, list_models


def checkpoint_summary(path: str | Path) -> dict[str, Any]:
    """Everything ``edgekit info`` shows, as plain data (also printed with --json)."""
    ckpt = load_checkpoint(path)
    model = ckpt.model
    shape = ckpt.input_spec.get("shape")
    macs = count_macs(model, (1, *shape)) if shape else None
    return {"path": str(path), "sha256": ckpt.sha256, "arch": ckpt.arch, "arch_kwargs": ckpt.arch_kwargs,
            "task": ckpt.task, "params": count_params(model), "macs": macs,
            "pruned_layers": describe_plan(ckpt.channel_plan), "input_spec": ckpt.input_spec,
            "labels": ckpt.labels, "label_task": (ckpt.extra or {}).get(LabelTask.KEY), "data": ckpt.data_record,
            "metrics": ckpt.metrics, "provenance": ckpt.provenance,
            "semi": _plain_settings((ckpt.extra or {}).get("semi")), "ssl": _plain_settings((ckpt.extra or {}).get("ssl"))}


def _plain_settings(record: Any) -> dict[str, Any] | None:
    """A training regime's record without its tensors (pseudo-labels, heads): what info shows of it."""
    if not isinstance(record, dict):
        return None
    return {k: v for k, v in record.items() if k not in ("pseudo_labels", "heads")}


def describe_regime(name: str, record: dict[str, Any]) -> str:
    """One line for a semi-supervised or pretraining record."""
    return f"{name:<12} " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items())


def describe_data(record: dict[str, Any]) -> str:
    """One line for a data record: the spec, how it was split, and the labelled share of its
    training split (``edgekit train --labeled-fraction``)."""
    if not record.get("spec"):
        return "unknown (pass --data to the stages that need it)"
    split = ("its own train/val split" if record.get("folders") else
             f"validation {record['val']:g}, split seed {record.get('seed')}" if record.get("val") is not None else
             f"split seed {record.get('seed')}")
    fraction = record.get("labeled_fraction")
    labels = ("labels: all of the training split" if fraction is None else
              f"labels: {fraction * 100:.4g}% of the training split (stratified, seed {record.get('labeled_seed')})")
    return f"{record['spec']} ({split}); {labels}"


def format_summary(s: dict[str, Any]) -> str:
    """Human-readable multi-line rendering of :func:`checkpoint_summary`."""
    spec = s["input_spec"]
    prov = s["provenance"]
    labels = s["labels"]
    # a tabular net standardises its input itself: its kwargs repeat the input spec's mean and std
    kwargs = {k: v for k, v in s["arch_kwargs"].items() if not (k in ("mean", "std") and v == spec.get(k))}
    same = [k for k in s["arch_kwargs"] if k not in kwargs]
    if is_tabular(spec):
        features = spec.get("features") or []
        shown = ", ".join(features[:8]) + (f" ... ({len(features)})" if len(features) > 8 else "")
        input_line = (f"input        table {spec.get('shape')} {spec.get('dtype', '')} features: {shown}; "
                      f"mean={spec.get('mean')} std={spec.get('std')}")
    else:
        input_line = (f"input        {spec.get('layout', '?')} {spec.get('shape')} {spec.get('dtype', '')} "
                      f"mean={spec.get('mean')} std={spec.get('std')} resize={spec.get('resize')} "
                      f"crop={spec.get('crop')}")
    lines = [
        f"checkpoint   {s['path']}",
        f"sha256       {s['sha256'][:16]}...",
        f"architecture {s['arch']} {kwargs}" + (f" (and {', '.join(same)}: the input's, below)" if same else ""),
        f"task         {s['task']}",
        f"params       {s['params'] / 1e6:.3f} M",
        f"MACs         {s['macs'] / 1e6:.2f} M at {spec.get('shape')}" if s["macs"] is not None else "MACs         -",
        input_line,
    ]
    task = s.get("label_task")
    if task:
        sigma = "per-image (the data's)" if task.get("sigma") is None else f"{task['sigma']:g}"
        lines.append(f"label set    {task['label_range']} (loss {task['loss']}, lambda {task['lam']:g}, sigma {sigma}, "
                     f"flip-averaged evaluation {'on' if task.get('flip_test') else 'off'})")
    else:
        lines.append(f"labels       {len(labels)}: {', '.join(labels[:12])}{' ...' if len(labels) > 12 else ''}")
    if "data" in s:
        lines.append(f"data         {describe_data(s['data'])}")
    if s["pruned_layers"]:
        lines.append(f"channel plan {len(s['pruned_layers'])} resized layer(s):")
        lines += [f"  {row}" for row in s["pruned_layers"][:20]]
        if len(s["pruned_layers"]) > 20:
            lines.append(f"  ... {len(s['pruned_layers']) - 20} more")
    if s["metrics"]:
        lines.append("metrics      " + ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in s["metrics"].items()))
    if prov.get("weights"):
        lines.append(f"weights      {describe(prov['weights'])}")
    for key in ("semi", "ssl"):
        if s.get(key):
            lines.append(describe_regime(key, s[key]))
    lines.append(f"lineage      stage={prov.get('stage', '?')} parent={(prov.get('parent') or '-')[:16]} "
                 f"created={prov.get('created', '?')}")
    if prov.get("command"):
        lines.append(f"command      {prov['command']}")
    if prov.get("versions"):
        lines.append("versions     " + ", ".join(f"{k} {v}" for k, v in prov["versions"].items()))
    return "\n".join(lines)


#: what the zoo says of a net whose input width comes from its data (a tabular net's ``in_features``)
NEEDS_DATA = "in_features and the standardisation come from the table it trains on"


def zoo_rows(pattern: str = "", macs: bool = True) -> list[dict[str, Any]]:
    """One row per registry name: source, default input, params and MACs (built on the meta device).

    A tabular net (its factory takes ``in_features``) has no size of its own: its row has input
    ``"table"``, no params or MACs (the CLI says "needs data"), and ``note`` :data:`NEEDS_DATA`."""
    rows = []
    for name in list_models():
        if pattern and pattern not in name:
            continue
        entry = get_entry(name)
        row: dict[str, Any] = {"name": name, "source": entry.source, "input": entry.default_input,
                               "params": None, "macs": None}
        if takes_features(entry.factory):
            rows.append({**row, "input": "table", "note": NEEDS_DATA})
            continue
        try:
            model = build_for_shape(name)
            row["params"] = count_params(model)
            if macs:
                row["macs"] = count_macs(model, (1, 3, entry.default_input, entry.default_input))
        except Exception as exc:  # a model that cannot be built on meta still gets listed
            row["error"] = str(exc).splitlines()[0][:80]
        rows.append(row)
    return rows
