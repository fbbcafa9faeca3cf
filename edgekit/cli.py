"""The ``edgekit`` command line: one small command per stage over the library API.

Each command parses its options, calls the library function of the same name and
prints the result. Every :class:`~edgekit.errors.EdgekitError` becomes one line on
stderr and exit status 2; nothing here holds logic of its own. Whatever else escapes a command
(an OSError, MemoryError, Ctrl-C, a bug) is one line too (:func:`_fail`), never a traceback unless
``-v`` or ``EDGEKIT_DEBUG=1`` asks for it.
"""
from __future__ import annotations

import functools
import json
import logging
import os
import sys
from typing import Any, Callable, NoReturn

import click

from .benchmark.config import BenchConfig
from .compress.distill_config import BIAS_MODES, DistillConfig
from .demo.config import HTTP_PORT, HTTPS_PORT, DemoConfig
from .compress.prune_config import DEFAULT_FISHER_STEPS, EXACT_PRECISIONS, RANKS, RECIPES, SCORINGS, PruneConfig
from .errors import EdgekitError
from .evaluation.config import SPLITS, EvalConfig
from .exporters.config import DEFAULT_OPSET, SAMPLE_IMAGES, STREAM_CLIPS, ExportConfig
from .formats import PRECISIONS
from .numbers import FRACTION, NON_NEGATIVE_FLOAT, NON_NEGATIVE_INT, POSITIVE_FLOAT, POSITIVE_INT, UNIT_INTERVAL
from .numbers import CLICK_TYPES, EPOCHS, EPOCHS_OR_ZERO, MILESTONES, OPEN_FRACTION, fraction
from .optimization.budget import BUDGET
from .optimization.config import RATIOS, OptimizeConfig
from .optimization.plan import RECOVERIES
from .pretraining.config import SSL_METHODS, PretrainConfig
from .stage_config import LR_SCHEDULES, SEMI_MODES, STEP_MILESTONES, RunConfig, default
from .training.config import AUGMENTS, LABEL_LOSSES, MIX_MODES, OPTIMIZERS, SHIFTS, TrainConfig


_DEBUG_ENV = "EDGEKIT_DEBUG"
_debug = False  # set by ``-v`` for the invocation under way (reset by each call of the group's main)


def _debug_requested() -> bool:
    """Whether a failure may show its traceback: ``edgekit -v`` or ``EDGEKIT_DEBUG`` set (not 0/empty)."""
    return _debug or os.environ.get(_DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


def _fail(exc: BaseException) -> NoReturn:
    """Report any exception that escaped a command as one stderr line and exit; the backstop under
    every command, so that no input, however bad, ends in a traceback (unless debugging asks for it).

    :class:`EdgekitError` (the user's input) exits 2 with its message. An :class:`OSError` (permission
    denied, is a directory, not a directory, disk full) exits 2 naming its path(s), because a bad
    path is the user's input too. Out of memory exits 1. Ctrl-C exits 130. Anything else is a bug
    of edgekit: one line saying so, exit 1, and ``-v``/``EDGEKIT_DEBUG=1`` re-raise it for the traceback.
    """
    if isinstance(exc, EdgekitError):
        click.echo(f"edgekit: error: {exc}", err=True)
        sys.exit(2)
    if isinstance(exc, (KeyboardInterrupt, click.exceptions.Abort)):
        click.echo("edgekit: interrupted", err=True)
        sys.exit(130)
    if _debug_requested():
        raise exc
    if isinstance(exc, OSError):
        paths = " -> ".join(str(f) for f in (exc.filename, exc.filename2) if f is not None)
        reason = exc.strerror or _one_line(exc)
        click.echo(f"edgekit: error: {paths}: {reason}" if paths else f"edgekit: error: {reason}", err=True)
        sys.exit(2)
    if isinstance(exc, MemoryError):
        click.echo("edgekit: error: out of memory; try a smaller --batch-size or input size", err=True)
        sys.exit(1)
    click.echo(f"edgekit: internal error (a bug; rerun with -v or {_DEBUG_ENV}=1 for the traceback): "
               f"{type(exc).__name__}: {_one_line(exc)}", err=True)
    sys.exit(1)


def _one_line(exc: BaseException) -> str:
    """An exception's message on one line (first line, at most 300 characters)."""
    text = str(exc).strip()
    return (text.splitlines()[0][:300] if text else type(exc).__name__)


def _guard(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn every failure of a command into one stderr line and a non-zero exit (see :func:`_fail`)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (click.ClickException, click.exceptions.Exit):
            raise  # usage errors and exits: the group's main reports them as click means them
        except (Exception, KeyboardInterrupt) as exc:
            _fail(exc)

    return wrapper


def _parse_kv(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``key=value`` pairs with JSON-typed values (``width_mult=0.5`` -> 0.5)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq:
            raise EdgekitError(f"expected key=value, got {pair!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


class _OneLineErrors(click.Group):
    """Usage errors (a bad option value, a missing argument) are one line on stderr, exit 2,
    like every other error of edgekit; click's default prints the usage block too."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        global _debug
        _debug = False
        kwargs["standalone_mode"] = False
        try:
            return super().main(*args, **kwargs)
        except click.ClickException as exc:
            click.echo(f"edgekit: error: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)
        except (Exception, KeyboardInterrupt, click.exceptions.Abort) as exc:  # option callbacks, types
            _fail(exc)


@click.group(cls=_OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="edgekit")
@click.option("-v", "--verbose", is_flag=True, help="Log more detail; an unexpected error shows its traceback.")
def main(verbose: bool) -> None:
    """edgekit: train, compress, export and benchmark compact vision models for the edge.

    Errors are one line on stderr; -v (or EDGEKIT_DEBUG=1) shows the traceback of an unexpected one."""
    global _debug
    _debug = verbose
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="edgekit: %(levelname)s: %(message)s")


def _config_option(cls: type, name: str, *decls: str, **kw: Any) -> Callable[[Callable[..., Any]], Any]:
    """A click option made from field ``name`` of stage config ``cls``: its default (shown, unless
    None: "not given") and, for a number, the click type running the config's own check
    (``cls.CHECKS``, :data:`edgekit.numbers.CLICK_TYPES`), so the CLI repeats neither. ``decls``
    default to ``--name-with-dashes``; ``kw`` adds help or overrides (a comma-list default)."""
    check = getattr(cls, "CHECKS", {}).get(name)
    if check is not None:
        kw.setdefault("type", CLICK_TYPES[check])
    value = kw.get("default", default(cls, name))
    if value is not None:
        kw.setdefault("default", value)
        kw.setdefault("show_default", True)
    return click.option(*(decls or (f"--{name.replace('_', '-')}",)), **kw)


def _precise_bn_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--precise-bn N``, shared by every command that trains (train, prune's recovery, distill)."""
    return click.option("--precise-bn", default=default(RunConfig, "precise_bn"), show_default=True,
                        type=NON_NEGATIVE_INT, help="Re-estimate BatchNorm statistics over N training batches at "
                        "the end of the run (eval transform, no gradient); 0 disables it.")(fn)


def _trust_code_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--trust-code``, on every command that reads a checkpoint, recipe or profile: let those files
    name code (an import path ``pkg.mod:fn``) and import it. Off by default; it enters
    :func:`edgekit.trust.trusting` for the command's duration (see :mod:`edgekit.trust`)."""

    def enable(ctx: click.Context, param: click.Parameter, value: bool) -> None:
        if value:
            from .trust import trusting

            ctx.with_resource(trusting())

    return click.option("--trust-code", is_flag=True, expose_value=False, callback=enable,
                        help="Allow an architecture given as an import path (pkg.mod:fn) inside a checkpoint or "
                             "recipe to be imported and run; only for files you trust.")(fn)


class _LazyHelpOption(click.Option):
    """An option whose help lists names a registry knows (built only when help is shown, so the CLI
    starts without importing torch)."""

    def __init__(self, *args: Any, help_fn: Callable[[], str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.help_fn = help_fn

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        self.help = self.help_fn()
        return super().get_help_record(ctx)


def _round_to(ctx: click.Context, param: click.Parameter, value: str | None) -> int | str | None:
    """``--round-to``: a positive integer or ``auto``, checked where the option is named."""
    from .compress.rounding import parse_round_to

    try:
        return parse_round_to(value)
    except EdgekitError as exc:
        raise click.BadParameter(str(exc).replace("round_to ", "", 1)) from None


def _recoveries(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
    """``--recovery kd,finetune``: known names, checked where the option is named."""
    from .optimization.plan import parse_recoveries

    try:
        return parse_recoveries(value)
    except EdgekitError as exc:
        raise click.BadParameter(str(exc).replace("recovery: ", "", 1)) from None


def _prune_method(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """``--method``: a registered pruning criterion (:mod:`edgekit.compress.criteria`), checked when named."""
    from .compress.criteria import get_criterion

    try:
        get_criterion(value)
    except EdgekitError as exc:
        raise click.BadParameter(str(exc)) from None
    return value


def _data_spec(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """``--data`` / ``--calib``: a spec of a registered data source, checked where the option is named
    (:func:`edgekit.data.parse_spec`, the check every stage runs), so no command ignores a bad one."""
    if value is None:
        return None
    from .data import parse_spec

    try:
        parse_spec(value)
    except EdgekitError as exc:
        raise click.BadParameter(str(exc)) from None
    return value


def _prune_methods_help() -> str:
    from .compress.criteria import help_text

    return help_text()


def _train_task(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """``train --task``: a registered task that trains (:mod:`edgekit.tasks`), checked when named."""
    if value is None:
        return None
    from .stage_config import choice
    from .tasks import list_tasks

    try:
        return choice("task", value, list_tasks(trainable=True))
    except EdgekitError as exc:
        raise click.BadParameter(str(exc)) from None


def _train_tasks_help() -> str:
    from .tasks import list_tasks

    return (f"One of {', '.join(list_tasks(trainable=True))}. Default: the data's (class labels: classify; "
            "numbers: regression; numbers with sigmas or --head dldl: label_distribution).")


def _data_help() -> str:
    from .data.sources import usages

    return f"Data spec: {usages()}."


def _distill_methods_help() -> str:
    from .compress.loss_terms import TERMS

    return f"none, a loss term ({', '.join(TERMS)}) or a '+' combination (lshl2+kd)."


@main.command()
@click.option("--arch", required=True, help="Registry name (see `edgekit zoo`) or package.module:function.")
@click.option("--data", required=True, callback=_data_spec, cls=_LazyHelpOption, help_fn=_data_help)
@click.option("-o", "--output", required=True, type=click.Path(), help="Checkpoint to write.")
@click.option("--epochs", default=default(TrainConfig, "epochs"), show_default=True, type=EPOCHS)
@click.option("--batch-size", default=default(TrainConfig, "batch_size"), show_default=True, type=POSITIVE_INT)
@click.option("--input-size", type=POSITIVE_INT, help="Square input size (default: the dataset's).")
@click.option("--optimizer", type=click.Choice(OPTIMIZERS), default=default(TrainConfig, "optimizer"),
              show_default=True)
@click.option("--lr", type=POSITIVE_FLOAT, help="Peak learning rate (default 0.05 SGD, 2e-3 AdamW).")
@click.option("--weight-decay", type=NON_NEGATIVE_FLOAT)
@click.option("--warmup-epochs", default=default(TrainConfig, "warmup_epochs"), show_default=True,
              type=NON_NEGATIVE_FLOAT)
@click.option("--lr-schedule", type=click.Choice(LR_SCHEDULES), default=default(TrainConfig, "lr_schedule"),
              show_default=True, help="After the warm-up: cosine decay, or step (lr / 10 at each of --milestones, "
              "the mWh authors' schedule).")
@click.option("--milestones", type=MILESTONES, help="--lr-schedule step: where the lr drops, as increasing fractions "
              f"of --epochs (default {','.join(map(str, STEP_MILESTONES))}: epochs 50 and 75 of 100).")
@click.option("--label-smoothing", default=default(TrainConfig, "label_smoothing"), show_default=True,
              type=UNIT_INTERVAL, help="In [0, 1).")
@click.option("--mix", type=click.Choice(MIX_MODES), default=default(TrainConfig, "mix"),
              show_default=True, help="mwh = mixup without hesitation schedule. mixup and mwh take lambda = "
              "max(lambda, 1 - lambda) as the mWh code does; the log's `mixed` is each epoch's fraction of "
              "mixed batches.")
@click.option("--mix-alpha", type=POSITIVE_FLOAT, help="Beta(alpha, alpha) for mixing (default 0.5, CutMix 1.0).")
@click.option("--small-input/--no-small-input", default=None,
              help="Stride-1 stem for small images (default: on for inputs <= 64 px on ImageNet nets).")
@click.option("--frames", type=POSITIVE_INT, help="Clip models (tsn_/tsm_<backbone>): frames sampled per clip, "
              "one per equal segment (default: the data's, 8).")
@click.option("--shift", type=click.Choice(SHIFTS), help="tsm_<backbone>: temporal shift from both neighbours "
              "(bidirectional, the default) or the past only (causal: the model that streams frame by frame).")
@click.option("--arch-arg", "arch_args", multiple=True, help="Extra architecture kwarg key=value (repeatable).")
@click.option("--head", type=click.Choice(["fc", "nfl", "dldl", "ranking", "regression"]), default=None,
              help="Head after global pooling: the architecture's own (fc), the NFL layer + Linear "
                   "(nfl; tune with --arch-arg nfl_mul=/nfl_per=/nfl_dh=/nfl_seed=), or DLDL-v2's label "
                   "distribution + expectation (dldl; ranking: binary 'label > l_k' outputs; regression: one "
                   "number over the label range, the l1 baseline).")
@click.option("--augment", type=click.Choice(AUGMENTS), default=default(TrainConfig, "augment"), show_default=True,
              help="Augmentation preset (dldl: DLDL-v2's flip, grayscale, scale, rotation, crop, colour jitter).")
@click.option("--task", callback=_train_task, cls=_LazyHelpOption, help_fn=_train_tasks_help)
@click.option("--label-range", help="label_distribution: the label set lo:hi:step (ages 0:100:1; "
              "default: the data's range).")
@click.option("--sigma", type=NON_NEGATIVE_FLOAT, help="label_distribution: one Gaussian sigma for every "
              "target (default: the data's per-sample sigma, else 2 label steps; 0 is clamped to 1e-10).")
@click.option("--loss", type=click.Choice(LABEL_LOSSES), help="label_distribution: dldl = KL + lambda*L1 "
              "(default), kl, l1 (one output), ce (nearest label), ranking.")
@click.option("--lambda", "dldl_lambda", type=NON_NEGATIVE_FLOAT, default=default(TrainConfig, "dldl_lambda"),
              show_default=True, help="Weight of the L1 term of --loss dldl.")
@click.option("--flip-test/--no-flip-test", default=None, help="label_distribution: average the prediction of "
              "each image and its mirror at evaluation (default on, off with a no_flip augmentation).")
@click.option("--weights", help="Starting weights: a local file (state dict or checkpoint), 'imagenet' (the "
              "architecture's default torchvision weights; a video net's backbone's) or a torchvision weights name "
              "(MobileNet_V2_Weights.IMAGENET1K_V2), read from the torch hub cache ($TORCH_HOME) and downloaded into "
              "it once; EDGEKIT_OFFLINE=1 never downloads. A classifier of another size is skipped.")
@click.option("--warmup-frozen", type=EPOCHS, help="With --weights: first train only the layers the weights lack "
              "(a stage dropped in pretraining, the classifier) for N epochs, the rest frozen; then --epochs.")
@click.option("--labeled-fraction", "--train-fraction", "labeled_fraction", type=FRACTION, show_default=True,
              default=default(TrainConfig, "labeled_fraction"),
              help="Train on a stratified fraction of the training split's labels, drawn with --seed and recorded "
                   "in the checkpoint, so every later stage sees the same labelled images (the validation split "
                   "never changes). --train-fraction is its old, deprecated name.")
@click.option("--semi", type=click.Choice(SEMI_MODES), default=default(TrainConfig, "semi"), show_default=True,
              help="Semi-supervised regime over the labelled fraction and an unlabelled pool (the rest of the "
                   "training split, labels hidden): r2d2 (R2-D2's four stages), pseudo-label (confident hard "
                   "labels re-predicted every epoch) or none (the labelled images only).")
@click.option("--unlabeled", callback=_data_spec, help="A data spec whose training images join the unlabelled pool.")
@click.option("--label-lr", type=POSITIVE_FLOAT, help="r2d2: the pseudo-label table's lr (the authors' lambda; "
              "default: their effective per-image step, 4000 x 0.1 / 512, at any batch size).")
@click.option("--repredict", type=POSITIVE_INT, help="r2d2: cycles, each starting by repredicting the pseudo-labels (4).")
@click.option("--cycle-epochs", type=EPOCHS, help="r2d2: epochs per cycle (default: the authors' share of --epochs).")
@click.option("--pseudo-threshold", type=FRACTION, help="pseudo-label: confidence for a hard label (0.95).")
@click.option("--seed", default=default(TrainConfig, "seed"), show_default=True, type=NON_NEGATIVE_INT,
              help="Seeds training and the train/val split (recorded in the checkpoint).")
@click.option("--repeats", type=POSITIVE_INT,
              help="Train N models (seeds SEED..SEED+N-1, each its own split) to OUT_STEM.seedS.SUFFIX and "
                   "report val metrics as mean +- std (summary in OUTPUT.repeats.json).")
@click.option("--workers", default=default(TrainConfig, "workers"), show_default=True, type=NON_NEGATIVE_INT)
@click.option("--device", default=default(TrainConfig, "device"), show_default=True)
@_precise_bn_option
@click.option("--resume", is_flag=True, help="Continue an interrupted run writing to --output.")
@click.option("--force", is_flag=True, help="Overwrite --output if it exists.")
@_guard
def train(arch: str, data: str, output: str, arch_args: tuple[str, ...], head: str | None, resume: bool,
          force: bool, repeats: int | None, **kw: Any) -> None:
    """Train ARCH on DATA into a checkpoint (resumable; DDP under torchrun)."""
    from .training.trainer import train as run

    arch_kwargs = {**_parse_kv(arch_args), **({"head": head} if head else {})}
    if repeats is not None:
        if resume:
            raise EdgekitError("--resume continues one run; it cannot be combined with --repeats")
        from .training.repeats import summary_path, train_repeats

        summary = train_repeats(arch, data, output, repeats, arch_kwargs=arch_kwargs, force=force, **kw)
        stats = ", ".join(f"{k[4:]} {v['mean']:.2f} +- {v['std']:.2f}" for k, v in summary.items()
                          if k.startswith("val_") and k != "val_loss")
        click.echo(f"{summary_path(output)}: {repeats} runs (seeds {summary['seeds'][0]}..{summary['seeds'][-1]}): "
                   f"val {stats}")
        return
    ckpt = run(arch, data, output, arch_kwargs=arch_kwargs, resume=resume, force=force, **kw)
    m = ckpt.metrics
    from .pretrained import describe
    from .tasks import get_task

    if ckpt.provenance.get("weights"):
        click.echo(f"started from {describe(ckpt.provenance['weights'])}")

    if get_task(ckpt.task).class_labels and "val_top1" in m:
        click.echo(f"{output}: val top-1 {m['val_top1']:.2f}%  top-5 {m['val_top5']:.2f}%  "
                   f"({m.get('images_per_s') or 0:.0f} img/s){_precise_bn_change(m)}")
    else:
        click.echo(f"{output}: " + ", ".join(f"{k} {v:.4g}" for k, v in m.items() if isinstance(v, float)))


@main.command()
@click.option("--method", type=click.Choice(SSL_METHODS), default=default(PretrainConfig, "method"), show_default=True,
              help="simclr (NT-Xent over the batch), mocov2 (momentum encoder + queue), byol (predictor + EMA target).")
@click.option("--arch", required=True, help="Registry name of the backbone (see `edgekit zoo`).")
@click.option("--data", required=True, callback=_data_spec, cls=_LazyHelpOption, help_fn=_data_help)
@click.option("-o", "--output", required=True, type=click.Path(), help="Checkpoint to write (task: embedding).")
@click.option("--from", "from_checkpoint", type=click.Path(), help="Continue an earlier pretraining of the same "
              "architecture and method, heads and queue included (S3L's multi-stage: small size, then larger).")
@click.option("--epochs", default=default(PretrainConfig, "epochs"), show_default=True, type=EPOCHS)
@click.option("--batch-size", default=default(PretrainConfig, "batch_size"), show_default=True, type=POSITIVE_INT)
@click.option("--input-size", type=POSITIVE_INT, help="Square input size (default: the dataset's; S3L: smaller "
              "than you fine-tune at).")
@click.option("--small-input/--no-small-input", default=None,
              help="Stride-1 stem for small images (default: on for inputs <= 64 px on ImageNet nets).")
@click.option("--drop-last-stage", is_flag=True, help="Pretrain without the backbone's last stage (S3L's small "
              "architecture; ResNet-style nets). Fine-tuning adds it back freshly initialised (train --warmup-frozen).")
@click.option("--arch-arg", "arch_args", multiple=True, help="Extra architecture kwarg key=value (repeatable).")
@click.option("--flip/--no-flip", default=None, help="Horizontal flips in the views (default: unless the data is "
              "not flip invariant, such as digits and gestures).")
@click.option("--optimizer", type=click.Choice(OPTIMIZERS), default=default(PretrainConfig, "optimizer"),
              show_default=True)
@click.option("--lr", type=POSITIVE_FLOAT, help="Peak learning rate (default: the method's, scaled to the batch).")
@click.option("--weight-decay", type=NON_NEGATIVE_FLOAT, help="Default: the method's.")
@click.option("--warmup-epochs", default=default(PretrainConfig, "warmup_epochs"), show_default=True,
              type=NON_NEGATIVE_FLOAT)
@click.option("--temperature", type=POSITIVE_FLOAT, help="simclr/mocov2 softmax temperature (default 0.1 / 0.2).")
@click.option("--queue", type=POSITIVE_INT, help="mocov2: negatives kept (default 4096, at most half the images).")
@click.option("--momentum-encoder", type=OPEN_FRACTION, help="mocov2: key encoder momentum m (0.999); byol: base target "
              "decay (0.996). In (0, 1).")
@click.option("--proj-dim", type=POSITIVE_INT, help="Projection width (default 128; byol 256).")
@click.option("--proj-hidden", type=POSITIVE_INT, help="Projector hidden width (default: the backbone's; byol 4096).")
@click.option("--knn-k", default=default(PretrainConfig, "knn_k"), show_default=True, type=POSITIVE_INT,
              help="Neighbours of the k-NN probe run after every epoch (labels read by the probe only).")
@click.option("--seed", default=default(PretrainConfig, "seed"), show_default=True, type=NON_NEGATIVE_INT)
@click.option("--workers", default=default(PretrainConfig, "workers"), show_default=True, type=NON_NEGATIVE_INT)
@click.option("--device", default=default(PretrainConfig, "device"), show_default=True)
@_precise_bn_option
@click.option("--resume", is_flag=True, help="Continue an interrupted run writing to --output.")
@click.option("--force", is_flag=True, help="Overwrite --output if it exists.")
@_trust_code_option
@_guard
def pretrain(arch: str, data: str, output: str, from_checkpoint: str | None, arch_args: tuple[str, ...],
             resume: bool, force: bool, **kw: Any) -> None:
    """Self-supervised pretraining of ARCH on the images of DATA (S3L; labels unused), into an embedding checkpoint."""
    from .pretraining.trainer import pretrain as run

    ckpt = run(arch, data, output, from_checkpoint=from_checkpoint, arch_kwargs=_parse_kv(arch_args) or None,
               resume=resume, force=force, **kw)
    m = ckpt.metrics
    before = f" (before pretraining {m['init_knn_top1']:.2f}%)" if "init_knn_top1" in m else ""
    knn = f": k-NN top-1 {m['val_knn_top1']:.2f}%{before}" if "val_knn_top1" in m else ""
    click.echo(f"{output}: {ckpt.extra['ssl']['method']} {ckpt.arch} embedding of {ckpt.num_outputs}{knn} "
               f"({m.get('images_per_s') or 0:.0f} img/s)")


@main.command("eval")
@click.argument("checkpoint", type=click.Path())
@click.option("--data", callback=_data_spec,
              help="Data spec (default: the checkpoint's own dataset, split as its training split it).")
@_config_option(EvalConfig, "split", type=click.Choice(SPLITS))
@_config_option(EvalConfig, "batch_size")
@_config_option(EvalConfig, "device")
@click.option("--flip/--no-flip", default=None, help="Label distributions: average image + mirror "
              "(default: as the checkpoint was trained to).")
@click.option("--streaming", is_flag=True, help="Causal TSM: run its online model frame by frame over whole clips "
              "(accuracy over time, at the clip end, settle frame, smoother; offline accuracy next to it).")
@_config_option(EvalConfig, "stride", help="--streaming: process every STRIDE-th frame "
                "(auto: the training segment spacing, clip length / frames).")
@_config_option(EvalConfig, "window", help="--streaming: the smoother sums the logits of the last K processed frames.")
@_config_option(EvalConfig, "agree",
                help="--streaming: the smoother accepts a new label after this many agreeing predictions.")
@_config_option(EvalConfig, "bins", help="--streaming: points of the accuracy-over-the-clip curve.")
@_config_option(EvalConfig, "workers", help="--streaming: data-loading worker processes.")
@click.option("--json", "as_json", is_flag=False, flag_value="-", default=None, metavar="[PATH]",
              help="Print JSON, or write it to PATH (with --streaming: everything, curves and per-clip results).")
@click.option("--force", is_flag=True, help="Overwrite the --json PATH if it exists.")
@_trust_code_option
@_guard
def eval_cmd(checkpoint: str, data: str | None, split: str, batch_size: int, device: str, flip: bool | None,
             streaming: bool, stride: str, window: int, agree: int, bins: int, workers: int, as_json: str | None,
             force: bool) -> None:
    """Evaluate CHECKPOINT on DATA (top-1/top-5; MAE, RMSE, epsilon-error, Pearson for numeric labels)."""
    from .evaluation import evaluate
    from .fileio import JSON_KIND, check_writable, data_input, write_json

    ctx = click.get_current_context()
    stream_only = [f"--{n}" for n in ("stride", "window", "agree", "bins", "workers")
                   if ctx.get_parameter_source(n) is not click.core.ParameterSource.DEFAULT]
    if stream_only and not streaming:
        raise EdgekitError(f"{', '.join(stream_only)}: only with --streaming")
    if as_json not in (None, "-"):
        check_writable(as_json, force, kind=JSON_KIND, inputs=[checkpoint, data_input(data)])
    if streaming:
        from .evaluation.streaming import evaluate_streaming, format_streaming

        if flip is not None:
            raise EdgekitError("--flip/--no-flip apply to label-distribution models, not --streaming")
        res = evaluate_streaming(checkpoint, data, split=split, window=window, agree=agree, stride=stride,
                                 bins=bins, batch_size=batch_size, device=device, workers=workers,
                                 progress=as_json != "-")
    else:
        res = evaluate(checkpoint, data, split=split, batch_size=batch_size, device=device, flip=flip)
    if as_json not in (None, "-"):
        write_json(as_json, res)
    if as_json == "-":
        click.echo(json.dumps(res))
    elif streaming:
        click.echo(format_streaming(res) + (f"\nwrote {as_json}" if as_json else ""))
    elif "top1" in res:
        click.echo(f"top-1 {res['top1']:.2f}%  top-5 {res['top5']:.2f}%  loss {res['loss']:.4f}  (n={res['n']})")
    elif "knn_top1" in res:
        click.echo(f"k-NN top-1 {res['knn_top1']:.2f}% (k={res['knn_k']}, training split as the bank; n={res['n']})")
    else:
        extra = "".join(f"  {name} {res[key]:.4f}" for key, name in (("eps_error", "epsilon-error"),
                                                                        ("pearson", "Pearson")) if key in res)
        flipped = "  (image + flip averaged)" if res.get("flip_test") else ""
        click.echo(f"MAE {res['mae']:.4f}  RMSE {res['rmse']:.4f}{extra}  (n={res['n']}){flipped}")


@main.command()
@click.argument("checkpoint", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_trust_code_option
@_guard
def info(checkpoint: str, as_json: bool) -> None:
    """Show a checkpoint: architecture, size, input spec, labels, metrics, lineage."""
    from .evaluation.inspect import checkpoint_summary, format_summary

    summary = checkpoint_summary(checkpoint)
    click.echo(json.dumps(summary, indent=2) if as_json else format_summary(summary))


@main.command()
@click.option("--filter", "pattern", default="", help="Only names containing this text.")
@click.option("--no-macs", is_flag=True, help="Skip MAC counting (faster).")
@_guard
def zoo(pattern: str, no_macs: bool) -> None:
    """List architectures with parameters and MACs at their default input."""
    from .evaluation.inspect import zoo_rows

    click.echo(f"{'name':<28} {'source':<12} {'input':>5} {'params (M)':>11} {'MACs (M)':>11}")
    for row in zoo_rows(pattern, macs=not no_macs):
        params = f"{row['params'] / 1e6:.2f}" if row["params"] is not None else "needs data" if row.get("note") else "-"
        macs = f"{row['macs'] / 1e6:.1f}" if row.get("macs") is not None else "-"
        note = f"  ({row['note']})" if row.get("note") else ""
        click.echo(f"{row['name']:<28} {row['source']:<12} {row['input']:>5} {params:>11} {macs:>11}{note}")


@main.command()
@click.option("-o", "--output", default="quickstart", show_default=True, type=click.Path(),
              help="Folder for everything the run writes.")
@click.option("--epochs", type=EPOCHS, help="Training and distillation epochs (default: the recipe's, 8).")
@click.option("--force", is_flag=True, help="Reuse a non-empty output folder (finished stages are read back).")
@_guard
def quickstart(output: str, epochs: int | None, force: bool) -> None:
    """Run the main job end to end on built-in data (digits) and print a summary.

    The recipe models/quickstart.yaml: the same as `edgekit run quickstart -o OUTPUT
    [--set training.epochs=N]`, then a summary ending with the optimised artifact against
    the original in PyTorch eager and in fp32 LiteRT."""
    from .recipes.quickstart import quickstart as run

    run(output, epochs=epochs, force=force)


# Stage commands (export, verify, bench, report, prune, distill) are added below, each a thin
# wrapper over its library function.


@main.command()
@click.option("--teacher", required=True, type=click.Path(), help="Teacher checkpoint.")
@click.option("--student", required=True, help="Student: registry name (compact_cnn_s) or checkpoint (e.g. pruned).")
@click.option("--data", callback=_data_spec,
              help="Data spec (default: the teacher's own dataset, split as its training split it).")
@click.option("-o", "--output", required=True, type=click.Path(), help="Student checkpoint to write.")
@click.option("--method", default=default(DistillConfig, "method"), show_default=True, cls=_LazyHelpOption,
              help_fn=_distill_methods_help)
@click.option("--epochs", default=default(DistillConfig, "epochs"), show_default=True, type=EPOCHS)
@click.option("--alpha", type=NON_NEGATIVE_FLOAT, help="Weight of logit terms (KD; default: the term's, 1).")
@click.option("--beta", type=NON_NEGATIVE_FLOAT, help="Weight of feature terms (default: the term's, 1; "
              "the paper used 5-7).")
@click.option("--temperature", default=default(DistillConfig, "temperature"), show_default=True,
              type=POSITIVE_FLOAT, help="KD temperature.")
@click.option("--input-size", type=POSITIVE_INT, help="Student input size (default: the teacher's).")
@click.option("--shift", type=click.Choice(SHIFTS), help="tsm_ student's shift (default: the teacher's, or causal).")
@click.option("--hash-num", type=POSITIVE_INT, help="LSH hash functions (default 4 x teacher feature dim).")
@click.option("--bias", type=click.Choice(BIAS_MODES), default=default(DistillConfig, "bias"), show_default=True)
@click.option("--feature-layer", help="Feature module path for both, or TEACHER_PATH:STUDENT_PATH.")
@click.option("--all-samples", is_flag=True, help="Feature loss over all samples, not only those the teacher gets right.")
@click.option("--cache-teacher", is_flag=True, help="Compute teacher outputs once, on disk for the run "
              "(turns augmentation off).")
@click.option("--batch-size", default=default(DistillConfig, "batch_size"), show_default=True, type=POSITIVE_INT)
@click.option("--lr", type=POSITIVE_FLOAT, help="Peak learning rate (default 0.05 SGD).")
@click.option("--seed", default=default(DistillConfig, "seed"), show_default=True, type=NON_NEGATIVE_INT)
@click.option("--device", default=default(DistillConfig, "device"), show_default=True)
@_precise_bn_option
@click.option("--force", is_flag=True, help="Overwrite --output if it exists.")
@_trust_code_option
@_guard
def distill(teacher: str, student: str, data: str | None, output: str, all_samples: bool, force: bool,
            **kw: Any) -> None:
    """Distil a TEACHER checkpoint into a smaller STUDENT (LSH feature mimicking, L2, KD)."""
    from .compress.distill import distill as run

    ckpt = run(teacher, student, data, output, correct_only=not all_samples, force=force, **kw)
    m, prov = ckpt.metrics, ckpt.provenance
    teacher_score = f" (teacher {m['teacher_top1']:.2f}%)" if "teacher_top1" in m else ""
    score = f"val top-1 {m['val_top1']:.2f}%{teacher_score}" if "val_top1" in m \
        else ", ".join(f"{k} {v:.4g}" for k, v in m.items() if k.startswith("val_"))
    click.echo(f"{output}: {prov['method']} student {ckpt.arch} {prov['params'] / 1e6:.3f} M params, "
               f"{score}{_precise_bn_change(m)}, {m['epoch_seconds']:.1f} s/epoch")


def _precise_bn_change(metrics: dict[str, Any]) -> str:
    """`` (precise BN: 10.0% -> 66.5%)`` when the run re-estimated BatchNorm statistics."""
    info = metrics.get("precise_bn") or {}
    before, after = (info.get("before") or {}).get("top1"), (info.get("after") or {}).get("top1")
    return f" (precise BN: {before:.2f}% -> {after:.2f}%)" if before is not None and after is not None else ""


def _int_list(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        return [int(v) for v in text.replace("x", ",").split(",") if v.strip()]
    except ValueError:
        raise EdgekitError(f"expected comma-separated integers, got {text!r}") from None


@main.command("bench")
@click.argument("artifacts", nargs=-1, required=True, type=click.Path())
@_config_option(BenchConfig, "runtime",
                help="auto | torch | torch-compile | onnxruntime | litert | tensorrt | coreml | adb | browser "
                     "(comma list ok).")
@_config_option(BenchConfig, "threads", default=",".join(map(str, default(BenchConfig, "threads"))),
                help="Thread counts, e.g. 1,2,4.")
@_config_option(BenchConfig, "batch")
@_config_option(BenchConfig, "warmup", help="Untimed runs after the first.")
@_config_option(BenchConfig, "runs", help="Timed runs (default: at least 50 and at least 1 s).")
@_config_option(BenchConfig, "min_seconds", help="Time for at least this long instead of --runs.")
@click.option("--data", callback=_data_spec,
              help="Data spec: also measure accuracy on its validation split.")
@click.option("--delegate", help="onnxruntime: cpu|cuda|tensorrt; litert: xnnpack|none; coreml: all|cpu|cpu_gpu|cpu_ne.")
@click.option("--device", help="torch device (cpu, cuda).")
@click.option("--input-shape", help="Input shape when the artifact does not fix it, e.g. 1,3,224,224.")
@click.option("--cpus", help="Pin each measurement to these cores, e.g. 0,1.")
@_config_option(BenchConfig, "timeout", help="Seconds per measurement.")
@click.option("--adb-binary", type=click.Path(), help="adb: the benchmark binary to push (LiteRT benchmark_model).")
@click.option("--adb-serial", help="adb: device serial (default: the only one connected).")
@click.option("--adb-cores", help="adb: pin to these phone cores (taskset), e.g. 4-7.")
@click.option("--browser", type=click.Choice(["chromium"]), help="--runtime browser: time in this headless browser "
              "here (default: print a URL for a phone's browser and wait for its timings).")
@click.option("-o", "--output", type=click.Path(), help="Results JSON to write.")
@click.option("--force", is_flag=True, help="Overwrite --output if it exists.")
@_trust_code_option
@_guard
def bench_cmd(artifacts: tuple[str, ...], input_shape: str | None, cpus: str | None, adb_binary: str | None,
              adb_serial: str | None, adb_cores: str | None, **kw: Any) -> None:
    """Latency (p50/p90/p99, init, memory; accuracy with --data) of ARTIFACTS on their runtimes."""
    from .benchmark.run import bench as run

    adb = {"binary": adb_binary, "serial": adb_serial, "cores": adb_cores} if adb_binary else None
    rows = run(list(artifacts), input_shape=_int_list(input_shape), cpus=_int_list(cpus), adb=adb,
               progress=True, **kw)
    failed = [r for r in rows if r.get("error")]
    if failed and len(failed) == len(rows):
        kept = f"; the errors are written to {kw['output']}" if kw.get("output") else ""
        raise EdgekitError(f"every bench row failed ({len(rows)} of {len(rows)}){kept}; first: {failed[0]['error']}")
    if kw.get("output"):
        click.echo(f"{kw['output']}: {len(rows)} rows ({len(failed)} failed); `edgekit report {kw['output']} -o DIR`")


@main.command("report")
@click.argument("results", nargs=-1, required=True, type=click.Path())
@click.option("-o", "--output", "output_dir", required=True, type=click.Path(), help="Folder for report.md/.html.")
@click.option("--baseline", help="Model name taken as every row's original model (default: the root of the "
              "row's lineage, recorded by bench).")
@click.option("--title", help="Report title.")
@click.option("--force", is_flag=True, help="Overwrite an existing report in the folder.")
@_guard
def report_cmd(results: tuple[str, ...], output_dir: str, baseline: str | None, title: str | None,
               force: bool) -> None:
    """Markdown + self-contained HTML report (tables, plots, comparisons) from RESULTS files."""
    from .benchmark.report import report as run

    path = run(list(results), output_dir, baseline=baseline, title=title, force=force)
    click.echo(f"{path} and {path.with_suffix('.md')}")


@main.command("export")
@click.argument("checkpoint", type=click.Path())
@click.option("-t", "--target", "targets", multiple=True,
              help="onnx, tflite, coreml, tensorrt or all (repeatable or comma-separated; default "
                   f"{','.join(default(ExportConfig, 'targets'))}).")
@click.option("-p", "--precision", "precisions", multiple=True,
              help="fp32, fp16 or int8 (repeatable; default per target: fp32 onnx/tflite, fp16 coreml/tensorrt).")
@click.option("-o", "--output", "output_dir", required=True, type=click.Path(), help="Folder for artifacts.")
@click.option("--calib", callback=_data_spec,
              help="Data spec for int8 calibration and the parity gate (default: the checkpoint's).")
@_config_option(ExportConfig, "calib_size", help=f"Calibration images (default {SAMPLE_IMAGES}).")
@_config_option(ExportConfig, "parity_size", help=f"Validation images for the parity gate (default {SAMPLE_IMAGES}).")
@click.option("--profile", help="Deployment profile: a name in export/ (e.g. android-cpu-int8) or a YAML path.")
@click.option("--nhwc/--nchw", default=None, help="TFLite input layout (NHWC float for camera pipelines).")
@_config_option(ExportConfig, "opset", help=f"ONNX opset (default {DEFAULT_OPSET}).")
@click.option("--static-batch", is_flag=True, default=None, help="ONNX: fixed batch 1 instead of a dynamic batch.")
@_config_option(ExportConfig, "max_batch", help="TensorRT: largest batch of the optimization profile.")
@click.option("--streaming", is_flag=True, help="A causal TSM's online model: one frame per call, states in and "
              f"out (tflite, onnx, coreml); sizes count whole clips (default {STREAM_CLIPS}).")
@click.option("--force", is_flag=True, help="Overwrite existing artifacts.")
@click.option("--json", "as_json", is_flag=True, help="Print the manifests as JSON.")
@_trust_code_option
@_guard
def export_cmd(checkpoint: str, targets: tuple[str, ...], precisions: tuple[str, ...], static_batch: bool | None,
               as_json: bool, **kw: Any) -> None:
    """Export CHECKPOINT to ONNX / TFLite / Core ML / TensorRT, each artifact behind a parity gate."""
    from .exporters.pipeline import export as run

    records = run(checkpoint, ",".join(targets) or None, precision=",".join(precisions) or None,
                  dynamic_batch=False if static_batch else None, **kw)
    if as_json:
        click.echo(json.dumps(records, indent=2))
        return
    for r in records:
        p = r["parity"]
        check = (f"cosine {p['cosine']:.6f}, max abs err {p['max_abs_err']:.2g}"
                 + (f", top-1 agreement {p['top1_agreement']:.1%}" if "top1_agreement" in p else "")
                 + (f", MAE {p['torch_mae']:.4g} torch vs {p['artifact_mae']:.4g}" if "artifact_mae" in p else "")
                 + (f", {p['clips']} whole clips frame by frame, drift {p['drift_first']:.2g} -> {p['drift_last']:.2g}"
                    if p.get("streaming") else "")
                 if p.get("mode") == "numeric" else "structural check passed (Core ML runs on macOS only)")
        click.echo(f"{r['path']}  {r['size_bytes'] / 1e6:.2f} MB  {r['export_seconds']:.1f} s  {check}")


@main.command("verify")
@click.argument("artifact", type=click.Path())
@click.option("--checkpoint", required=True, type=click.Path(), help="The checkpoint the artifact came from.")
@click.option("--data", callback=_data_spec,
              help="Data spec whose validation split is used (default: the checkpoint's dataset).")
@click.option("-n", "--num", "n", default=SAMPLE_IMAGES, show_default=True, type=POSITIVE_INT,
              help="Validation images (whole clips for a streaming artifact).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_trust_code_option
@_guard
def verify_cmd(artifact: str, checkpoint: str, data: str | None, n: int, as_json: bool) -> None:
    """Re-run the parity gate of ARTIFACT against its CHECKPOINT on real validation images."""
    from .exporters.pipeline import verify as run
    from .exporters.parity import format_numbers

    res = run(artifact, checkpoint, data, n=n)
    if as_json:
        click.echo(json.dumps(res, indent=2))
    elif res.get("mode") == "numeric":
        click.echo(f"{artifact}: parity gate passed ({res['precision']}, {res['runtime']}): {format_numbers(res)}")
    else:
        click.echo(f"{artifact}: structural check passed ({res['ops']} ops, {res['conv_ops']} conv); "
                   f"{res['note']}")


@main.command("prune")
@click.argument("checkpoint", type=click.Path())
@click.option("--data", callback=_data_spec,
              help="Data spec (default: the checkpoint's own dataset, split as its training split it).")
@click.option("-o", "--output", required=True, type=click.Path(), help="Pruned checkpoint to write.")
@click.option("--target", default=default(PruneConfig, "target"), show_default=True,
              help="macs=FRACTION, params=FRACTION or latency=5ms@litert|onnxruntime (measured).")
@click.option("--method", default=default(PruneConfig, "method"), show_default=True, callback=_prune_method,
              cls=_LazyHelpOption, help_fn=_prune_methods_help)
@click.option("--scoring", type=click.Choice(SCORINGS), default=default(PruneConfig, "scoring"), show_default=True,
              help="CURL's KL: exact (one masked pass per unit) or fisher (its second-order estimate, "
                   "a few backward passes).")
@click.option("--exact-precision", type=click.Choice(EXACT_PRECISIONS), default=default(PruneConfig, "exact_precision"),
              show_default=True, help="Arithmetic of exact scoring's masked passes: auto is bf16 on a CPU that "
              "computes it natively (AVX-512 BF16, AMX), else fp32.")
@click.option("--steps", default=default(PruneConfig, "steps"), type=POSITIVE_INT,
              help="Reach the target in this many steps, re-estimating BN and re-scoring in between "
                   f"[default: {DEFAULT_FISHER_STEPS} for CURL with Fisher scoring to a macs/params target, else 1].")
@click.option("--step-epochs", default=default(PruneConfig, "step_epochs"), show_default=True, type=EPOCHS_OR_ZERO,
              help="Fine-tuning epochs between steps (with --steps > 1).")
@click.option("--rank", type=click.Choice(RANKS), default=default(PruneConfig, "rank"), show_default=True,
              help="CURL ranking: KL per MAC saved, raw KL (the paper), or KL over its group's mean.")
@click.option("--min-keep", default=default(PruneConfig, "min_keep"), show_default=True, type=UNIT_INTERVAL,
              help="Minimum kept fraction per layer.")
@click.option("--proxy-size", default=default(PruneConfig, "proxy_size"), show_default=True, type=POSITIVE_INT,
              help="Proxy images for KL scoring.")
@click.option("--round-to", callback=_round_to, help="Keep channel counts multiples of this, or auto: the target runtime's fast "
                                "multiple (16 for onnxruntime and LiteRT here; the default for latency targets).")
@click.option("--finetune-epochs", default=default(PruneConfig, "finetune_epochs"), show_default=True,
              type=EPOCHS_OR_ZERO, help="Recovery epochs (0: none).")
@click.option("--recipe", type=click.Choice(RECIPES), default=default(PruneConfig, "recipe"), show_default=True)
@click.option("--train-fraction", default=default(PruneConfig, "train_fraction"), show_default=True, type=FRACTION,
              help="Use only this much training data.")
@click.option("--expansion", default=default(PruneConfig, "expansion"), show_default=True,
              help="limited-data: the expanded set (auto = the data's own label-preserving policy; a preset "
                   "paper|digits|shapes|ordinal|natural|none; or key=value options such as digits:rotate=10).")
@click.option("--label-lr", type=NON_NEGATIVE_FLOAT, help="limited-data: label refinement rate (default 0: fixed).")
@click.option("--mixup/--no-mixup", default=None, help="limited-data: mixup in the KD stage (default off).")
@click.option("--refine-lr", type=POSITIVE_FLOAT, help="limited-data: stage-3 student rate (default lr / 10).")
@click.option("--lr", default=default(PruneConfig, "lr"), show_default=True, type=POSITIVE_FLOAT)
@click.option("--batch-size", default=default(PruneConfig, "batch_size"), show_default=True, type=POSITIVE_INT)
@click.option("--seed", default=default(PruneConfig, "seed"), show_default=True, type=NON_NEGATIVE_INT)
@click.option("--device", default=default(PruneConfig, "device"), show_default=True)
@_precise_bn_option
@click.option("--scores", "scores_path", type=click.Path(),
              help="Keep the importance scores in this file (reused by a later prune of the same inputs).")
@click.option("--latency", "measure_latency", is_flag=True,
              help="Export before/after and report the measured speed-up (onnxruntime, litert; 1 thread).")
@click.option("--force", is_flag=True, help="Overwrite --output if it exists, and --scores holding another "
              "checkpoint's scores (a file that is not a checkpoint, or not a score cache, never).")
@_trust_code_option
@_guard
def prune_cmd(checkpoint: str, data: str | None, output: str, force: bool, **kw: Any) -> None:
    """Prune CHECKPOINT (CURL by default) to a MACs/params/latency target, re-estimate BN, recover."""
    from .compress.prune import prune as run

    m = run(checkpoint, data, output, force=force, **kw).metrics
    click.echo(f"{output}: MACs {m['macs_before'] / 1e6:.2f}M -> {m['macs'] / 1e6:.2f}M ({m['macs_ratio']:.3f}), "
               f"params {m['params_before'] / 1e6:.2f}M -> {m['params'] / 1e6:.2f}M")
    key, name, unit = ("top1", "top-1", "%") if "val_top1" in m else ("mae", "MAE", "")  # label distributions: MAE
    click.echo(f"{name}: unpruned {m[key + '_unpruned']:.2f}{unit}  pruned+BN {m[key + '_pruned_bn']:.2f}{unit}  "
               f"final {m['val_' + key]:.2f}{unit}{_precise_bn_change(m)}  (scoring {m['score_seconds']:.1f}s, "
               f"prune {m['prune_seconds']:.1f}s)")
    for rt, v in (m.get("latency") or {}).items():
        if isinstance(v, dict):
            click.echo(f"{rt}: {v['before_ms']:.3f} ms -> {v['after_ms']:.3f} ms ({v['speedup']:.2f}x, measured)")


@main.command("optimize")
@click.argument("checkpoint", type=click.Path())
@click.option("--budget", required=True, type=BUDGET, help="Latency budget of the final artifact: MS@RUNTIME, "
              "e.g. 2ms@litert (median, batch 1, measured).")
@click.option("--data", callback=_data_spec,
              help="Data spec (default: the checkpoint's own dataset, split as its training split it).")
@click.option("-o", "--output", required=True, type=click.Path(), help="Folder for candidates, report, optimize.json.")
@click.option("--threads", default=default(OptimizeConfig, "threads"), show_default=True, type=POSITIVE_INT)
@click.option("--max-drop", default=default(OptimizeConfig, "max_drop"), show_default=True, type=NON_NEGATIVE_FLOAT,
              help="Most top-1 points the chosen artifact may lose against the original (0: none).")
@click.option("--precision", type=click.Choice(PRECISIONS), default=default(OptimizeConfig, "precision"),
              show_default=True, help="Export precision (a failed parity gate falls back to the next wider one).")
@click.option("--ratios", help="CURL MACs fractions to try, largest first (default "
              f"{','.join(f'{r:g}' for r in RATIOS)}).")
@click.option("--refine", default=default(OptimizeConfig, "refine"), show_default=True, type=NON_NEGATIVE_INT,
              help="Bisection steps toward the budget after the grid.")
@click.option("--recovery", callback=_recoveries, default=",".join(default(OptimizeConfig, "recovery")),
              show_default=True, help=f"How pruned candidates recover, comma-separated ({', '.join(RECOVERIES)}): KD "
              "from the original, plain fine-tuning on the labels; each is its own candidate, the better measured.")
@click.option("--recovery-epochs", default=default(OptimizeConfig, "recovery_epochs"), show_default=True,
              type=EPOCHS_OR_ZERO, help="Recovery epochs after pruning (0: none).")
@click.option("--exhaustive", is_flag=True, help="Try every plan, not stopping at the first that fits.")
@click.option("--min-seconds", default=default(OptimizeConfig, "min_seconds"), show_default=True,
              type=POSITIVE_FLOAT, help="Time each artifact for at least this long.")
@click.option("--proxy-size", default=default(OptimizeConfig, "proxy_size"), show_default=True, type=POSITIVE_INT,
              help="CURL proxy images.")
@click.option("--scoring", type=click.Choice(SCORINGS), default=default(OptimizeConfig, "scoring"), show_default=True,
              help="CURL importance: the Fisher estimate of the KL (fast) or the exact KL per channel.")
@click.option("--steps", default=default(OptimizeConfig, "steps"), show_default=True, type=POSITIVE_INT,
              help="Prune each candidate in this many re-scored steps.")
@click.option("--round-to", callback=_round_to, default=default(OptimizeConfig, "round_to"), show_default=True,
              help="Keep channel counts multiples of this (1: any count), or auto: the budget runtime's fast multiple.")
@click.option("--calib-size", default=default(OptimizeConfig, "calib_size"), show_default=True, type=POSITIVE_INT)
@click.option("--parity-size", default=default(OptimizeConfig, "parity_size"), show_default=True, type=POSITIVE_INT)
@click.option("--device", default=default(OptimizeConfig, "device"), show_default=True)
@_precise_bn_option
@click.option("--resume", is_flag=True, help="Continue the search in --output (finished candidates are reused "
              "on any rerun; this insists there is one).")
@_trust_code_option
@_guard
def optimize_cmd(checkpoint: str, budget: Any, data: str | None, output: str, ratios: str | None, **kw: Any) -> None:
    """Most accurate artifact of CHECKPOINT meeting a latency budget (prune, KD, int8; all measured).

    Exit 1 with one line when no candidate meets the budget within --max-drop (optimize.json
    and the report are still written, naming the closest)."""
    from .optimization.search import optimize as run
    from .optimization.summary import summary_lines

    if ratios is not None:
        kw["ratios"] = [fraction("--ratios", r, closed_right=False) for r in ratios.split(",") if r.strip()]
    doc = run(checkpoint, data, output, budget=budget, **kw)
    click.echo("\n".join(summary_lines(doc)))
    if not doc["meets_budget"]:
        click.echo(f"edgekit: {doc['message']}", err=True)
        sys.exit(1)


@main.command("run")
@click.argument("recipe")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a recipe value, dotted: training.epochs=2, data=imagefolder:PATH, optimize=null.")
@click.option("-o", "--output", required=True, type=click.Path(), help="Folder for every stage's outputs and run.json.")
@_trust_code_option
@_guard
def run_cmd(recipe: str, overrides: tuple[str, ...], output: str) -> None:
    """Run RECIPE (models/NAME.yaml, or NAME) stage by stage; finished stages are reused."""
    from .recipes.run import run_recipe

    doc = run_recipe(recipe, output, overrides=overrides)
    for s in doc["stages"]:
        click.echo(f"{s['stage']:<9} {'reused' if s['reused'] else 'computed':<9} {s['seconds']:>7.1f}s  {s['folder']}")
    click.echo(f"run.json: {output}/run.json ({doc['wall_seconds']:.1f}s)")


@main.command("demo")
@click.option("--model", required=True, type=click.Path(), help="Export folder (or file) of a streaming .tflite.")
@_config_option(DemoConfig, "port", help=f"Port (default {HTTPS_PORT} HTTPS, {HTTP_PORT} HTTP on localhost).")
@_config_option(DemoConfig, "host",
                help="Address to listen on: HTTPS with a self-signed certificate, plain HTTP on localhost/127.0.0.1.")
@_guard
def demo_cmd(model: str, port: int | None, host: str) -> None:
    """Serve the live gesture demo (camera + LiteRT.js) for a phone's browser; prints the URL and a QR code."""
    from .demo.server import serve

    serve(model, host=host, port=port, echo=click.echo)


if __name__ == "__main__":  # pragma: no cover
    main()
