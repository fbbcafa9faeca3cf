"""The checkpoint contract every stage reads and writes.

A checkpoint is one ``torch.save`` file holding only plain data and tensors, so it
loads with ``torch.load(weights_only=True)``: a file crafted to run code on load is
rejected, not executed. Reading one checks its zip CRCs and every field against one schema
(:mod:`edgekit.checkpoint_schema`), and its architecture must be a registered name: an import
path in it is refused unless the user trusts the file (:mod:`edgekit.trust`). It describes itself:

* ``arch``: registry name and keyword arguments, and the ``channel_plan`` of a
  pruned model, so the module is rebuilt from its definition (never unpickled);
* ``state_dict``, ``task`` (classify | regression | label_distribution | clip_classify
  | tabular), ``labels``, ``input_spec`` (see :mod:`edgekit.data.transforms`);
* ``data``: the spec, validation fraction and split seed its training used (and the labelled
  fraction of the training split with its seed, when training saw only part of the labels), inherited by
  every checkpoint derived from it (pruned, distilled), so that every stage opens the same
  held-apart split through :meth:`Checkpoint.load_data`;
* ``metrics`` and ``provenance`` (parent hash, the lineage's root, command, versions, time).
"""
from __future__ import annotations

import json
import platform
from collections import OrderedDict
import sys
import time
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import torch
from torch import nn

from . import __version__
from .channel_plan import apply_plan, extract_plan
from .checkpoint_schema import validate
from .errors import EdgekitError
from .fileio import Kind, atomic_path, check_writable, safe_torch_load, sha256_file
from .formats import is_edgekit_checkpoint
from .tasks import get_task

if TYPE_CHECKING:
    from .data import DataBundle

FORMAT = "edgekit.checkpoint"
VERSION = 1
#: Only a file of this kind is ever overwritten by a checkpoint (``--force`` or not).
KIND = Kind("an edgekit checkpoint", is_edgekit_checkpoint)


def versions() -> dict[str, str]:
    """Versions of the stack that produced an artifact (recorded in provenance)."""
    import torchvision

    return {"edgekit": __version__, "torch": str(torch.__version__), "torchvision": str(torchvision.__version__),
            "python": platform.python_version()}


@dataclass
class Checkpoint:
    """A loaded (or about to be saved) checkpoint. ``.model`` rebuilds the network lazily."""

    arch: str
    arch_kwargs: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    task: str = "classify"
    labels: list[str] = field(default_factory=list)
    input_spec: dict[str, Any] = field(default_factory=dict)
    channel_plan: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @cached_property
    def model(self) -> nn.Module:
        """The network rebuilt from its definition + channel plan, weights loaded, in eval mode."""
        from .registry import load_state

        model = build_model(self.arch, self.arch_kwargs, self.channel_plan)
        try:
            load_state(model, self.state_dict, strict=True)  # keeps state-dict versions (MNASNet needs them)
        except RuntimeError as exc:
            raise EdgekitError(f"checkpoint weights do not fit {self.arch}: {str(exc).splitlines()[0]}") from exc
        return model.eval()

    @property
    def eval_transform(self) -> Callable:
        """PIL image -> model input tensor, the exact preprocessing used in evaluation."""
        from .data.transforms import eval_transform

        return eval_transform(self.input_spec)

    @property
    def num_outputs(self) -> int:
        """The width of the model's output: classes, 1 for a regressor, K + 1 for a label-distribution
        head over K label values (the distribution, then its expectation), the feature width of an embedding."""
        own = get_task(self.task).output_width(self.extra)
        if own is not None:
            return own
        if self.arch_kwargs.get("label_range") is not None:
            from .models.dldl import LabelSet, head_width

            return head_width(str(self.arch_kwargs.get("head")), LabelSet.parse(self.arch_kwargs["label_range"]))
        return int(self.arch_kwargs.get("num_classes", len(self.labels)))

    @cached_property
    def sha256(self) -> str | None:
        return sha256_file(self.path) if self.path else None

    @property
    def data_record(self) -> dict[str, Any]:
        """The data this checkpoint was trained on: ``{"spec", "val", "seed"}``, with
        ``labeled_fraction`` and ``labeled_seed`` when it saw part of the labels ({} if unknown).

        Checkpoints written before the record existed are read from their provenance (the
        spec and the split seed their stage used), walking up to the trained ancestor."""
        if self.data.get("spec"):
            return dict(self.data)
        prov, seen = dict(self.provenance or {}), 0
        while seen < 8:
            if prov.get("data"):
                return {"spec": prov["data"], "val": None, "seed": int(prov.get("split_seed", prov.get("seed", 0)) or 0)}
            parent = prov.get("parent_path")
            if not parent or not Path(parent).is_file():
                break
            prov, seen = dict(load_checkpoint(parent).provenance or {}), seen + 1
        return {}

    def load_data(self, spec: str | None = None) -> "DataBundle":
        """This checkpoint's data, split exactly as its training split it.

        ``spec`` defaults to the recorded spec; a given spec is opened with the recorded
        validation fraction and split seed unless it names its own (``digits:seed=3``), and its
        training split is the recorded labelled fraction (``labeled_fraction``, ``labeled_seed``:
        ``edgekit train --labeled-fraction``) when there is one.
        One function for every stage (eval, prune, distill, export calibration and parity,
        bench accuracy), so none of them scores images the model was trained on."""
        from .data import load_recorded

        return load_recorded(self.data_record, spec)

    @property
    def lineage(self) -> dict[str, Any]:
        """Where this model comes from: its own hash, its parent's, and the lineage's root
        (the original, unpruned and undistilled model) with its name, for speed-ups."""
        prov = self.provenance or {}
        root = prov.get("root") or {}
        own_name = self.path.stem if self.path else self.arch
        return {"sha256": self.sha256, "name": own_name, "parent_sha256": prov.get("parent"),
                "root_sha256": root.get("sha256") or prov.get("parent") or self.sha256,
                "root_name": root.get("name") or (Path(prov["parent_path"]).stem if prov.get("parent_path")
                                                  else own_name)}

    def derive(self, model: nn.Module, *, stage: str, metrics: dict[str, Any] | None = None,
               **changes: Any) -> "Checkpoint":
        """A child checkpoint for ``model`` (pruned, distilled, fine-tuned): same contract,
        this checkpoint as parent in provenance. Widths are re-planned from ``model``."""
        ref = build_model(changes.get("arch", self.arch), changes.get("arch_kwargs", self.arch_kwargs))
        lineage = self.lineage
        changes.setdefault("data", self.data_record)
        child = replace(self, state_dict=_cpu_state(model), channel_plan=extract_plan(model, ref),
                        metrics=dict(metrics or {}), path=None,
                        provenance={"parent": self.sha256, "parent_path": str(self.path) if self.path else None,
                                    "root": {"sha256": lineage["root_sha256"], "name": lineage["root_name"]},
                                    "stage": stage}, **changes)
        child.__dict__.pop("model", None)
        child.__dict__.pop("sha256", None)
        return child

    def to_dict(self) -> dict[str, Any]:
        """Plain data + tensors only: everything but the state dict is JSON-normalised."""
        meta = _plain({"arch": {"name": self.arch, "kwargs": self.arch_kwargs, "channel_plan": self.channel_plan},
                       "task": self.task, "labels": list(self.labels), "input_spec": self.input_spec,
                       "data": self.data, "metrics": self.metrics, "provenance": self.provenance})
        return {"format": FORMAT, "version": VERSION, **meta, "state_dict": self.state_dict,
                "extra": self.extra}

    def save(self, path: str | Path, force: bool = False) -> Path:
        """Write atomically; refuse to overwrite unless ``force``, and never over a file that is
        not a checkpoint."""
        path = check_writable(path, force, kind=KIND)
        prov = {"created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": " ".join(sys.argv),
                "versions": versions(), **self.provenance}
        self.provenance = prov
        with atomic_path(path) as tmp:
            torch.save(self.to_dict(), tmp)
        self.path = path
        self.__dict__.pop("sha256", None)
        return path


def _plain(obj: Any) -> Any:
    """Round-trip through JSON so only str/int/float/bool/list/dict reach the pickle."""
    return json.loads(json.dumps(obj, default=str))


def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """CPU copy of the state dict, keeping its per-module ``_metadata`` versions (plain ints; they
    survive ``weights_only`` loading, and torchvision's MNASNet refuses weights without them)."""
    state = model.state_dict()
    out = OrderedDict((k, v.detach().cpu().clone()) for k, v in state.items())
    out._metadata = OrderedDict((k, dict(v)) for k, v in getattr(state, "_metadata", {}).items())  # type: ignore[attr-defined]
    return out


def build_model(arch: str, arch_kwargs: dict[str, Any], channel_plan: dict[str, Any] | None = None) -> nn.Module:
    """Architecture from the registry, resized by ``channel_plan`` (weights not loaded)."""
    from .registry import create_model

    return apply_plan(create_model(arch, **arch_kwargs), channel_plan or {})


def save_checkpoint(path: str | Path, model: nn.Module, *, arch: str, arch_kwargs: dict[str, Any],
                    task: str = "classify", labels: list[str] | None = None,
                    input_spec: dict[str, Any] | None = None, metrics: dict[str, Any] | None = None,
                    provenance: dict[str, Any] | None = None, extra: dict[str, Any] | None = None,
                    data: dict[str, Any] | None = None, force: bool = False) -> Checkpoint:
    """Save ``model`` under the contract. Its widths may differ from the architecture's
    definition (pruning); they are recorded as a channel plan."""
    get_task(task)  # an unknown task name is one clear line
    plan = extract_plan(model, build_model(arch, arch_kwargs))
    ckpt = Checkpoint(arch=arch, arch_kwargs=dict(arch_kwargs), state_dict=_cpu_state(model), task=task,
                      labels=list(labels or []), input_spec=dict(input_spec or {}), channel_plan=plan,
                      metrics=dict(metrics or {}), provenance=dict(provenance or {}), extra=dict(extra or {}),
                      data=dict(data or {}))
    ckpt.save(path, force=force)
    return ckpt


def load_checkpoint(path: str | Path, *, trust_code: bool = False) -> Checkpoint:
    """Read a checkpoint safely; errors are one clear line. Nothing is built here.

    In order: the zip archive's CRCs (:func:`~edgekit.fileio.check_archive`), ``torch.load``
    with ``weights_only``, the header, every field against :data:`~edgekit.checkpoint_schema.SCHEMA`,
    then the architecture name: a registered name, or an import path only when the user trusts
    the file (``trust_code=True``, ``--trust-code``, see :mod:`edgekit.trust`), never imported otherwise.
    """
    from .registry import get_entry
    from .trust import check_name

    path = Path(path)
    obj = safe_torch_load(path, "edgekit checkpoint")
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise EdgekitError(f"{path} is not an edgekit checkpoint (no '{FORMAT}' header)")
    if isinstance(obj.get("version"), int) and obj["version"] > VERSION:
        raise EdgekitError(f"{path} was written by a newer edgekit (format v{obj['version']})")
    validate(obj, str(path))
    arch = obj["arch"]
    check_name(arch["name"], str(path), "field 'arch.name'", trust_code)
    try:
        get_entry(arch["name"])  # an unknown name fails here, before any stage builds it
    except EdgekitError as exc:
        raise EdgekitError(f"{path}: field 'arch.name': {exc}") from None
    return Checkpoint(arch=arch["name"], arch_kwargs=dict(arch["kwargs"]), state_dict=obj["state_dict"],
                      task=obj["task"], labels=list(obj["labels"]), input_spec=dict(obj["input_spec"]),
                      channel_plan=dict(arch.get("channel_plan") or {}), metrics=dict(obj["metrics"]),
                      provenance=dict(obj["provenance"]), extra=dict(obj.get("extra") or {}),
                      data=dict(obj.get("data") or {}), path=path)
