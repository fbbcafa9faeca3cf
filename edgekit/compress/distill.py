"""``edgekit distill``: train a small student from a teacher checkpoint.

Total loss ``CE(student, y) + alpha * KD_T(student, teacher) + beta * L_feat`` (methods.md
2.2), trained by the shared :func:`edgekit.training.loop.fit` engine; every term is logged
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
first epochs), so the default feature weight is beta 1. findings.md item 5 saw the same
ordering. The paper's evidence for LSH/LSHL2 (beta 5-7) is ImageNet, multi-label
classification and detection: use ``lshl2`` (or ``lshl2+kd``) with large data and long
schedules, and for teachers without a softmax (regression, label distributions), which
can only distil through features.

Teachers without a softmax: KD is unavailable; the student keeps a task loss when the
labels allow one (L1 on a single regression output) and its head starts as a copy of the
teacher's (same shape after the connector), so mimicked features feed a working head.

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
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from ..checkpoint import Checkpoint, load_checkpoint
from ..data import DataBundle, eval_transform, make_input_spec, train_transform
from ..data.datasets import Transformed
from ..errors import EdgekitError
from ..fileio import atomic_path, check_writable
from ..registry import count_params, create_model, get_entry
from ..training.loop import OptimConfig, StepOutput, fit
from ..training.metrics import evaluate_model
from ..training.trainer import metrics_path, resolve_device, seed_everything
from .features import FeatureTap, add_connector, feature_dim
from .kd import kd_loss
from .lsh import BIAS_MODES, LSHProjector, feature_mse, masked_mean

log = logging.getLogger("edgekit.distill")

METHODS = ("none", "kd", "l2", "lsh", "lshl2")
FEATURE_METHODS = ("l2", "lsh", "lshl2")
DEFAULT_METHOD = "kd"
DEFAULT_ALPHA = 1.0  # weight of KD when the method includes it
DEFAULT_BETA = 1.0  # feature weight, by edgekit's benchmark (the paper: 6 CIFAR, 5 ImageNet, 7 detection)
KD_T = 4.0


def parse_method(method: str) -> tuple[str, ...]:
    """``'lshl2+kd'`` -> ``('kd', 'lshl2')``; at most one feature term; ``none`` stands alone."""
    parts = tuple(sorted({p.strip().lower() for p in method.split("+") if p.strip()}))
    if not parts:
        raise EdgekitError("empty distillation method; use none, kd, l2, lsh, lshl2 or a '+' combination")
    for p in parts:
        if p not in METHODS:
            from ..errors import suggest

            raise suggest(p, list(METHODS), "distillation method")
    if "none" in parts and len(parts) > 1:
        raise EdgekitError("method 'none' (scratch training) cannot be combined with others")
    if sum(p in FEATURE_METHODS for p in parts) > 1:
        raise EdgekitError(f"combine at most one feature loss (l2, lsh, lshl2) in {method!r}")
    return parts


def _feature_term(parts: tuple[str, ...]) -> str | None:
    return next((p for p in parts if p in FEATURE_METHODS), None)


class _Indexed(Dataset):
    """(x, target) -> (x, [target, index]): the index finds a sample's cached teacher outputs."""

    def __init__(self, base: Dataset) -> None:
        self.base = base

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.base[i]
        y = torch.as_tensor(y)
        y = y.reshape(-1)[:1] if y.dim() else y.reshape(1)
        return x, torch.cat([y.to(torch.float64), torch.tensor([float(i)], dtype=torch.float64)])


class _Teacher:
    """The frozen teacher: eval mode, no gradient, features tapped, resized input if needed."""

    def __init__(self, model: nn.Module, size: int, student_size: int, layer: str | None) -> None:
        self.model = model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.size, self.student_size = size, student_size
        self.tap = FeatureTap(self.model, (1, 3, size, size), layer)

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.shape[-1] != self.size or x.shape[-2] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        out = self.model(x)
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
                   layer: str | None) -> tuple[nn.Module, Checkpoint]:
    """The trainable student and a base checkpoint describing it (arch, kwargs, plan)."""
    shape = (1, 3, size, size)
    if isinstance(student, Checkpoint) or Path(str(student)).is_file():
        base = student if isinstance(student, Checkpoint) else load_checkpoint(student)
        if base.num_outputs != teacher.num_outputs:
            raise EdgekitError(f"student has {base.num_outputs} outputs but the teacher {teacher.num_outputs}")
        model = copy.deepcopy(base.model)
        kwargs = dict(base.arch_kwargs)
    else:
        name = str(student)
        if name.endswith((".pt", ".pth", ".ckpt")):
            raise EdgekitError(f"student checkpoint not found: {name}")
        entry = get_entry(name)
        kwargs = {"num_classes": teacher.num_outputs}
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
    return model.train(), Checkpoint(arch=base.arch, arch_kwargs=kwargs, state_dict={}, task=teacher.task,
                                     labels=list(teacher.labels), input_spec=dict(base.input_spec),
                                     channel_plan=base.channel_plan, path=base.path)


def _split_layer(feature_layer: str | None) -> tuple[str | None, str | None]:
    """``'PATH'`` (both) or ``'TEACHER_PATH:STUDENT_PATH'``."""
    if not feature_layer:
        return None, None
    t, sep, s = feature_layer.partition(":")
    return (t or None, s or None) if sep else (t, t)


def distill(teacher: str | Path | Checkpoint, student: str | Path | Checkpoint, data: str | DataBundle | None,
            output: str | Path, *, method: str = DEFAULT_METHOD, epochs: int = 10, alpha: float | None = None,
            beta: float | None = None, input_size: int | None = None, hash_num: int | None = None,
            bias: str = "median", feature_layer: str | None = None, cache_teacher: bool | str | Path = False,
            correct_only: bool = True, temperature: float = KD_T, augment: bool | None = None,
            batch_size: int = 64, optimizer: str = "sgd", lr: float | None = None, weight_decay: float | None = None,
            warmup_epochs: float = 1.0, seed: int = 0, device: str = "auto", workers: int = 0,
            force: bool = False, progress: bool = True) -> Checkpoint:
    """Distil ``teacher`` (checkpoint) into ``student`` (registry name or checkpoint); returns the student.

    ``method``: ``none | kd | l2 | lsh | lshl2`` or a ``+`` combination (default ``kd``, see the
    module docstring for which wins where). ``alpha`` weighs KD (default 1 when used), ``beta``
    the feature term (default 1; the paper used 5-7 on large data). ``hash_num`` defaults to
    4 x the teacher's feature size; ``bias`` is ``median`` | ``mean`` | ``0``. ``feature_layer``
    overrides the penultimate feature: a module path for both models or
    ``TEACHER_PATH:STUDENT_PATH``. ``cache_teacher``
    (True or a file path) caches teacher outputs on disk and turns augmentation off; ``augment``
    (default: on unless the teacher is cached) switches training augmentation explicitly.
    The checkpoint is written atomically after every epoch; training log in
    ``OUTPUT.metrics.jsonl``.
    """
    output = Path(output)
    parts = parse_method(method)
    check_writable(output, force)
    feat_term = _feature_term(parts)
    if bias not in BIAS_MODES:
        raise EdgekitError(f"unknown LSH bias {bias!r}; expected one of {', '.join(BIAS_MODES)}")
    if epochs < 1 or batch_size < 1:
        raise EdgekitError("epochs and batch size must be positive")
    alpha = (DEFAULT_ALPHA if "kd" in parts else 0.0) if alpha is None else float(alpha)
    beta = (DEFAULT_BETA if feat_term else 0.0) if beta is None else float(beta)
    dev = resolve_device(device)
    seed_everything(seed)

    t_ckpt = teacher if isinstance(teacher, Checkpoint) else load_checkpoint(teacher)
    classify = t_ckpt.task == "classify"
    if "kd" in parts and not classify:
        raise EdgekitError(f"a {t_ckpt.task} teacher has no softmax to distil with kd; use l2, lsh or lshl2")
    if not classify and parts == ("none",):
        raise EdgekitError("method 'none' needs a classification teacher; use l2, lsh or lshl2")
    # the teacher's own split: its validation images were never trained on, by it or the student
    bundle = data if isinstance(data, DataBundle) else t_ckpt.load_data(data)
    if bundle.task != t_ckpt.task:
        raise EdgekitError(f"data {bundle.spec!r} is a {bundle.task} set but the teacher is a {t_ckpt.task} model")
    if classify and len(bundle.labels) != t_ckpt.num_outputs:
        raise EdgekitError(f"data has {len(bundle.labels)} classes, the teacher {t_ckpt.num_outputs}")

    t_spec = t_ckpt.input_spec or make_input_spec(bundle.default_input)
    t_size = int(t_spec["shape"][-1])
    size = int(input_size or t_size)
    spec = dict(t_spec) if size == t_size else make_input_spec(size, mean=t_spec["mean"], std=t_spec["std"],
                                                                crop_ratio=None if size <= 64 else 0.875)
    t_layer, s_layer = _split_layer(feature_layer)
    use_teacher = parts != ("none",)
    teach = _Teacher(copy.deepcopy(t_ckpt.model).to(dev), t_size, size, t_layer) if use_teacher else None
    t_dim = feature_dim(teach.model, (1, 3, t_size, t_size), t_layer) if teach is not None else None

    model, base = _build_student(student, t_ckpt, size, t_dim if feat_term or not classify else None, s_layer)
    base.input_spec = spec
    model.to(dev)
    s_tap = FeatureTap(model, (1, 3, size, size), s_layer) if feat_term else None
    if not classify:
        _copy_head(teach, model, (1, 3, size, size))

    # Loaders: augmented training (or fixed inputs with the cache), indexed for cache look-ups.
    cache_path = None
    if cache_teacher and use_teacher:
        cache_path = Path(cache_teacher) if not isinstance(cache_teacher, bool) else \
            output.with_name(output.name + ".teacher-cache.pt")
    aug = "no_flip" if bundle.spec.startswith("digits") else "standard"
    if augment and cache_path:
        raise EdgekitError("cached teacher outputs are for un-augmented images; drop augment or the cache")
    augment = not cache_path if augment is None else augment
    tf = train_transform(spec, aug) if augment else eval_transform(spec)
    drop_last = len(bundle.train) > batch_size
    loader = torch.utils.data.DataLoader(_Indexed(Transformed(bundle.train, tf, _target_fn(bundle.task))),
                                         batch_size=batch_size, shuffle=True, num_workers=workers,
                                         drop_last=drop_last, persistent_workers=workers > 0)
    val_loader = bundle.loader("val", eval_transform(spec), max(batch_size, 128), workers=workers)
    fixed_loader = bundle.loader("train", eval_transform(spec), max(batch_size, 128), workers=workers)

    t0 = time.perf_counter()
    cached: tuple[torch.Tensor, torch.Tensor] | None = None
    if cache_path is not None and teach is not None:
        cached = _load_or_compute_cache(cache_path, _cache_key(t_ckpt, bundle, spec, t_layer),
                                        lambda: teacher_outputs(teach, fixed_loader, dev))
    projector = None
    if feat_term in ("lsh", "lshl2"):
        assert teach is not None and t_dim is not None
        std = _classifier_std(teach)
        projector = LSHProjector(t_dim, hash_num or 4 * t_dim, std, seed=seed).to(dev)
        if bias != "0":
            feats = cached[0] if cached is not None else _bias_sample(teach, fixed_loader, dev)
            projector.fit_bias(feats.to(dev), bias)
    setup_seconds = time.perf_counter() - t0
    teacher_val = evaluate_model(teach.model, _resized(val_loader, teach), t_ckpt.task, dev) \
        if teach is not None else {}

    step = _make_step(parts, teach, s_tap, projector, cached, alpha, beta, temperature,
                      correct_only and classify, t_ckpt.task, dev)
    ckpt_meta = {"stage": "distill", "teacher": t_ckpt.sha256, "teacher_path": str(t_ckpt.path),
                 "method": "+".join(parts), "alpha": alpha, "beta": beta, "temperature": temperature,
                 "hash_num": projector.hash_num if projector else None, "bias": bias if projector else None,
                 "feature_layer": feature_layer, "correct_only": correct_only, "cache_teacher": bool(cached),
                 "augment": augment, "data": bundle.spec, "seed": seed, "epochs": epochs, "params": count_params(model)}
    mpath = metrics_path(output)
    if mpath.exists():
        mpath.unlink()
    out_ckpt: dict[str, Checkpoint] = {}

    def save(record: dict[str, Any]) -> None:
        metrics = {k: v for k, v in record.items() if k.startswith("val_") or k in ("epoch", "loss")}
        metrics.update({f"teacher_{k}": v for k, v in teacher_val.items() if k != "n"})
        child = base.derive(model, stage="distill", metrics=metrics, data=bundle.record)
        child.provenance.update(ckpt_meta)
        child.save(output, force=True)
        out_ckpt["c"] = child

    history = fit(model, loader, epochs=epochs, loss_fn=step, optim=OptimConfig(
        optimizer=optimizer, lr=lr, weight_decay=weight_decay, warmup_epochs=warmup_epochs), device=dev,
        val_loader=val_loader, task=t_ckpt.task, log_path=str(mpath),
        on_epoch_end=lambda e, rec, st: save(rec), progress=progress, desc=f"distill[{'+'.join(parts)}]")
    if s_tap is not None:
        s_tap.close()
    if teach is not None:
        teach.tap.close()
    child = out_ckpt["c"]
    child.metrics["epoch_seconds"] = sum(h["epoch_seconds"] for h in history) / len(history)
    child.metrics["setup_seconds"] = setup_seconds
    child.save(output, force=True)
    return load_checkpoint(output)


def _target_fn(task: str) -> Any:
    return None if task == "classify" else (lambda t: torch.as_tensor(t, dtype=torch.float32))


class _resized:
    """Validation batches as the teacher sees them (its own input size)."""

    def __init__(self, loader: Any, teach: _Teacher) -> None:
        self.loader, self.teach = loader, teach

    def __iter__(self):
        s = self.teach.size
        for x, y in self.loader:
            if x.shape[-1] != s:
                x = F.interpolate(x, size=(s, s), mode="bilinear", align_corners=False)
            yield x, y


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
        fc = teach.model.get_submodule(find_classifier(teach.model, (1, 3, teach.size, teach.size)))
    except EdgekitError:
        log.warning("teacher has no final Linear layer; LSH hyperplanes use std 1")
        return 1.0
    return float(fc.weight.std())


def _copy_head(teach: _Teacher | None, student: nn.Module, shape: tuple[int, ...]) -> None:
    """Non-softmax teachers: start the student's final Linear as the teacher's (shapes match after the connector)."""
    from .features import find_classifier

    if teach is None:
        return
    t_fc = teach.model.get_submodule(find_classifier(teach.model, (1, 3, teach.size, teach.size)))
    s_fc = student.get_submodule(find_classifier(student, shape))
    if isinstance(t_fc, nn.Linear) and isinstance(s_fc, nn.Linear) and t_fc.weight.shape == s_fc.weight.shape:
        with torch.no_grad():
            s_fc.weight.copy_(t_fc.weight)
            if s_fc.bias is not None and t_fc.bias is not None:
                s_fc.bias.copy_(t_fc.bias)


def _make_step(parts: tuple[str, ...], teach: _Teacher | None, s_tap: FeatureTap | None,
               projector: LSHProjector | None, cached: tuple[torch.Tensor, torch.Tensor] | None, alpha: float,
               beta: float, temperature: float, correct_only: bool, task: str, device: torch.device):
    """The StepLoss for ``fit``: CE (or L1) + alpha KD + beta feature term, each term logged."""
    feat_term = _feature_term(parts)
    cache = (cached[0].to(device), cached[1].to(device)) if cached is not None else None

    def step(model: nn.Module, x: torch.Tensor, packed: torch.Tensor, epoch: int) -> StepOutput:
        idx = packed[:, 1].long()
        y = packed[:, 0].long() if task == "classify" else packed[:, 0].float()
        t_feat = t_out = None
        if cache is not None:
            t_feat, t_out = cache[0][idx], cache[1][idx]
        elif teach is not None:
            t_feat, t_out = teach(x)
        out = model(x)
        terms: dict[str, float] = {}
        loss = out.new_zeros(())
        if task == "classify":
            ce = F.cross_entropy(out, y)
            loss = loss + ce
            terms["ce"] = float(ce.detach())
        elif out.shape[1] == 1:
            l1 = F.l1_loss(out.reshape(-1), y)
            loss = loss + l1
            terms["l1"] = float(l1.detach())
        if "kd" in parts and t_out is not None:
            kd = kd_loss(out, t_out, temperature)
            loss = loss + alpha * kd
            terms["kd"] = float(kd.detach())
        if feat_term and s_tap is not None and t_feat is not None:
            s_feat = s_tap.feature
            assert s_feat is not None
            mask = (t_out.argmax(1) == y) if correct_only and t_out is not None else None
            per = torch.zeros_like(s_feat[:, 0], dtype=torch.float32)
            if feat_term in ("l2", "lshl2"):
                mse = feature_mse(s_feat.float(), t_feat)
                per = per + mse
                terms["l2"] = float(masked_mean(mse.detach(), mask))
            if feat_term in ("lsh", "lshl2"):
                assert projector is not None
                bce = projector.loss(s_feat.float(), t_feat)
                per = per + bce
                terms["lsh"] = float(masked_mean(bce.detach(), mask))
            feat = masked_mean(per, mask)
            loss = loss + beta * feat
            if mask is not None:
                terms["teacher_correct"] = float(mask.float().mean())
        return StepOutput(loss, terms, out if task == "classify" else None, y if task == "classify" else None)

    return step


__all__ = ["distill", "parse_method", "METHODS", "DEFAULT_METHOD"]
