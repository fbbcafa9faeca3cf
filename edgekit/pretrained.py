"""Starting weights: a local file, or torchvision's pretrained weights by name.

``--weights`` (``edgekit.train(weights=...)``, ``create_model(weights=...)``) takes

* a file: a state dict or an edgekit checkpoint, read as data (``weights_only``);
* ``imagenet``: the architecture's default torchvision weights,
  ``torchvision.models.get_model_weights(arch).DEFAULT``;
* a torchvision weights name ``<Enum>_Weights.<MEMBER>`` (``MobileNet_V2_Weights.IMAGENET1K_V2``),
  resolved with ``torchvision.models.get_weight``; it must be one of the architecture's.

A name is text naming a member of torchvision's weights enums, looked up there and nothing else:
never imported or evaluated, so a recipe may carry one. A file literally called ``imagenet`` is
``./imagenet``. Which torchvision architecture's weights fit a registry name is its entry's
``weights_arch`` (:class:`edgekit.models.entries.ModelEntry`): its own name for torchvision's nets,
the backbone's for the video nets ``tsn_``/``tsm_<backbone>`` (whose ``adapt_weights`` moves the 2D
weights under ``backbone.``), none for edgekit's own nets (``compact_cnn``) and user factories.

**The cache** is torch hub's, the one torchvision itself uses: ``torch.hub.get_dir()``
(``$TORCH_HOME/hub``, by default ``~/.cache/torch/hub``), file ``checkpoints/<basename of the
weights' URL>``. A cached file is read from there (CRCs checked, ``weights_only``). A missing one is
downloaded once by ``weights.get_state_dict`` (torch hub; the hash in the file name is checked);
when that fails (no network) the error is one line naming the cache file it looked for and the URL
to fetch into it. ``EDGEKIT_OFFLINE=1`` (:data:`OFFLINE_ENV`; any value but empty, 0, false, no)
never tries the network: a missing file is that line at once, before any data is read (air-gapped
machines, CI, tests).

**Normalisation**: torchvision weights were trained on inputs normalised by the mean and std of
their ``weights.transforms()``; :meth:`Weights.normalization` hands those to the input spec.

**Provenance**: :meth:`Weights.record` is what a checkpoint keeps: the name, URL, the file read
and its sha256 (a local file: its path and sha256), and what loading skipped (a classifier for
another number of classes; :func:`edgekit.registry.load_weights`).

Not carried over from torchvision's builders: googlenet and inception_v3 weights are built there
with ``transform_input=True`` (re-normalising ImageNet inputs to [-1, 1]); edgekit's builds keep
``transform_input=False``, so fine-tuning starts from slightly shifted input statistics.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch

from .errors import EdgekitError
from .fileio import safe_torch_load, sha256_file

#: the environment variable that forbids downloads (a missing cache file is an error at once)
OFFLINE_ENV = "EDGEKIT_OFFLINE"
#: the name of an architecture's default torchvision weights
DEFAULT_NAME = "imagenet"
#: a torchvision weights name, ``<Enum>_Weights.<MEMBER>``
WEIGHTS_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*_Weights\.[A-Za-z][A-Za-z0-9_]*")
#: torchvision checkpoints whose keys its builder renames before loading (the key pattern and the
#: replacement), as ``torchvision.models.densenet._load_state_dict`` does: the files keep the keys
#: ``denselayerN.norm.1`` of modules since renamed ``norm1``
LEGACY_KEYS = {"densenet": (re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|"
                                       r"running_mean|running_var))$"), r"\1\2")}


def offline() -> bool:
    """Whether :data:`OFFLINE_ENV` forbids downloads."""
    return os.environ.get(OFFLINE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def is_weights_name(weights: Any) -> bool:
    """Whether ``weights`` names torchvision weights (``imagenet`` or ``<Enum>_Weights.<MEMBER>``)
    rather than a file. Only text can: a :class:`~pathlib.Path` is always a file."""
    return isinstance(weights, str) and (weights == DEFAULT_NAME or WEIGHTS_NAME.fullmatch(weights) is not None)


@dataclass(frozen=True)
class Weights:
    """Resolved starting weights: a local ``file``, or torchvision weights ``enum`` (a member of a
    ``WeightsEnum``) of torchvision architecture ``arch``, whose ``file`` is the hub cache's."""

    file: Path
    enum: Any = None
    arch: str | None = None

    @property
    def name(self) -> str:
        """``MobileNet_V2_Weights.IMAGENET1K_V2`` for torchvision weights, the path for a file."""
        return f"{type(self.enum).__name__}.{self.enum.name}" if self.enum is not None else str(self.file)

    @property
    def url(self) -> str | None:
        return self.enum.url if self.enum is not None else None

    def normalization(self) -> dict[str, list[float]]:
        """``{"mean", "std"}`` of the torchvision weights' own preprocessing (``weights.transforms()``,
        ``ImageClassification``), for the input spec; ``{}`` for a file or transforms without them."""
        if self.enum is None:
            return {}
        try:
            tf = self.enum.transforms()
        except TypeError:  # transforms that need arguments are not image classification's
            return {}
        mean, std = getattr(tf, "mean", None), getattr(tf, "std", None)
        return {"mean": [float(m) for m in mean], "std": [float(s) for s in std]} if mean and std else {}

    def state_dict(self, progress: bool = False) -> dict[str, torch.Tensor]:
        """The tensors, read from the file (downloaded into the hub cache first when it is missing
        and downloads are allowed). Never executes code from the file."""
        return self.read(progress)[0]

    def read(self, progress: bool = False) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """:meth:`state_dict` and, for an edgekit checkpoint, its header (``format``, ``task``,
        ``arch``: whether it is a pretrained backbone that must fit whole); ``{}`` otherwise."""
        header: dict[str, Any] = {}
        if self.enum is None:
            obj = safe_torch_load(self.file, "weights file")
            state = obj.get("state_dict", obj) if isinstance(obj, dict) else None
            what = str(self.file)
            header = {k: obj.get(k) for k in ("format", "task", "arch")} if isinstance(obj, dict) else {}
        else:
            state = safe_torch_load(self.file, f"torchvision weights file ({self.name})") if self.file.is_file() \
                else self._download(progress)
            what = f"{self.name} ({self.file})"
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise EdgekitError(f"{what} holds no state dict of tensors")
        for prefix, (pattern, repl) in LEGACY_KEYS.items():
            if self.arch and self.arch.startswith(prefix):
                state = {pattern.sub(repl, k): v for k, v in state.items()}
        return state, header

    def _download(self, progress: bool) -> Any:
        self.check_available()
        try:  # torchvision's weights API: torch hub downloads into self.file, checks the hash, loads
            return self.enum.get_state_dict(progress=progress, check_hash=True, weights_only=True,
                                            map_location="cpu")
        except Exception as exc:  # no network, refused, a hash mismatch: the same one line
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise EdgekitError(f"cannot download torchvision weights {self.name} ({reason}); the torch hub cache "
                               f"has no {self.file}: fetch {self.url} into that file") from None

    def check_available(self) -> None:
        """Refuse, in one line, torchvision weights that are not cached while downloads are off
        (:data:`OFFLINE_ENV`): the cache file looked for and the URL to fetch into it."""
        if self.enum is not None and not self.file.is_file() and offline():
            raise EdgekitError(f"torchvision weights {self.name} are not cached: no {self.file} ({OFFLINE_ENV} is "
                               f"set, so no download was tried); fetch {self.url} into that file")

    def record(self, report: dict[str, list[str]] | None = None) -> dict[str, Any]:
        """What a checkpoint's provenance keeps: name, URL and torchvision architecture (torchvision
        weights), the file read and its sha256, and from ``report`` (what
        :func:`edgekit.registry.load_weights` returns) the number of tensors loaded and the names of
        those skipped for another shape."""
        out: dict[str, Any] = {"name": self.name, "url": self.url, "arch": self.arch} if self.enum is not None else {}
        out.update(file=str(self.file), sha256=sha256_file(self.file) if self.file.is_file() else None)
        if report is not None:
            out.update(loaded=len(report.get("loaded", [])), skipped=list(report.get("mismatched", [])))
        return out

def cache_file(enum: Any) -> Path:
    """Where torch hub keeps (and torchvision looks for) the file of weights ``enum``:
    ``<torch.hub.get_dir()>/checkpoints/<basename of its URL>``, as ``load_state_dict_from_url``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(enum.url).path)


def resolve(weights: "str | os.PathLike[str] | Weights", arch: str, weights_arch: str | None) -> Weights:
    """``weights`` for registry architecture ``arch`` (whose torchvision weights are those of
    ``weights_arch``, None when it has none). Touches no network; an unknown name, weights of
    another architecture, an architecture without torchvision weights, a missing file, and
    uncached weights while offline are one line each."""
    if isinstance(weights, Weights):
        return weights
    if not is_weights_name(weights):
        path = Path(weights)
        if not path.is_file():
            hint = "" if any(c in str(weights) for c in "/\\.") else \
                f" (a torchvision weights name is {DEFAULT_NAME} or <Enum>_Weights.<MEMBER>)"
            raise EdgekitError(f"weights file not found: {path}{hint}")
        return Weights(path)
    if weights_arch is None:
        raise EdgekitError(f"{arch} has no torchvision weights to start from {weights!r}; give it a weights file "
                           "(a state dict or an edgekit checkpoint)")
    import torchvision.models as tvm

    enum_cls = tvm.get_model_weights(weights_arch)
    names = [f"{enum_cls.__name__}.{m}" for m in enum_cls.__members__]
    if weights == DEFAULT_NAME:
        member = enum_cls.DEFAULT
    else:
        try:
            member = tvm.get_weight(str(weights))
        except (ValueError, KeyError, TypeError):  # an enum or member torchvision does not have
            raise EdgekitError(f"unknown torchvision weights {weights!r}; {arch} takes {DEFAULT_NAME} or one of "
                               f"{', '.join(names)}") from None
        if not isinstance(member, enum_cls):
            of = f"{arch}'s backbone {weights_arch}" if weights_arch != arch else arch
            raise EdgekitError(f"{weights} are not weights of {of}; use {DEFAULT_NAME} or one of {', '.join(names)}")
    resolved = Weights(cache_file(member), member, weights_arch)
    resolved.check_available()
    return resolved


def describe(record: dict[str, Any]) -> str:
    """One line for a provenance ``weights`` record (``edgekit train``'s output, ``edgekit info``)."""
    head = f"{record['name']} ({record.get('file')})" if record.get("name") else str(record.get("file"))
    parts = [head]
    if record.get("loaded") is not None:
        parts.append(f"{record['loaded']} tensors loaded")
    skipped = record.get("skipped") or []
    if skipped:
        shown = ", ".join(skipped[:4]) + (f" and {len(skipped) - 4} more" if len(skipped) > 4 else "")
        parts.append(f"{len(skipped)} of another shape skipped ({shown})")
    return "; ".join(parts)
