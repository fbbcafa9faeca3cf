"""Architecture names -> model factories.

Five sources, one namespace:

* edgekit's own nets, registered with :func:`register_model` (``compact_cnn``);
* every torchvision classification architecture (``resnet18``, ``mobilenet_v2``...);
* factories a user registers in code (:func:`register_model`) or that an installed package
  declares as entry points of the group ``edgekit.models`` (``name = pkg.module:factory``;
  loaded on first use of the name);
* user factories given as ``package.module:function`` by the caller. A file (checkpoint,
  recipe) naming one is refused unless the user trusts it (:mod:`edgekit.trust`);
* families of names over another name (``tsm_mobilenet_v2``), see :func:`register_family`.

Every entry carries a :class:`~edgekit.models.layout.Layout` (classifier, penultimate
feature, stem), declared for edgekit's nets and torchvision's families, empty for user
factories; ``create_model`` attaches it to the model so stages read it instead of
guessing with hooks. Pretrained weights (``weights=``) come from a local file (a plain
state dict or an edgekit checkpoint) or are torchvision's by name (``imagenet``,
``MobileNet_V2_Weights.IMAGENET1K_V2``), read from the torch hub cache and downloaded into it
at most once: :mod:`edgekit.pretrained` resolves them.
"""
from __future__ import annotations

import functools
import math
import importlib
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from .errors import EdgekitError, suggest
from .numbers import positive_float
from .pretrained import Weights, is_weights_name, resolve
from .models.entries import BUILTIN, BUILTIN_FAMILIES, Factory, ModelEntry
from .models.layout import TORCHVISION_KWARGS, Layout, attach, declared, layout_of, torchvision_layout
from .trust import caller_named

_EDGEKIT: dict[str, ModelEntry] = {}
_FAMILIES: dict[str, Callable[[str], ModelEntry]] = {}
_ADOPTED = False  # edgekit's own entries (models.entries.BUILTIN) are in _EDGEKIT
#: the entry-point group through which installed packages contribute architectures
ENTRY_POINT_GROUP = "edgekit.models"


def register_model(name: str, default_input: int = 224, *, classifier: str | None = None,
                   feature: str | None = None, stem: str | None = None,
                   stem_pool: str | None = None) -> Callable[[Factory], Factory]:
    """Decorator: make ``factory(num_classes=..., **kwargs)`` available as ``name``.

    ``classifier``, ``feature``, ``stem`` and ``stem_pool`` are module paths of the built
    model (see :class:`~edgekit.models.layout.Layout`); undeclared ones are found by hooks.
    A name already taken (by edgekit, torchvision or an earlier registration) raises
    :class:`EdgekitError`: one name, one architecture.
    """

    def deco(fn: Factory) -> Factory:
        _load_builtin()  # a user's name is checked against edgekit's own, whichever comes first
        taken = _EDGEKIT.get(name)
        if taken is not None:
            raise EdgekitError(f"architecture {name!r} is already registered (by {taken.source} factory "
                               f"{taken.factory.__module__}.{taken.factory.__qualname__}); pick another name")
        if name in _torchvision_names():
            raise EdgekitError(f"architecture {name!r} is torchvision's; pick another name")
        _EDGEKIT[name] = ModelEntry(name, fn, default_input, "user",
                                    Layout(classifier=classifier, feature=feature, stem=stem, stem_pool=stem_pool))
        return fn

    return deco


def register_family(prefix: str, resolve: Callable[[str], ModelEntry]) -> None:
    """Make every name ``prefix + rest`` resolve through ``resolve(name)`` (longest prefix first).

    For architectures built over another registry name, such as the video nets
    ``tsm_<backbone>`` of :mod:`edgekit.models.temporal`. Such names resolve but are not
    listed by :func:`list_models` (one per backbone would swamp it).
    """
    _FAMILIES[prefix] = resolve


@functools.cache
def _torchvision_names() -> tuple[str, ...]:
    import torchvision.models as tvm

    return tuple(sorted(tvm.list_models(module=tvm)))


def _entry_points() -> dict[str, Any]:
    """The installed ``edgekit.models`` entry points by name (read from package metadata; nothing imported)."""
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def _plugin_entry(name: str) -> ModelEntry | None:
    """The entry of an architecture an installed package declares (``edgekit.models`` group), or None.

    Loading the entry point imports its module: a module that calls :func:`register_model`
    itself keeps that registration (layout, input size); a bare factory is registered under
    the entry point's name, with its ``default_input`` attribute if it has one (else 224)."""
    ep = _entry_points().get(name)
    if ep is None:
        return None
    try:
        obj = ep.load()
    except Exception as exc:  # a broken plugin is its author's bug, reported in one line
        raise EdgekitError(f"cannot load architecture {name!r} from entry point {ep.value!r} "
                           f"(group {ENTRY_POINT_GROUP}): {exc}") from exc
    if name in _EDGEKIT:
        return _EDGEKIT[name]
    if not callable(obj):
        raise EdgekitError(f"entry point {name} = {ep.value} (group {ENTRY_POINT_GROUP}) is not a model factory")
    entry = ModelEntry(name, obj, int(getattr(obj, "default_input", 224)), "plugin")
    _EDGEKIT[name] = entry
    return entry


def list_models() -> list[str]:
    """All registry names: edgekit's own and registered ones (entry points too) first, then torchvision's
    classifiers."""
    _load_builtin()
    taken = set(_torchvision_names())
    return sorted(set(_EDGEKIT) | {n for n in _entry_points() if n not in taken}) + list(_torchvision_names())


def get_entry(name: str) -> ModelEntry:
    """Resolve a name (registry name or ``module:function``) to its entry.

    An import path is imported here, as the caller asked; readers of files refuse one first
    unless the user trusts the file (:func:`edgekit.trust.check_name`)."""
    _load_builtin()
    if name in _EDGEKIT:
        return _EDGEKIT[name]
    if ":" in name:
        mod_name, _, fn_name = name.partition(":")
        try:
            fn = getattr(importlib.import_module(mod_name), fn_name)
        except (ImportError, AttributeError) as exc:
            raise EdgekitError(f"cannot import user factory {name!r}: {exc}") from exc
        caller_named(name)
        return ModelEntry(name, fn, 224, "user")
    if name in _torchvision_names():
        import torchvision.models as tvm

        def tv_factory(num_classes: int = 1000, **kw: Any) -> nn.Module:
            return tvm.get_model(name, weights=None, num_classes=num_classes, **{**TORCHVISION_KWARGS.get(name, {}), **kw})

        return ModelEntry(name, tv_factory, 299 if name == "inception_v3" else 224, "torchvision",
                          torchvision_layout(name), weights_arch=name)
    family = max((p for p in _FAMILIES if name.startswith(p)), key=len, default=None)
    if family is not None:
        return _FAMILIES[family](name)
    plugin = _plugin_entry(name)
    if plugin is not None:
        return plugin
    raise suggest(name, list_models(), "architecture")


def adapt_small_input(model: nn.Module) -> nn.Module:
    """Keep resolution in the stem for small images (CIFAR-style).

    Sets the stem convolution's stride to 1 and removes the stem max-pool. Both come
    from the model's layout (``stem``, ``stem_pool``); a model without one (a user
    factory) gets its first ``Conv2d`` and a ``model.maxpool`` attribute, as in ResNets.
    A 32x32 image then reaches the last stage at 4x4 instead of 1x1. Applied only on
    request (``small_input=True``), and recorded in the checkpoint's architecture
    kwargs so the model rebuilds identically.
    """
    stem_path = declared(model, "stem")
    first = model.get_submodule(stem_path) if stem_path else next(
        (m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if not isinstance(first, nn.Conv2d):
        raise EdgekitError("small_input=True needs a model with a Conv2d stem")
    first.stride = (1, 1)
    if layout_of(model).stem is not None:
        pool = declared(model, "stem_pool")
    else:
        pool = "maxpool" if hasattr(model, "maxpool") else None
    if pool and isinstance(model.get_submodule(pool), nn.MaxPool2d):
        parent, _, attr = pool.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, attr, nn.Identity())
    return model


def create_model(name: str, num_classes: int = 1000, weights: str | Path | Weights | None = None,
                 small_input: bool = False, feature_dim: int | None = None, head: str | None = None,
                 nfl_mul: int | None = None, nfl_per: int | None = None, nfl_dh: int | None = None,
                 nfl_seed: int | None = None, label_range: str | None = None, drop_last_stage: bool = False,
                 **kwargs: Any) -> nn.Module:
    """Build architecture ``name`` with ``num_classes`` outputs.

    ``weights`` is a local file (a state dict or an edgekit checkpoint) or torchvision weights
    by name (``imagenet``: the architecture's default; ``MobileNet_V2_Weights.IMAGENET1K_V2``;
    see :mod:`edgekit.pretrained`). Tensors whose shape does not match (a classifier for another
    number of classes) are skipped and reported, so ImageNet weights can seed a 10-class model. ``feature_dim=D`` puts a
    Linear connector to D dims before the final classifier (a distilled student whose
    teacher's feature has D dims; see :func:`edgekit.models.connector.add_connector`).
    ``head="nfl"`` replaces the classifier after global pooling by the NFL layer + Linear
    (``nfl_mul``, ``nfl_per``, ``nfl_dh``, ``nfl_seed``; see :func:`edgekit.models.nfl.add_nfl_head`);
    ``head="dldl"`` (or ``"ranking"``, ``"regression"``) replaces it by the DLDL-v2
    label-distribution head over ``label_range`` (``"lo:hi:step"``; ``num_classes`` is then
    the label set's size, 1 for regression; see :mod:`edgekit.models.dldl`). ``head="fc"`` or ``None`` keeps the architecture's own classifier.
    ``head="embedding"`` removes the classifier (the net outputs its penultimate feature), and
    with it ``drop_last_stage=True`` the last stage of a ResNet-style backbone (S3L's small
    architecture; see :mod:`edgekit.models.embedding`).
    The entry's layout is attached as ``model.edgekit_layout``.
    """
    entry = get_entry(name)
    if head in ("dldl", "ranking", "regression"):
        if label_range is None:
            raise EdgekitError(f"head={head!r} needs a label range (lo:hi:step)")
        from .models.dldl import LabelSet

        num_classes = 1 if head == "regression" else LabelSet.parse(label_range).size
    elif label_range is not None:
        raise EdgekitError("label_range needs head='dldl', 'ranking' or 'regression'")
    bad = [f"{k}={v}" for k, v in kwargs.items() if isinstance(v, float) and not math.isfinite(v)]
    if bad:
        raise EdgekitError(f"cannot build {name}: {', '.join(bad)} is not a finite number")
    if "width_mult" in kwargs:  # a multiplier of zero or less would be clamped to some minimum width
        positive_float("width_mult", kwargs["width_mult"])
    try:
        model = entry.factory(num_classes=num_classes, **kwargs)
    except (TypeError, ValueError, RuntimeError, ZeroDivisionError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EdgekitError(f"cannot build {name} with arguments {kwargs}: {first}") from exc
    if not isinstance(model, nn.Module):
        raise EdgekitError(f"architecture {name!r} returned {type(model).__name__}, not a torch.nn.Module")
    empty = next((n for n, t in model.state_dict().items() if 0 in t.shape), None)
    if empty is not None:
        raise EdgekitError(f"cannot build {name} with arguments {kwargs}: layer {empty} has no units "
                           f"(shape {tuple(model.state_dict()[empty].shape)})")
    attach(model, entry.layout)
    if small_input:
        adapt_small_input(model)
    nfl = {k: v for k, v in (("n_mul", nfl_mul), ("n_per", nfl_per), ("dh", nfl_dh), ("seed", nfl_seed))
           if v is not None}
    if head not in (None, "fc", "nfl", "dldl", "ranking", "regression", "embedding"):
        raise EdgekitError(f"head must be 'fc', 'nfl', 'dldl', 'ranking', 'regression' or 'embedding', got {head!r}")
    if drop_last_stage and head != "embedding":
        raise EdgekitError("drop_last_stage builds a pretraining backbone: it needs head='embedding'")
    if nfl and head != "nfl":
        raise EdgekitError("nfl_mul, nfl_per, nfl_dh and nfl_seed need head='nfl'")
    if head == "nfl":
        from .models.nfl import add_nfl_head

        add_nfl_head(model, **nfl)
    if head in ("dldl", "ranking", "regression"):
        from .models.dldl import add_dldl_head

        add_dldl_head(model, str(label_range), head)
    if head == "embedding":
        from .models.embedding import to_embedding

        to_embedding(model, name, bool(drop_last_stage))
    if feature_dim is not None:
        from .models.connector import add_connector

        add_connector(model, int(feature_dim))
    if weights is not None:
        load_weights(model, weights, name)
    return model


def resolve_weights(weights: str | Path | Weights, arch: str) -> Weights:
    """``weights`` (a file, ``imagenet`` or a torchvision weights name) resolved for registry
    architecture ``arch``, without touching the network (see :mod:`edgekit.pretrained`)."""
    return resolve(weights, arch, get_entry(arch).weights_arch if isinstance(weights, str) else None)


def load_weights(model: nn.Module, weights: str | Path | Weights, arch: str | None = None,
                 progress: bool = False) -> dict[str, list[str]]:
    """Load starting weights into ``model``, never executing code: a local state dict (or an
    edgekit checkpoint's), or torchvision weights by name for registry architecture ``arch``
    (resolved by :func:`resolve_weights`; downloaded into the torch hub cache if missing there).

    Returns the keys ``loaded``, and those skipped because they are missing, unexpected or of
    another shape (``mismatched``: a classifier for another number of classes)."""
    if isinstance(weights, str) and is_weights_name(weights):
        if arch is None:
            raise EdgekitError(f"--weights {weights} names torchvision weights; say for which architecture "
                               "(create_model(arch, weights=...))")
        weights = resolve_weights(weights, arch)
    source = weights if isinstance(weights, Weights) else resolve(weights, arch or "this model", None)
    state, header = source.read(progress=progress)
    if hasattr(model, "adapt_weights"):  # e.g. a video net taking its 2D backbone's weights
        state = model.adapt_weights(state)
    own = model.state_dict()
    if _is_backbone(header):
        _require_backbone_fits(source.file, header, state, own, model)
    fitting = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not fitting:
        raise EdgekitError(f"no tensor of {source.name} fits this model (is it for another architecture?)")
    load_state(model, fitting, strict=False)
    return {
        "mismatched": sorted(k for k in state if k in own and own[k].shape != state[k].shape),
        "unexpected": sorted(k for k in state if k not in own),
        "missing": sorted(k for k in own if k not in state),
        "loaded": sorted(fitting),
    }


def _is_backbone(obj: Any) -> bool:
    """Whether a loaded weights file is an edgekit checkpoint of a backbone-only task (a pretraining's)."""
    from .tasks import get_task

    if not (isinstance(obj, dict) and obj.get("format") == "edgekit.checkpoint" and isinstance(obj.get("task"), str)):
        return False
    try:
        return get_task(obj["task"]).backbone_only
    except EdgekitError:
        return False


def _require_backbone_fits(path: Path, obj: dict[str, Any], state: dict[str, torch.Tensor],
                           own: dict[str, torch.Tensor], model: nn.Module) -> None:
    """A pretrained backbone seeds a model only whole, and the model is that backbone plus its
    classifier (and the stage pretraining dropped): one line naming the first tensor that does not fit."""
    arch = obj.get("arch") or {}
    kwargs = arch.get("kwargs") or {}
    layout = layout_of(model)
    new = tuple(f"{p}." for p in (layout.classifier, layout.last_stage if kwargs.get("drop_last_stage") else None) if p)
    for key, value in state.items():
        if key not in own or own[key].shape != value.shape:
            there = f"shape {list(own[key].shape)} in this model" if key in own else "absent from this model"
            problem = f"{key} is {list(value.shape)} there and {there}"
            break
    else:
        extra = next((k for k in own if k not in state and not k.startswith(new) and not k.endswith("num_batches_tracked")), None)
        if extra is None:
            return
        problem = f"this model's {extra} is not in it"
    raise EdgekitError(f"{path} is a pretrained {arch.get('name')} backbone ({kwargs}) that does not fit this "
                       f"model: {problem}; train the architecture it was pretrained as, with the same --small-input")


def load_state(model: nn.Module, state: dict[str, torch.Tensor], strict: bool = True) -> Any:
    """``model.load_state_dict(state)``, keeping the per-module state-dict versions.

    ``state_dict()`` records each module's ``_version`` in a ``_metadata`` attribute that
    a plain dict (a copied or re-read state dict) loses. Most modules accept a missing
    version; torchvision's MNASNet refuses it ("version should be set to 1 or 2"). The
    versions are the state's own when it has them, else those of the model's code.
    """
    meta = getattr(state, "_metadata", None)
    if meta is None:
        meta = getattr(model.state_dict(), "_metadata", None)
    if meta is not None:
        state = OrderedDict(state)
        state._metadata = meta  # type: ignore[attr-defined]
    return model.load_state_dict(state, strict=strict)


def build_for_shape(name: str, num_classes: int = 1000) -> nn.Module:
    """Build ``name`` without allocating weights where possible (meta device).

    Used to count parameters and MACs cheaply. A few initialisers (RegNet's) copy
    real data and fail on meta; those are built on the CPU instead.
    """
    entry = get_entry(name)
    try:
        with torch.device("meta"):
            model = entry.factory(num_classes=num_classes)
    except NotImplementedError:
        model = entry.factory(num_classes=num_classes)
    return attach(model, entry.layout)


def count_params(model: nn.Module) -> int:
    """Number of parameters (trainable or not)."""
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Multiply-accumulates of one forward pass at ``input_shape`` (batch included).

    Uses torch's own FLOP counter (every aten op with a formula: convolutions,
    matmuls, attention) and halves its FLOPs. Runs on the meta device when the
    model lives there, so the zoo costs no real compute.
    """
    from torch.utils.flop_counter import FlopCounterMode

    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    was_training = model.training
    model.eval()
    try:
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(torch.zeros(input_shape, device=device))
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2


def _load_builtin() -> None:
    """Adopt edgekit's own architectures, declared in :mod:`edgekit.models.zoo` (imported here:
    the registry sits above the models, see :mod:`edgekit.models.entries`), once."""
    global _ADOPTED
    if _ADOPTED:
        return
    from .models import zoo  # noqa: F401  (its declarations fill BUILTIN and BUILTIN_FAMILIES)

    _ADOPTED = True
    _EDGEKIT.update(BUILTIN)
    for prefix, resolve in BUILTIN_FAMILIES.items():
        _FAMILIES.setdefault(prefix, functools.partial(resolve, get_entry=get_entry, create_model=create_model))
