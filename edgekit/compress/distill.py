"""``edgekit distill``: train a small student from a teacher checkpoint.

Total loss ``CE(student, y) + alpha * KD_T(student, teacher) + beta * L_feat`` (Wang, Ge & Wu,
"Distilling Knowledge by Mimicking Features", TPAMI 2021; docs/methods.md section 2.2), trained by the shared :func:`edgekit.training.loop.fit` engine; every term is logged
by name in the JSONL training log. Methods, combinable with ``+`` (``lshl2+kd``):

============  =================================================================
``none``      the student from scratch (CE only; the baseline)
``kd``        Hinton KD on logits, T = 4 (:mod:`edgekit.compress.kd`)
``l2``        MSE between penultimate features
``lsh``       LSH mimicking: BCE on the teacher's random-hyperplane sign bits
``lshl2``     LSH + MSE (the paper's best and its code's default)
============  =================================================================

Feature terms average only over samples the teacher classifies correctly (the paper's
``_S`` variant; ``correct_only=False`` to average over all). The penultimate features are
found by forward hooks (:mod:`edgekit.compress.features`); when the sizes differ the
student gets a Linear connector before its classifier, recorded as the ``feature_dim``
architecture kwarg so the checkpoint rebuilds and exports like any other.

Which method wins where, measured (``benchmarks/distill_digits.py``, table and exact
command in ``benchmarks/distill_digits.md``; resnet18 teacher 99.2 %, compact_cnn_s student,
digits, 8 epochs, 3 seeds): scratch 97.2, **kd 98.1**, lsh 97.3, l2 94.4 / lshl2 95.0 at the
paper's beta 6, and l2 97.0 / lshl2 96.6 at beta 1. So on small data with a confident
teacher, logit KD is the reliable gain and edgekit's default is ``kd`` (alpha 1); feature
terms only matched scratch there, and beta 6 over-weighted them (the MSE dominates the
first epochs), so the default feature weight is beta 1 (docs/findings.md item 5). The paper's evidence for LSH/LSHL2 (beta 5-7) is ImageNet, multi-label
classification and detection: use ``lshl2`` (or ``lshl2+kd``) with large data and long
schedules, and for teachers without a softmax (regression, label distributions), which
can only distil through features.

Teachers without a softmax: a one-output regressor has nothing for KD; the student keeps a
task loss when the labels allow one (L1 on a single regression output) and its head starts
as a copy of the teacher's (same shape after the connector), so mimicked features feed a
working head.

Label-distribution teachers (DLDL-v2, Gao et al. 2020; task ``label_distribution``): KD
distils their **distribution**, ``log p_hat`` standing in for the logits
(:func:`edgekit.compress.kd.soft_logits`; ``T^2 KL(p_t^(1/T) || p_s^(1/T))`` with the
powered distributions renormalised), never a softmax over the ``[N, K + 1]`` output with
its expectation column; LSH/L2 mimic their penultimate feature (the head's ``feature``
tap). The student gets the teacher's head (a registry name is built with the teacher's
``head`` and ``label_range``; a student checkpoint must already have them), its task loss
is the teacher's recorded :class:`~edgekit.training.label_distribution.LabelTask` loss
(DLDL-v2's ``KL + lambda L1`` by default, on the data's per-sample sigmas), its checkpoint
records the task and the LabelTask, and it is scored by MAE/RMSE/epsilon-error/Pearson.
Feature terms average over all samples (no "correct" for a regression); with a feature
term the student's head starts as a copy of the teacher's when the shapes match. An L1
teacher (``--loss l1``, one output) has no distribution: KD is refused, features work.

A pruned student (``edgekit prune`` output, with a channel plan) starts from its weights.
``cache_teacher=True`` computes the teacher's features and logits once, stores them on
disk next to the output, and trains the student on un-augmented images (the cached
features must match the student's input exactly); use it when the teacher is large.
"""
from __future__ import annotations

import copy
import hashlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from ..checkpoint import KIND, Checkpoint, load_checkpoint
from ..data import DataBundle, eval_transform, make_input_spec, train_transform
from ..data.datasets import Transformed
from ..errors import EdgekitError
from ..device import resolve_device
from ..fileio import Kind, atomic_path, check_writable, data_input
from ..formats import is_edgekit_checkpoint
from ..models.dldl import HEADS, LabelSet
from ..registry import count_params, create_model, get_entry
from ..seeding import seed_everything
from ..tasks import get_task
from ..training.guards import require_classes
from ..training.label_distribution import LabelTask, label_loss
from ..training.loop import StepOutput, fit
from ..training.metrics import evaluate_model
from ..training.precise_bn import bn_loader
from ..training.trainer import epoch_metrics, metrics_path
from .distill_config import DEFAULT_METHOD, DistillConfig
from .features import FeatureTap, add_connector, feature_dim
from .kd import soft_logits
from .loss_terms import TERMS, LossTerm, TermInputs, parse_method, task_step, weighted_terms
from .lsh import LSHProjector

log = logging.getLogger("edgekit.distill")

class _Indexed(Dataset):
    """(x, target) -> (x, [target..., index]): the index (last column) finds a sample's cached
    teacher outputs; a label-distribution target keeps its (label, sigma) columns."""

    def __init__(self, base: Dataset) -> None:
        self.base = base

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.base[i]
        y = torch.as_tensor(y).reshape(-1)
        return x, torch.cat([y.to(torch.float64), torch.tensor([float(i)], dtype=torch.float64)])


class _Teacher:
    """The frozen teacher: eval mode, no gradient, features tapped, resized input if needed."""

    def __init__(self, model: nn.Module, size: int, student_size: int, layer: str | None,
                 frames: int | None = None) -> None:
        self.model = model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.size, self.student_size = size, student_size
        self.shape = _shape(size, frames)
        self.tap = FeatureTap(self.model, self.shape, layer)

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.model(_resize(x, self.size))
        assert self.tap.feature is not None
        return self.tap.feature.float(), out.float()


@torch.no_grad()
def teacher_outputs(teacher: _Teacher, loader: Any, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Teacher features and outputs over ``loader`` (in order), on CPU."""
    feats, outs = [], []
    for x, _ in loader:
        f, o = teacher(x.to(device))
        feats.append(f.cpu())
        outs.append(o.cpu())
    return torch.cat(feats), torch.cat(outs)


def _shape(size: int, frames: int | None = None) -> tuple[int, ...]:
    """One input of ``size`` px: an image ``(1, 3, s, s)``, or a clip of ``frames`` ``(1, T, 3, s, s)``."""
    return (1, 3, size, size) if frames is None else (1, frames, 3, size, size)


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Images ``(N, C, H, W)`` or clips ``(N, T, C, H, W)`` resized to ``size x size`` (bilinear) if they differ."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    y = F.interpolate(x.flatten(0, x.dim() - 4), size=(size, size), mode="bilinear", align_corners=False)
    return y.reshape(*x.shape[:-2], size, size)


def _cache_key(teacher: Checkpoint, bundle: DataBundle, spec: dict[str, Any], layer: str | None) -> str:
    text = f"{teacher.sha256}|{bundle.spec}|{len(bundle.train)}|{spec}|{layer}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _load_or_compute_cache(path: Path, key: str, compute: Any) -> tuple[torch.Tensor, torch.Tensor]:
    if path.is_file():
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
            if obj.get("key") == key:
                log.info("reusing cached teacher outputs %s", path)
                return obj["features"], obj["outputs"]
        except Exception:  # a stale or broken cache is recomputed, never trusted
            pass
    feats, outs = compute()
    with atomic_path(path) as tmp:
        torch.save({"key": key, "features": feats, "outputs": outs}, tmp)
    return feats, outs


def _build_student(student: str | Path | Checkpoint, teacher: Checkpoint, size: int, needs_dim: int | None,
                   layer: str | None, shift: str | None = None) -> tuple[nn.Module, Checkpoint]:
    """The trainable student and a base checkpoint describing it (arch, kwargs, plan).

    A label-distribution teacher's student has its head: built with the teacher's ``head``
    and ``label_range`` from a registry name; a student checkpoint must already match them.
    A clip teacher's student is a clip model (:func:`edgekit.compress.temporal.clip_student`)."""
    from .temporal import clip_student

    frames = teacher.input_spec.get("frames") if get_task(teacher.task).clips else None
    shape = _shape(size, frames)
    head = _head_kwargs(teacher)
    if isinstance(student, Checkpoint) or Path(str(student)).is_file():
        base = student if isinstance(student, Checkpoint) else load_checkpoint(student)
        clip_student(teacher, base.arch, shift, base.task)
        if _head_kwargs(base) != head:
            raise EdgekitError(f"student head {_describe_head(base)} differs from the teacher's "
                               f"{_describe_head(teacher)}")
        if base.num_outputs != teacher.num_outputs:
            raise EdgekitError(f"student has {base.num_outputs} outputs but the teacher {teacher.num_outputs}")
        model = copy.deepcopy(base.model)
        kwargs = dict(base.arch_kwargs)
    else:
        name = str(student)
        if name.endswith((".pt", ".pth", ".ckpt")):
            raise EdgekitError(f"student checkpoint not found: {name}")
        entry = get_entry(name)
        classes = LabelSet.parse(head["label_range"]).size if head else teacher.num_outputs
        kwargs = {"num_classes": classes, **head, **clip_student(teacher, name, shift)}
        if size <= 64 and entry.default_input >= 128:
            kwargs["small_input"] = True
        model = create_model(name, **kwargs)
        base = Checkpoint(arch=name, arch_kwargs=kwargs, state_dict={}, task=teacher.task,
                          labels=list(teacher.labels), input_spec={})
    if needs_dim is not None:
        raw = feature_dim(model, shape, layer)
        if raw != needs_dim:
            if layer is not None:
                raise EdgekitError(f"student feature {layer!r} has {raw} dims, the teacher's {needs_dim}; "
                                   "a connector is only added before the classifier (omit --feature-layer)")
            if "feature_dim" in kwargs:
                raise EdgekitError(f"student already has a connector to {kwargs['feature_dim']} dims; "
                                   f"the teacher's feature has {needs_dim}")
            add_connector(model, needs_dim)
            kwargs["feature_dim"] = needs_dim
            log.info("student connector Linear(%d -> %d) added before its classifier", raw, needs_dim)
    extra = {LabelTask.KEY: dict(teacher.extra[LabelTask.KEY])} if LabelTask.KEY in teacher.extra else {}
    return model.train(), Checkpoint(arch=base.arch, arch_kwargs=kwargs, state_dict={}, task=teacher.task,
                                     labels=list(teacher.labels), input_spec=dict(base.input_spec),
                                     channel_plan=base.channel_plan, path=base.path, extra=extra)


def _head_kwargs(ckpt: Checkpoint) -> dict[str, Any]:
    """The label-distribution head of a checkpoint's architecture (``head``, ``label_range``), or ``{}``."""
    kw = ckpt.arch_kwargs
    if kw.get("head") not in HEADS:
        return {}
    return {"head": kw["head"], "label_range": LabelSet.parse(kw["label_range"]).text()}


def _describe_head(ckpt: Checkpoint) -> str:
    head = _head_kwargs(ckpt)
    return f"{head['head']} over {head['label_range']}" if head else f"'{ckpt.arch_kwargs.get('head') or 'fc'}'"


def _split_layer(feature_layer: str | None) -> tuple[str | None, str | None]:
    """``'PATH'`` (both) or ``'TEACHER_PATH:STUDENT_PATH'``."""
    if not feature_layer:
        return None, None
    t, sep, s = feature_layer.partition(":")
    return (t or None, s or None) if sep else (t, t)


@dataclass
class _Run:
    """What the phases share: the options, the teacher and its data split, the student and its input."""

    cfg: DistillConfig
    t_ckpt: Checkpoint
    bundle: DataBundle
    device: torch.device
    output: Path
    progress: bool
    spec: dict[str, Any]
    terms: list[tuple[LossTerm, float]]
    teach: _Teacher | None = None
    t_dim: int | None = None
    model: nn.Module | None = None
    base: Checkpoint | None = None
    s_tap: FeatureTap | None = None
    cache_path: Path | None = None
    cached: tuple[torch.Tensor, torch.Tensor] | None = None
    projector: LSHProjector | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def classify(self) -> bool:
        return get_task(self.t_ckpt.task).class_labels

    @property
    def label_task(self) -> LabelTask | None:
        return get_task(self.t_ckpt.task).settings(self.t_ckpt.extra)

    @property
    def size(self) -> int:
        return int(self.spec["shape"][-1])

    @property
    def features(self) -> bool:
        return any(t.features for t, _ in self.terms)


def distill(teacher: str | Path | Checkpoint, student: str | Path | Checkpoint, data: str | DataBundle | None,
            output: str | Path, *, config: DistillConfig | None = None, force: bool = False, progress: bool = True,
            **options: Any) -> Checkpoint:
    """Distil ``teacher`` (checkpoint) into ``student`` (registry name or checkpoint); returns the student.

    ``options`` are the fields of :class:`~edgekit.compress.distill_config.DistillConfig`
    (``method="kd"``, ``epochs=10``, ``alpha``, ``beta``, ``precise_bn``, ...), or pass a
    ``config``; see the module docstring for which method wins where. ``data`` None is
    the teacher's own dataset, split as its training split it. The checkpoint is written
    atomically after every epoch; training log in ``OUTPUT.metrics.jsonl``.
    """
    cfg = config if config is not None else DistillConfig.from_options(options, "distill")
    inputs = [teacher, student, data_input(data)]
    output = check_writable(output, force, kind=KIND, inputs=inputs)
    if cfg.cache_teacher:  # rewritten whenever its key changes: only ever over a teacher cache
        cache = output_cache(output) if cfg.cache_teacher is True else cfg.cache_teacher
        check_writable(cache, True, kind=TEACHER_CACHE_KIND, inputs=[*inputs, output])
    run = _open(teacher, data, output, cfg, progress)
    _models(run, student)
    loaders = _loaders(run)
    t0 = time.perf_counter()
    _teacher_targets(run, loaders["fixed"])
    run.info["setup_seconds"] = time.perf_counter() - t0
    try:
        child = _train(run, loaders)
    finally:
        for tap in (run.s_tap, run.teach.tap if run.teach is not None else None):
            if tap is not None:
                tap.close()
    if run.cache_path is not None and cfg.cache_teacher is True:
        run.cache_path.unlink(missing_ok=True)  # a temporary of this run; a named cache path is kept
    return child


def _open(teacher: str | Path | Checkpoint, data: str | DataBundle | None, output: Path, cfg: DistillConfig,
          progress: bool) -> _Run:
    """The teacher, its own split (validation images never trained on, by it or the student), the student input."""
    from .temporal import check_prunable_arch

    t_ckpt = teacher if isinstance(teacher, Checkpoint) else load_checkpoint(teacher)
    check_prunable_arch(t_ckpt.arch)
    classify = get_task(t_ckpt.task).class_labels
    label_task = get_task(t_ckpt.task).settings(t_ckpt.extra)
    if get_task(t_ckpt.task).settings_key and label_task is None:
        raise EdgekitError("the teacher's checkpoint does not record its label-distribution task (extra "
                           f"{LabelTask.KEY!r}); retrain it with edgekit train --task label_distribution")
    terms = weighted_terms(cfg.parts, {"alpha": cfg.alpha, "beta": cfg.beta})
    for term, _ in terms:
        if term.softmax and not (classify or (label_task is not None and label_task.has_distribution)):
            feats = ", ".join(n for n, t in TERMS.items() if t.features)
            what = "one-output (--loss l1) label_distribution" if label_task is not None else t_ckpt.task
            raise EdgekitError(f"a {what} teacher has no softmax to distil with {term.name}; use {feats}")
    if not classify and label_task is None and not terms:
        raise EdgekitError("method 'none' needs a classification teacher; use l2, lsh or lshl2")
    bundle = data if isinstance(data, DataBundle) else t_ckpt.load_data(data)
    if not get_task(t_ckpt.task).accepts_data(bundle.task):
        raise EdgekitError(f"data {bundle.spec!r} is a {bundle.task} set but the teacher is a {t_ckpt.task} model")
    if classify and len(bundle.labels) != t_ckpt.num_outputs:
        raise EdgekitError(f"data has {len(bundle.labels)} classes, the teacher {t_ckpt.num_outputs}")
    require_classes(bundle, "distillation")
    device = resolve_device(cfg.device)
    seed_everything(cfg.seed)
    t_spec = t_ckpt.input_spec or make_input_spec(bundle.default_input)
    size = cfg.input_size if cfg.input_size is not None else int(t_spec["shape"][-1])
    spec = dict(t_spec) if size == int(t_spec["shape"][-1]) else make_input_spec(
        size, mean=t_spec["mean"], std=t_spec["std"], crop_ratio=None if size <= 64 else 0.875,
        frames=t_spec.get("frames"))
    return _Run(cfg, t_ckpt, bundle, device, output, progress, spec, terms)


def _models(run: _Run, student: str | Path | Checkpoint) -> None:
    """The frozen teacher (when a term needs it) and the trainable student, with a connector if sizes differ."""
    t_layer, s_layer = _split_layer(run.cfg.feature_layer)
    t_size = int((run.t_ckpt.input_spec or run.spec)["shape"][-1])
    frames = run.spec.get("frames")
    if run.terms:
        run.teach = _Teacher(copy.deepcopy(run.t_ckpt.model).to(run.device), t_size, run.size, t_layer, frames)
        run.t_dim = feature_dim(run.teach.model, run.teach.shape, t_layer)
    shape = _shape(run.size, frames)
    # a regressor's student always matches the teacher's feature size, so it can start from its head
    regressor = not run.classify and run.label_task is None
    model, base = _build_student(student, run.t_ckpt, run.size,
                                 run.t_dim if run.features or regressor else None, s_layer, run.cfg.shift)
    base.input_spec = run.spec
    run.model, run.base = model.to(run.device), base
    run.s_tap = FeatureTap(model, shape, s_layer) if run.features else None
    if regressor or (run.label_task is not None and run.features):
        _copy_head(run.teach, model, shape)


def _loaders(run: _Run) -> dict[str, Any]:
    """Training (augmented, or fixed inputs when the teacher is cached; indexed), validation, fixed-order train."""
    cfg, bundle = run.cfg, run.bundle
    if cfg.cache_teacher and run.teach is not None:
        run.cache_path = output_cache(run.output) if cfg.cache_teacher is True else Path(cfg.cache_teacher)
    if cfg.augment and run.cache_path:
        raise EdgekitError("cached teacher outputs are for un-augmented images; drop augment or the cache")
    augment = not run.cache_path if cfg.augment is None else cfg.augment
    run.info["augment"] = augment
    aug = "standard" if bundle.flip_invariant else "no_flip"
    tf = train_transform(run.spec, aug) if augment else eval_transform(run.spec)
    bs = cfg.batch_size
    train = torch.utils.data.DataLoader(_Indexed(Transformed(bundle.train, tf, _target_fn(bundle.task))),
                                        batch_size=bs, shuffle=True, num_workers=cfg.workers,
                                        drop_last=len(bundle.train) > bs, persistent_workers=cfg.workers > 0)
    return {"train": train, "val": bundle.loader("val", eval_transform(run.spec), max(bs, 128), workers=cfg.workers),
            "fixed": bundle.loader("train", eval_transform(run.spec), max(bs, 128), workers=cfg.workers),
            "bn": bn_loader(bundle, run.spec, bs, cfg.workers)}


def _is_teacher_cache(path: Path) -> bool:
    """Whether ``path`` holds cached teacher outputs (``key``, ``features``, ``outputs``), never a checkpoint."""
    if is_edgekit_checkpoint(path):
        return False
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # not a torch file
        return False
    return isinstance(obj, dict) and set(obj) == {"key", "features", "outputs"}


TEACHER_CACHE_KIND = Kind("an edgekit teacher-output cache", _is_teacher_cache)


def output_cache(output: Path) -> Path:
    """Where ``cache_teacher=True`` keeps the teacher's outputs while the run lasts."""
    return output.with_name(output.name + ".teacher-cache.pt")


def _teacher_targets(run: _Run, fixed_loader: Any) -> None:
    """The teacher's cached outputs (when asked) and the LSH hyperplanes with their bias (when a term needs them)."""
    cfg, teach = run.cfg, run.teach
    if teach is None:
        return
    t_layer = _split_layer(cfg.feature_layer)[0]
    if run.cache_path is not None:
        run.cached = _load_or_compute_cache(run.cache_path, _cache_key(run.t_ckpt, run.bundle, run.spec, t_layer),
                                            lambda: teacher_outputs(teach, fixed_loader, run.device))
    if any(t.projector for t, _ in run.terms):
        assert run.t_dim is not None
        run.projector = LSHProjector(run.t_dim, cfg.hash_num, _classifier_std(teach), seed=cfg.seed).to(run.device)
        if cfg.bias != "0":
            feats = run.cached[0] if run.cached is not None else _bias_sample(teach, fixed_loader, run.device)
            run.projector.fit_bias(feats.to(run.device), cfg.bias)


def _train(run: _Run, loaders: dict[str, Any]) -> Checkpoint:
    """Train the student with the shared engine (precise BN at the end); the checkpoint after every epoch."""
    cfg, model, base = run.cfg, run.model, run.base
    assert model is not None and base is not None
    teacher_val = evaluate_model(run.teach.model, _resized(loaders["val"], run.teach), run.t_ckpt.task, run.device) \
        if run.teach is not None else {}
    step = make_step(run.terms, run.teach, run.s_tap, run.projector, run.cached, cfg.temperature,
                     cfg.correct_only and run.classify, run.t_ckpt.task, run.device, label_task=run.label_task)
    weight = {opt: next((w for t, w in run.terms if t.weight_option == opt), 0.0) for opt in ("alpha", "beta")}
    meta = {"stage": "distill", "teacher": run.t_ckpt.sha256, "teacher_path": str(run.t_ckpt.path),
            "method": cfg.method, **weight, "weights": {t.name: w for t, w in run.terms},
            "temperature": cfg.temperature, "hash_num": run.projector.hash_num if run.projector else None,
            "bias": cfg.bias if run.projector else None, "feature_layer": cfg.feature_layer,
            "correct_only": cfg.correct_only, "cache_teacher": bool(run.cached), "augment": run.info["augment"],
            "data": run.bundle.spec, "seed": cfg.seed, "epochs": cfg.epochs, "precise_bn": cfg.precise_bn,
            "params": count_params(model)}
    mpath = metrics_path(run.output)
    mpath.unlink(missing_ok=True)
    out: dict[str, Checkpoint] = {}

    def save(record: dict[str, Any]) -> None:
        metrics = epoch_metrics(record)
        metrics.update({f"teacher_{k}": v for k, v in teacher_val.items() if k != "n"})
        child = base.derive(model, stage="distill", metrics=metrics, data=run.bundle.record)
        child.provenance.update(meta)
        # the lineage's original is the teacher's: speed-ups of the student are against it;
        # a student built from a registry name has no checkpoint parent, so the teacher is its parent
        teacher = run.t_ckpt.lineage
        child.provenance["root"] = {"sha256": teacher["root_sha256"], "name": teacher["root_name"]}
        if not child.provenance.get("parent"):
            child.provenance.update(parent=run.t_ckpt.sha256, parent_path=str(run.t_ckpt.path))
        child.save(run.output, force=True)
        out["c"] = child

    history = fit(model, loaders["train"], epochs=cfg.epochs, loss_fn=step, optim=cfg.optim(),
        device=run.device, val_loader=loaders["val"], task=run.t_ckpt.task, log_path=str(mpath),
        on_epoch_end=lambda e, rec, st: save(rec), progress=run.progress, desc=f"distill[{cfg.method}]",
        precise_bn_batches=cfg.precise_bn, bn_loader=loaders["bn"], saved=str(run.output))
    child = out["c"]
    child.metrics["epoch_seconds"] = sum(h["epoch_seconds"] for h in history) / len(history)
    child.metrics["setup_seconds"] = run.info["setup_seconds"]
    child.save(run.output, force=True)
    return load_checkpoint(run.output)


def _target_fn(task: str) -> Any:
    return get_task(task).target_transform()


class _resized:
    """Validation batches as the teacher sees them (its own input size)."""

    def __init__(self, loader: Any, teach: _Teacher) -> None:
        self.loader, self.teach = loader, teach

    def __iter__(self):
        for x, y in self.loader:
            yield _resize(x, self.teach.size), y


def _bias_sample(teach: _Teacher, loader: Any, device: torch.device, max_samples: int = 10000) -> torch.Tensor:
    """Teacher features over (up to ``max_samples`` of) the training set, for the LSH bias."""
    feats, n = [], 0
    with torch.no_grad():
        for x, _ in loader:
            f, _ = teach(x.to(device))
            feats.append(f.cpu())
            n += len(f)
            if n >= max_samples:
                break
    return torch.cat(feats)


def _classifier_std(teach: _Teacher) -> float:
    """Std of the teacher's final Linear weights (the LSH hyperplane scale); 1 if it has none."""
    from .features import find_classifier

    try:
        fc = teach.model.get_submodule(find_classifier(teach.model, teach.shape))
    except EdgekitError:
        log.warning("teacher has no final Linear layer; LSH hyperplanes use std 1")
        return 1.0
    return float(fc.weight.std())


def _copy_head(teach: _Teacher | None, student: nn.Module, shape: tuple[int, ...]) -> None:
    """Non-softmax teachers: start the student's final Linear as the teacher's (shapes match after the connector)."""
    from .features import find_classifier

    if teach is None:
        return
    t_fc = teach.model.get_submodule(find_classifier(teach.model, teach.shape))
    s_fc = student.get_submodule(find_classifier(student, shape))
    if isinstance(t_fc, nn.Linear) and isinstance(s_fc, nn.Linear) and t_fc.weight.shape == s_fc.weight.shape:
        with torch.no_grad():
            s_fc.weight.copy_(t_fc.weight)
            if s_fc.bias is not None and t_fc.bias is not None:
                s_fc.bias.copy_(t_fc.bias)


def make_step(terms: list[tuple[LossTerm, float]], teach: _Teacher | None, s_tap: FeatureTap | None,
              projector: LSHProjector | None, cached: tuple[torch.Tensor, torch.Tensor] | None, temperature: float,
              correct_only: bool, task: str, device: torch.device, label_task: LabelTask | None = None):
    """The StepLoss for ``fit``: the task loss (CE, L1, or ``label_task``'s loss) + the weighted
    registered terms, each term logged. Batches are ``(x, [target..., index])`` (:class:`_Indexed`).

    ``correct_only``: feature terms average over the samples the teacher gets right. Logit
    terms see :func:`~edgekit.compress.kd.soft_logits` of both outputs (a label-distribution
    model's ``log p_hat``)."""
    cache = (cached[0].to(device), cached[1].to(device)) if cached is not None else None
    features = any(t.features for t, _ in terms)
    task_loss = label_loss(label_task) if label_task is not None else None
    logits_of = soft_logits(task, label_task) if label_task is None or label_task.has_distribution else None

    def step(model: nn.Module, x: torch.Tensor, packed: torch.Tensor, epoch: int) -> StepOutput:
        idx = packed[:, -1].long()
        classify = get_task(task).class_labels
        y = packed[:, 0].long() if classify else packed[:, 0].float()
        t_feat = t_out = None
        if cache is not None:
            t_feat, t_out = cache[0][idx], cache[1][idx]
        elif teach is not None:
            t_feat, t_out = teach(x)
        logged: dict[str, float] = {}
        if task_loss is not None:
            task_out, out = task_step(task_loss, model, x, packed[:, :-1].float(), epoch)
            loss = task_out.loss
            logged.update(task_out.terms)
        else:
            out = model(x)
            loss = out.new_zeros(())
            if classify:
                ce = F.cross_entropy(out, y)
                loss = loss + ce
                logged["ce"] = float(ce.detach())
            elif out.shape[1] == 1:
                l1 = F.l1_loss(out.reshape(-1), y)
                loss = loss + l1
                logged["l1"] = float(l1.detach())
        if terms and t_out is not None:
            mask = (t_out.argmax(1) == y) if correct_only and features else None
            s_logits, t_logits = (logits_of(out), logits_of(t_out)) if logits_of is not None else (out, t_out)
            batch = TermInputs(s_logits, t_logits, s_tap.feature if s_tap is not None else None, t_feat, mask,
                               temperature, projector)
            for term, weight in terms:
                value, term_logged = term.fn(batch)
                loss = loss + weight * value
                logged.update(term_logged)
            if mask is not None:
                logged["teacher_correct"] = float(mask.float().mean())
        return StepOutput(loss, logged, out if classify else None, y if classify else None)

    return step


__all__ = ["distill", "DistillConfig", "parse_method", "DEFAULT_METHOD", "TERMS"]
