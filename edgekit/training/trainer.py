"""``edgekit train``: train a registry architecture on a data spec into a checkpoint.

Seeded, resumable (``--resume`` continues after a kill from the per-epoch resume
state), DDP-aware under ``torchrun``. The checkpoint is rewritten atomically after
every epoch, so a killed run leaves the last complete epoch on disk.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch.utils.data import DistributedSampler

from ..checkpoint import KIND, Checkpoint, load_checkpoint
from ..data import DataBundle, eval_transform, load_data, make_input_spec, train_transform
from ..data.transforms import is_tabular
from ..device import resolve_device
from ..errors import EdgekitError
from ..models.dldl import HEADS
from ..models.tabular import takes_features
from ..fileio import atomic_path, check_writable, data_input, output_path
from ..pretrained import Weights
from ..registry import count_params, create_model, get_entry, load_state, load_weights, resolve_weights
from ..seeding import seed_everything
from ..tasks import get_task
from . import distributed as dist_utils
from .config import TrainConfig
from .guards import allocation_guard, check_batch_fits, describe_batch, require_classes
from .label_distribution import LabelTask
from .loop import fit
from .semi import get_regime, run_phases
from .semi.setup import semi_run, unlabelled_pool
from .warmup import fresh_parameters, warmup_frozen
from .mix import Mixer
from .precise_bn import bn_loader


def resume_path(output: str | Path) -> Path:
    """Where the resumable training state lives while a run is unfinished (removed when it finishes)."""
    output = Path(output)
    return output.with_name(output.name + ".resume")


def metrics_path(output: str | Path) -> Path:
    output = Path(output)
    return output.with_name(output.name + ".metrics.jsonl")


def train(arch: str, data: str | DataBundle, output: str | Path, *, config: TrainConfig | None = None,
          resume: bool = False, force: bool = False, progress: bool = True, **options: Any) -> Checkpoint:
    """Train ``arch`` on ``data`` and write the checkpoint to ``output``; returns it.

    ``options`` are the fields of :class:`~edgekit.training.config.TrainConfig` (epochs,
    batch_size, lr, precise_bn, ...), or pass a ``config``. The checkpoint is rewritten
    atomically after every epoch and ``OUTPUT.resume`` holds the optimizer state for
    ``resume=True``; a finished run removes it, leaving the checkpoint and its
    ``OUTPUT.metrics.jsonl`` log. BatchNorm statistics are re-estimated at the end
    (``precise_bn`` batches, 0 disables; see :mod:`edgekit.training.precise_bn`).
    """
    cfg = config if config is not None else TrainConfig.from_options(options, "train")
    state_file = resume_path(output_path(output))
    if resume and not state_file.is_file():
        raise EdgekitError(f"nothing to resume: {state_file} not found (the run finished or never started)")
    # before the first epoch: a bad output path is one line now, not after an epoch's work
    output = check_writable(output, force or resume, kind=KIND, inputs=[cfg.weights, data_input(data)])
    dev = resolve_device(cfg.device)
    # a file, or torchvision weights by name: a bad name, or uncached weights offline, fail before the data loads
    weights = resolve_weights(cfg.weights, arch) if cfg.weights is not None else None
    full = data if isinstance(data, DataBundle) else load_data(data, seed=cfg.seed)
    bundle = full.labeled(cfg.labeled_fraction, cfg.seed)  # recorded: later stages see the same labels
    regime = get_regime(cfg.semi)
    pool, pool_record = unlabelled_pool(full, cfg) if regime.uses_pool else (None, {})
    require_classes(bundle, "training")
    get_entry(arch)  # an unknown architecture fails before anything is written
    if not resume and metrics_path(output).exists():
        metrics_path(output).unlink()
    distributed = dist_utils.setup(dev)
    dev = dist_utils.local_device(dev)
    seed_everything(cfg.seed)

    label_task = label_task_for(cfg, bundle)
    kwargs, spec = model_inputs(arch, bundle, cfg, label_task, weights)
    check_batch_fits(cfg.batch_size, spec["shape"], dev, len(bundle.train))
    check_batch_fits(max(cfg.batch_size, 128), spec["shape"], dev, len(bundle.val))  # the validation loader's
    model, loaded = _build(arch, kwargs, weights, cfg, progress and dist_utils.is_main())

    aug, loader, val_loader = _loaders(bundle, spec, cfg, distributed)
    task = get_task(bundle.task).model_task(label_task)
    mixer = _mixer(cfg)
    loss_fn = get_task(task).loss(mixer=mixer, label_smoothing=cfg.label_smoothing, epochs=cfg.epochs,
                                  label_task=label_task)
    optim = cfg.optim()

    resume_state = read_resume(state_file, model, output) if resume else None
    if resume_state is not None and ("semi" in resume_state) != (pool is not None):
        raise EdgekitError(f"cannot resume from {state_file}: it is a run of another --semi regime")
    ckpt = Checkpoint(arch=arch, arch_kwargs=kwargs, state_dict={}, task=task, labels=bundle.labels,
                      input_spec=spec, data=bundle.record,
                      extra={LabelTask.KEY: label_task.record()} if label_task else {},
                      provenance={"stage": "train", "data": bundle.spec, "seed": cfg.seed, "epochs": cfg.epochs,
                                  "optimizer": cfg.optimizer, "lr_schedule": optim.record(cfg.epochs),
                                  "mix": cfg.mix, "mixer": mixer.record() if mixer else None,
                                  "precise_bn": cfg.precise_bn,
                                  "world_size": dist_utils.world_size(), "params": count_params(model),
                                  **({} if weights is None else {"weights": weights.record(loaded)})})

    def on_epoch_end(epoch: int, record: dict[str, Any], state: dict[str, Any] | None) -> None:
        ckpt.state_dict = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        ckpt.metrics = epoch_metrics(record)
        if pool is not None:
            ckpt.extra["semi"] = {"regime": cfg.semi, **pool_record, **regime.record()}
        ckpt.save(output, force=True)
        resumable = _resume_record(state, pool is not None, epoch + 1 < cfg.epochs)
        if resumable is not None:
            with atomic_path(state_file) as tmp:
                torch.save({"model": ckpt.state_dict, **resumable}, tmp)

    common = dict(val_loader=val_loader, task=task, log_path=str(metrics_path(output)), on_epoch_end=on_epoch_end,
                  progress=progress, precise_bn_batches=cfg.precise_bn, saved=str(output),
                  bn_loader=bn_loader(bundle, spec, cfg.batch_size, cfg.workers))
    with allocation_guard(describe_batch(cfg.batch_size, spec["shape"])):
        if pool is not None:
            run = semi_run(model, bundle, pool, cfg, train_transform(spec, aug), eval_transform(spec), optim, dev)
            semi_state = None if resume_state is None else {"fit": resume_state.get("fit"), **resume_state["semi"]}
            history = run_phases(regime, run, resume_state=semi_state, **common)
        else:
            if cfg.warmup_frozen and resume_state is None and loaded is not None:
                ckpt.provenance["warmup_frozen"] = warmup_frozen(
                    model, fresh_parameters(model, loaded), cfg.warmup_frozen, loader=loader, loss_fn=loss_fn,
                    optim=optim, device=dev, val_loader=val_loader, task=task, progress=progress)
            history = fit(model, loader, epochs=cfg.epochs, loss_fn=loss_fn, optim=optim, device=dev,
                          resume_state=resume_state, **common)
    return finish_run(model, ckpt, history, output, state_file, distributed)


def _loaders(bundle: DataBundle, spec: dict[str, Any], cfg: TrainConfig, distributed: bool) -> tuple[str, Any, Any]:
    """The augmentation preset (no flips for data a mirror changes), the training and validation loaders."""
    sampler = DistributedSampler(_Len(len(bundle.train)), seed=cfg.seed) if distributed else None
    aug = "no_flip" if not bundle.flip_invariant and cfg.augment == "standard" else cfg.augment
    loader = bundle.loader("train", train_transform(spec, aug), cfg.batch_size, shuffle=True, workers=cfg.workers,
                           sampler=sampler, drop_last=len(bundle.train) > cfg.batch_size)
    return aug, loader, bundle.loader("val", eval_transform(spec), max(cfg.batch_size, 128), workers=cfg.workers)


def _build(arch: str, kwargs: dict[str, Any], weights: Any, cfg: TrainConfig,
           progress: bool) -> tuple[torch.nn.Module, dict[str, list[str]] | None]:
    """The model, with its starting weights loaded (and what of them loaded, for the record)."""
    model = create_model(arch, **kwargs)
    loaded = None if weights is None else load_weights(model, weights, arch, progress=progress)
    if cfg.warmup_frozen and loaded is None:
        raise EdgekitError("--warmup-frozen trains the layers that pretrained --weights lack; pass --weights")
    return model, loaded


def _mixer(cfg: TrainConfig) -> Mixer | None:
    """The run's image mixing (``--mix``; alpha 0.5, CutMix 1.0 unless given), or None."""
    if cfg.mix == "none":
        return None
    return Mixer(cfg.mix, cfg.mix_alpha if cfg.mix_alpha is not None else (1.0 if "cutmix" in cfg.mix else 0.5), cfg.seed)


def _resume_record(state: dict[str, Any] | None, semi: bool, more: bool) -> dict[str, Any] | None:
    """What the resume file keeps besides the weights, or None when nothing is left to resume: the
    fit state, and for a semi-supervised run its phase and the regime's state (pseudo-labels)."""
    if semi:
        return None if state is None else {"fit": state["fit"], "semi": {"phase": state["phase"],
                                                                          "regime": state["regime"]}}
    return {"fit": state} if more else None


def finish_run(model: torch.nn.Module, ckpt: Checkpoint, history: list[dict[str, Any]], output: Path,
               state_file: Path, distributed: bool, before_save: Callable[[], None] | None = None) -> Checkpoint:
    """The last save of a run (``before_save`` on rank 0 first, then images/s and DDP agreement), the
    resume file removed, the process group left, the checkpoint read back. Shared by train and pretrain."""
    agree = dist_utils.params_agree(model)
    if dist_utils.is_main():
        if before_save is not None:
            before_save()
        ckpt.metrics["images_per_s"] = float(np.median([h["images_per_s"] for h in history])) if history else None
        if distributed:
            ckpt.metrics["ddp"] = {"world_size": dist_utils.world_size(), "ranks_agree": agree}
        ckpt.save(output, force=True)
        state_file.unlink(missing_ok=True)
    dist_utils.barrier()
    dist_utils.cleanup()
    return load_checkpoint(output)


def read_resume(state_file: Path, model: torch.nn.Module, output: Path) -> dict[str, Any]:
    """Load ``state_file`` (written by :func:`train` after every epoch but the last) into
    ``model``; returns the fit state to continue from. A truncated, foreign or non-finite
    resume file is one line naming the last good checkpoint (``output``, rewritten after
    every finished epoch) instead of a traceback from the unpickler."""
    keys = ("optimizer", "scheduler", "rng", "epoch")
    try:
        saved = torch.load(state_file, map_location="cpu", weights_only=True)
        semi = isinstance(saved, dict) and isinstance(saved.get("semi"), dict)  # between two phases there is no fit state
        if not (isinstance(saved, dict) and isinstance(saved.get("model"), dict)
                and (isinstance(saved.get("fit"), dict) and all(k in saved["fit"] for k in keys)
                     or semi and saved.get("fit") is None)):
            raise ValueError("not a training resume file (no model and fit state)")
        if not all(bool(torch.isfinite(t).all()) for t in saved["model"].values()
                   if isinstance(t, torch.Tensor) and t.is_floating_point()):
            raise ValueError("its weights are not finite numbers")
        load_state(model, saved["model"])  # keeps state-dict versions (torchvision's MNASNet needs them)
    except Exception as exc:  # noqa: BLE001 - any unreadable resume file is the same user error
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0].split(". ")[0]
        last = (f"the last good checkpoint is {output}; continue from its weights with --weights {output} "
                "--force" if output.is_file() else "no checkpoint was written; train again without --resume")
        raise EdgekitError(f"cannot resume from {state_file}: it is truncated or damaged ({first}); {last}") from None
    return {"fit": saved["fit"], "semi": saved["semi"]} if semi else saved["fit"]


def label_task_for(cfg: TrainConfig, bundle: DataBundle) -> LabelTask | None:
    """The label-distribution task this run trains, or ``None`` for classification and plain regression.

    The task is ``cfg.task`` if given, else implied by a ``dldl``/``ranking`` head, else the
    data's own (a CSV with sigmas, the ordinal generator). The label range defaults to the
    data's suggestion; the loss to the head's (ranking) or DLDL-v2's KL + lambda L1; flip
    averaging at test time to on, unless the augmentation leaves flips out (the data's
    labels change under a flip)."""
    head = (cfg.arch_kwargs or {}).get("head")
    task = cfg.task or ("label_distribution" if head in HEADS else None) or \
        (bundle.task if get_task(bundle.task).settings_key else None)
    if task is None or not get_task(task).settings_key:
        for name in ("label_range", "sigma", "loss"):
            if getattr(cfg, name) is not None:
                raise EdgekitError(f"--{name.replace('_', '-')} belongs to --task label_distribution")
        if task and get_task(task).class_labels and not get_task(task).accepts_data(bundle.task):
            raise EdgekitError(f"{bundle.spec} has numeric targets; use --task regression or label_distribution")
        if task and not get_task(task).class_labels and get_task(bundle.task).class_labels:
            raise EdgekitError(f"{bundle.spec} has class labels; it trains with --task classify")
        return None
    if get_task(bundle.task).class_labels:
        raise EdgekitError(f"{bundle.spec} has class labels; --task label_distribution needs numeric labels "
                           "(csv:PATH or ordinal)")
    if cfg.mix != "none":
        raise EdgekitError(f"--mix {cfg.mix} mixes class labels; label-distribution training takes --mix none")
    label_range = cfg.label_range or bundle.info.get("label_range")
    if not label_range:
        raise EdgekitError("--task label_distribution needs --label-range lo:hi:step (e.g. 0:100:1)")
    loss = cfg.loss or {"ranking": "ranking", "regression": "l1"}.get(str(head), "dldl")
    if head not in (None, "fc") and head != LabelTask(str(label_range), loss).head:
        raise EdgekitError(f"--loss {loss} trains a {LabelTask(str(label_range), loss).head} head, not --head {head}")
    flip = cfg.flip_test if cfg.flip_test is not None else \
        "no_flip" not in cfg.augment and bool(bundle.info.get("flip_invariant", True))
    return LabelTask(str(label_range), loss, cfg.dldl_lambda, cfg.sigma, flip)


def model_inputs(arch: str, bundle: DataBundle, cfg: TrainConfig, label_task: LabelTask | None = None,
                 weights: Weights | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The architecture kwargs and input spec for training ``arch`` on ``bundle``.

    Images: the spec from the input size (``cfg.input_size``, else the data's), small-input
    stems for ImageNet nets on small images, and the normalisation of torchvision ``weights``
    when the model starts from them (their ``transforms()``' mean and std; ImageNet's otherwise). Tabular data fixes its own spec (features and
    the training split's standardisation), which a tabular net (one whose factory takes
    ``in_features``) receives as ``in_features``, ``mean`` and ``std``."""
    entry = get_entry(arch)
    kwargs: dict[str, Any] = {"num_classes": len(bundle.labels) if get_task(bundle.task).class_labels else 1}
    tabular_net = takes_features(entry.factory)
    if bundle.input_spec is not None and is_tabular(bundle.input_spec):
        if not tabular_net:
            raise EdgekitError(f"{bundle.spec} holds feature vectors and {arch} takes images; "
                               "use a tabular architecture (nfl_tabular, mlp_tabular)")
        if "cutmix" in cfg.mix:
            raise EdgekitError(f"--mix {cfg.mix} cuts image patches; {bundle.spec} holds feature vectors "
                               "(use none, mixup or mwh)")
        spec = bundle.input_spec
        kwargs.update(in_features=spec["shape"][0], mean=spec["mean"], std=spec["std"])
        return {**kwargs, **(cfg.arch_kwargs or {})}, spec
    if tabular_net:
        raise EdgekitError(f"{arch} takes feature vectors and {bundle.spec} holds images; "
                           "use tabular:PATH.csv or sklearn:NAME data")
    kwargs.update(cfg.arch_kwargs or {})
    frames = clip_inputs(arch, bundle, cfg, kwargs)
    if label_task is not None:
        kwargs = {k: v for k, v in kwargs.items() if k != "head"} | label_task.arch_kwargs()
    size = cfg.input_size if cfg.input_size is not None else bundle.default_input
    small_input = cfg.small_input if cfg.small_input is not None else size <= 64 and entry.default_input >= 128
    if small_input:
        kwargs["small_input"] = True
    return kwargs, make_input_spec(size, crop_ratio=None if size <= 64 else 0.875, frames=frames,
                                   **(weights.normalization() if weights is not None else {}))


def clip_inputs(arch: str, bundle: DataBundle, cfg: TrainConfig, kwargs: dict[str, Any]) -> int | None:
    """Frames per clip sample for a clip architecture on clip data (None for images), with
    ``frames`` and ``shift`` put into ``kwargs``; a clip architecture on images, an image
    architecture on clips, or ``--frames``/``--shift`` where they mean nothing is one line.

    ``frames`` is ``cfg.frames``, else the data's suggestion (``info["frames"]``), else
    TSM's 8 segments. The online TSM is the streaming form of a causal ``tsm_``: it runs
    one frame per call and is not trained itself."""
    from ..data.clips import DEFAULT_FRAMES
    from ..models.temporal import is_clip_arch

    clips = get_task(bundle.task).clips
    if not clips:
        if is_clip_arch(arch):
            raise EdgekitError(f"{arch} classifies clips and {bundle.spec} holds images; use clip data "
                               "(gestures, jester:PATH, videofolder:PATH)")
        if cfg.frames is not None or cfg.shift is not None:
            raise EdgekitError(f"--{'frames' if cfg.frames is not None else 'shift'} is for clip architectures "
                               f"(tsn_/tsm_<backbone>) on clip data; {bundle.spec} holds images")
        return None
    if not is_clip_arch(arch):
        raise EdgekitError(f"{bundle.spec} holds clips and {arch} classifies images; use tsm_{arch} (temporal "
                           f"shift) or tsn_{arch} (frames averaged)")
    if arch.startswith("tsm_online_"):
        raise EdgekitError(f"{arch} runs one frame per call and is not trained; train "
                           f"tsm_{arch[len('tsm_online_'):]} --shift causal, then stream it")
    if cfg.shift is not None:
        if not arch.startswith("tsm_"):
            raise EdgekitError(f"--shift is TSM's temporal shift; {arch} has none (use tsm_{arch[len('tsn_'):]})")
        kwargs["shift"] = cfg.shift
    frames = cfg.frames or int(bundle.info.get("frames") or DEFAULT_FRAMES)
    kwargs["frames"] = frames
    return frames


def epoch_metrics(record: dict[str, Any]) -> dict[str, Any]:
    """What a checkpoint keeps of fit's epoch record: validation metrics, epoch, loss, precise BN."""
    return {k: v for k, v in record.items() if k.startswith("val_") or k in ("epoch", "loss", "precise_bn")}


class _Len:
    """A sized placeholder so DistributedSampler can shard indices without touching images."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n
