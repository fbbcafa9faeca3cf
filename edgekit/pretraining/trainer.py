"""``edgekit pretrain``: self-supervised pretraining of a registry backbone on the images of any data spec.

S3L (Cao & Wu, "Rethinking Self-Supervised Learning: Small is Beautiful", arXiv 2103.13559):
pretrain on the target data itself, at a small resolution (``input_size``), optionally with a
small architecture (``drop_last_stage``) and in stages (``from_checkpoint``: continue at a
larger size with the same heads and queue). The labels are never read by training: the
training split is wrapped so that its targets are hidden, and only the k-NN probe
(:mod:`.knn`), run after every epoch against the validation split, reads labels. The
validation split is the spec's, recorded like every stage's, so fine-tuning later opens the
same split.

The run uses the shared fit engine (:func:`edgekit.training.loop.fit`): seeded, resumable
(``resume=True`` after a kill), DDP under ``torchrun``, one JSON line per epoch in
``OUTPUT.metrics.jsonl``. The checkpoint is an ``embedding`` model (the backbone without
its classifier) that loads anywhere with ``--weights`` and exports as a feature extractor.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, DistributedSampler

from ..checkpoint import KIND, Checkpoint, load_checkpoint
from ..data import DataBundle, eval_transform, load_data, make_input_spec
from ..data.datasets import Transformed
from ..data.hidden import HiddenLabels
from ..data.transforms import is_tabular
from ..device import resolve_device
from ..errors import EdgekitError
from ..fileio import atomic_path, check_writable, data_input, output_path
from ..models.embedding import embedding_dim
from ..registry import count_params, create_model, get_entry
from ..seeding import seed_everything
from ..tasks import get_task
from ..training import distributed as dist_utils
from ..training.guards import allocation_guard, check_batch_fits, describe_batch
from ..training.loop import OptimConfig, StepOutput, fit
from ..training.precise_bn import precise_bn
from ..training.trainer import finish_run, metrics_path, read_resume, resume_path
from .config import PretrainConfig
from .knn import knn_top1
from .methods import SSLMethod, get_method, resolve_settings
from .views import FrameOrImage, TwoViews, view_transform

#: where an embedding checkpoint keeps the pretraining's method, settings and heads
EXTRA_KEY = "ssl"


def pretrain(arch: str, data: str | DataBundle, output: str | Path, *, config: PretrainConfig | None = None,
             from_checkpoint: str | Path | None = None, resume: bool = False, force: bool = False,
             progress: bool = True, **options: Any) -> Checkpoint:
    """Pretrain ``arch`` on the images of ``data`` with a self-supervised method; returns the checkpoint.

    ``options`` are the fields of :class:`~edgekit.pretraining.config.PretrainConfig` (method,
    epochs, batch_size, input_size, drop_last_stage, temperature, queue...). ``from_checkpoint``
    continues an earlier pretraining of the same architecture and method (S3L's multi-stage
    pretraining: a small input size first, then a larger one), its heads and queue included.
    """
    cfg = config if config is not None else PretrainConfig.from_options(options, "pretrain")
    state_file = resume_path(output_path(output))
    if resume and not state_file.is_file():
        raise EdgekitError(f"nothing to resume: {state_file} not found (the run finished or never started)")
    output = check_writable(output, force or resume, kind=KIND, inputs=[from_checkpoint, data_input(data)])
    parent = _parent(from_checkpoint, arch, cfg) if from_checkpoint is not None else None
    dev = resolve_device(cfg.device)
    bundle = data if isinstance(data, DataBundle) else load_data(data, seed=cfg.seed)
    _check_data(bundle, cfg)
    get_entry(arch)
    method_cls = get_method(cfg.method)
    if cfg.batch_size < method_cls.min_batch:
        raise EdgekitError(f"--batch-size {cfg.batch_size} is too small for {cfg.method}: "
                           f"{method_cls.min_batch_reason}; use at least {method_cls.min_batch}")
    if not resume:
        metrics_path(output).unlink(missing_ok=True)
    distributed = dist_utils.setup(dev)
    dev = dist_utils.local_device(dev)
    seed_everything(cfg.seed)

    kwargs, spec = backbone_inputs(arch, bundle, cfg)
    check_batch_fits(cfg.batch_size * 2, spec["shape"], dev, 2 * len(bundle.train))  # two views per image
    backbone = create_model(arch, **kwargs)
    dim = embedding_dim(backbone, tuple(spec["shape"]))
    settings = _settings(method_cls, cfg, len(bundle.train))
    flip = cfg.flip if cfg.flip is not None else bundle.flip_invariant
    sampler = DistributedSampler(HiddenLabels(bundle.train, "pretraining"), seed=cfg.seed) if distributed else None
    loader = DataLoader(Transformed(HiddenLabels(bundle.train, "pretraining"), TwoViews(view_transform(spec, flip))),
                        batch_size=cfg.batch_size, shuffle=sampler is None, sampler=sampler, drop_last=True,
                        num_workers=cfg.workers, persistent_workers=cfg.workers > 0)
    method = method_cls(backbone, dim, settings, cfg.epochs * len(loader))
    if parent is not None:
        from ..registry import load_state

        load_state(backbone, parent.state_dict)
        method.load_head_state(parent.extra[EXTRA_KEY]["heads"])
    probe = _probe(backbone, bundle, spec, cfg, dev)
    optim = OptimConfig(optimizer=cfg.optimizer, lr=cfg.lr or settings.lr * cfg.batch_size * dist_utils.world_size()
                        / settings.ref_batch, weight_decay=cfg.weight_decay if cfg.weight_decay is not None
                        else settings.weight_decay, warmup_epochs=cfg.warmup_epochs)
    resume_state = read_resume(state_file, method, output) if resume else None
    record = _ssl_record(cfg, dim, settings, flip, optim, spec, parent)
    ckpt = Checkpoint(arch=arch, arch_kwargs=kwargs, state_dict={}, task="embedding", labels=[], input_spec=spec,
                      data=bundle.record, extra={EXTRA_KEY: record},
                      provenance={"stage": "pretrain", "data": bundle.spec, "seed": cfg.seed, "epochs": cfg.epochs,
                                  "method": cfg.method, "params": count_params(backbone),
                                  **({"parent": parent.sha256, "parent_path": str(parent.path)} if parent else {})})
    initial = _initial_probe(probe, output if resume_state is not None else None)

    def on_epoch_end(epoch: int, rec: dict[str, Any], state: dict[str, Any]) -> None:
        _fill(ckpt, method, rec, initial)
        ckpt.save(output, force=True)
        if epoch + 1 < cfg.epochs:
            with atomic_path(state_file) as tmp:
                torch.save({"model": {k: v.detach().cpu() for k, v in method.state_dict().items()}, "fit": state}, tmp)

    with allocation_guard(describe_batch(cfg.batch_size * 2, spec["shape"])):
        history = fit(method, loader, epochs=cfg.epochs, loss_fn=ssl_step, optim=optim, device=dev,
                      task="embedding", log_path=str(metrics_path(output)), on_epoch_end=on_epoch_end,
                      resume_state=resume_state, progress=progress, desc=f"pretrain {cfg.method}",
                      saved=str(output), probe=probe)
    return finish_run(method, ckpt, history, output, state_file, distributed,
                      before_save=lambda: _finish(ckpt, method, bundle, spec, cfg, history, probe, initial, dev))


def _finish(ckpt: Checkpoint, method: SSLMethod, bundle: DataBundle, spec: dict[str, Any], cfg: PretrainConfig,
            history: list[dict[str, Any]], probe: Any, initial: dict[str, Any], device: torch.device) -> None:
    """The end of a run (rank 0): BatchNorm statistics re-estimated on the training images (eval
    transform), the probe run on them, the final numbers in ``ckpt`` (:func:`finish_run` adds images/s)."""
    if cfg.precise_bn:
        bn = DataLoader(Transformed(HiddenLabels(bundle.train, "pretraining"), FrameOrImage(eval_transform(spec))),
                        batch_size=cfg.batch_size, shuffle=True)
        precise_bn(method.backbone, bn, cfg.precise_bn, device)
    last = dict(history[-1]) if history else {}
    if probe is not None:
        last.update({f"val_{k}": v for k, v in probe().items()})
    _fill(ckpt, method, last, initial)
    ckpt.metrics["precise_bn"] = cfg.precise_bn


def _ssl_record(cfg: PretrainConfig, dim: int, settings: Any, flip: bool, optim: OptimConfig,
                spec: dict[str, Any], parent: Checkpoint | None) -> dict[str, Any]:
    """What an embedding checkpoint records of its pretraining (``extra["ssl"]``, heads added per epoch)."""
    earlier = (parent.extra[EXTRA_KEY].get("stages") or []) if parent else []
    return {"method": cfg.method, "dim": dim, "settings": settings.record(), "flip": flip,
            "drop_last_stage": cfg.drop_last_stage, "lr": optim.lr, "weight_decay": optim.weight_decay,
            "batch_size": cfg.batch_size, "world_size": dist_utils.world_size(),
            "shuffle_bn": "split-batch BN on every process" if cfg.method == "mocov2" else None,
            "stages": [*earlier, {"input_size": spec["shape"][-1], "epochs": cfg.epochs}]}


def ssl_step(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, epoch: int) -> StepOutput:
    """The fit engine's step for a self-supervised method: its forward is its loss."""
    loss, terms = model(x)
    return StepOutput(loss, terms)


def backbone_inputs(arch: str, bundle: DataBundle, cfg: PretrainConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """The embedding backbone's architecture kwargs and its (image) input spec."""
    entry = get_entry(arch)
    size = cfg.input_size if cfg.input_size is not None else bundle.default_input
    small_input = cfg.small_input if cfg.small_input is not None else size <= 64 and entry.default_input >= 128
    kwargs: dict[str, Any] = {**(cfg.arch_kwargs or {}), "head": "embedding"}
    if small_input:
        kwargs["small_input"] = True
    if cfg.drop_last_stage:
        kwargs["drop_last_stage"] = True
    return kwargs, make_input_spec(size, crop_ratio=None if size <= 64 else 0.875)


def _check_data(bundle: DataBundle, cfg: PretrainConfig) -> None:
    if bundle.input_spec is not None and is_tabular(bundle.input_spec):
        raise EdgekitError(f"{bundle.spec} holds feature vectors; pretraining takes images or clips")
    if len(bundle.train) == 0:
        raise EdgekitError(f"{bundle.spec} has no training images to pretrain on")
    if len(bundle.train) < cfg.batch_size * dist_utils.world_size():
        raise EdgekitError(f"{bundle.spec} has {len(bundle.train)} training images, fewer than one batch of "
                           f"{cfg.batch_size}; pass --batch-size {max(2, len(bundle.train))} or less")


def _settings(method_cls: type[SSLMethod], cfg: PretrainConfig, images: int) -> Any:
    settings = resolve_settings(method_cls, {"temperature": cfg.temperature, "queue": cfg.queue,
                                             "momentum_encoder": cfg.momentum_encoder, "proj_dim": cfg.proj_dim,
                                             "proj_hidden": cfg.proj_hidden})
    if settings.queue is not None and cfg.queue is None:
        from dataclasses import replace

        settings = replace(settings, queue=max(cfg.batch_size, min(settings.queue, images // 2)))
    return settings


def _parent(path: str | Path, arch: str, cfg: PretrainConfig) -> Checkpoint:
    """The checkpoint a multi-stage run continues: same architecture, method and stage layout."""
    parent = load_checkpoint(path)
    ssl = parent.extra.get(EXTRA_KEY) if isinstance(parent.extra, dict) else None
    if not get_task(parent.task).name == "embedding" or not isinstance(ssl, dict) or "heads" not in ssl:
        raise EdgekitError(f"--from {path}: not a pretraining checkpoint (task {parent.task}); "
                           "pass one written by edgekit pretrain")
    if parent.arch != arch:
        raise EdgekitError(f"--from {path} pretrained {parent.arch}, not {arch}; continue with --arch {parent.arch}")
    if ssl.get("method") != cfg.method:
        raise EdgekitError(f"--from {path} was pretrained with {ssl.get('method')}, not {cfg.method}; "
                           f"continue with --method {ssl.get('method')}")
    if bool(ssl.get("drop_last_stage")) != cfg.drop_last_stage:
        flag = "--drop-last-stage" if ssl.get("drop_last_stage") else "no --drop-last-stage"
        raise EdgekitError(f"--from {path} was pretrained with {flag}; continue with the same backbone")
    return parent


def _probe(backbone: torch.nn.Module, bundle: DataBundle, spec: dict[str, Any], cfg: PretrainConfig,
           device: torch.device) -> Any:
    """The k-NN probe over the training split (bank) and the validation split, or None when the
    data has no class labels or no validation images."""
    if not get_task(bundle.task).class_labels or len(bundle.val) == 0:
        return None
    transform = FrameOrImage(eval_transform(spec))
    target = get_task(bundle.task).target_transform()
    bank = DataLoader(Transformed(bundle.train, transform, target), batch_size=256)
    val = DataLoader(Transformed(bundle.val, transform, target), batch_size=256)

    def run() -> dict[str, Any]:
        return {"knn_top1": knn_top1(backbone, bank, val, len(bundle.labels), cfg.knn_k, cfg.knn_temperature,
                                     device)}

    return run


def _initial_probe(probe: Any, resumed: Path | None) -> dict[str, Any]:
    """The probe of the backbone before training (random or ``--from`` weights): measured now, or,
    when a run resumes, read back from the checkpoint its first epochs wrote."""
    if resumed is not None:
        written = load_checkpoint(resumed).metrics if resumed.is_file() else {}
        return {k[len("init_"):]: v for k, v in written.items() if k.startswith("init_")}
    return probe() if dist_utils.is_main() and probe is not None else {}


def _fill(ckpt: Checkpoint, method: SSLMethod, record: dict[str, Any], initial: dict[str, Any]) -> None:
    """Put the backbone's weights, the heads and the epoch's numbers into ``ckpt``."""
    ckpt.state_dict = {k: v.detach().cpu().clone() for k, v in method.backbone.state_dict().items()}
    ckpt.extra[EXTRA_KEY]["heads"] = method.head_state()
    ckpt.metrics = {k: v for k, v in record.items() if k.startswith("val_") or k in ("epoch", "loss")}
    ckpt.metrics.update({f"init_{k}": v for k, v in initial.items()})
