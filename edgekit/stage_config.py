"""Stage configurations: each stage's options as one validated dataclass.

``train``, ``prune`` and ``distill`` each take their options as a dataclass (``TrainConfig``,
``PruneConfig``, ``DistillConfig``) built from keyword arguments, so the library, the
CLI and the benchmarks share one list of options, one set of defaults and one set of
checks. The CLI reads its defaults (:func:`default`) and choices from these classes
instead of repeating them. The modules defining configurations import no torch, so the
CLI stays fast to start.

:class:`RunConfig` holds what every training stage has: seed, device, batch size and
the precise-BatchNorm batch count. Checks run in ``__post_init__``: zero, negative and
NaN are rejected with one-line :class:`~edgekit.errors.EdgekitError` messages
(:mod:`edgekit.numbers`); ``None`` alone means "not given".
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Iterable, TypeVar

from .errors import EdgekitError, suggest
from .numbers import non_negative_int, positive_int

#: Batches of training data precise BatchNorm averages over (0 disables it); a full pass
#: when the training split is smaller. Wu & Johnson ("Rethinking 'Batch' in BatchNorm",
#: 2021, section 3) found a few hundred batches enough for ImageNet-scale statistics.
PRECISE_BN_BATCHES = 200

# Choices named both by the configs and by the code that implements them (the data transforms,
# the fit engine): kept here, below both and free of torch, so the CLI lists them cheaply and
# no lower layer imports a config.
#: training augmentation presets (see :func:`edgekit.data.transforms.train_transform`)
AUGMENTS = ("standard", "no_flip", "none", "dldl", "dldl_no_flip")
#: optimizers of the fit engine (:class:`edgekit.training.loop.OptimConfig`)
OPTIMIZERS = ("sgd", "adamw", "adam")
#: learning-rate schedules of the fit engine (:func:`edgekit.training.loop.build_scheduler`): cosine
#: decay, or the step schedule of the mWh authors' code (lr / 10 at each milestone)
LR_SCHEDULES = ("cosine", "step")
#: the step schedule's default milestones, as fractions of the epochs: the mWh authors' epochs 50
#: and 75 of 100 (easy_mwh.py, ``adjust_learning_rate``)
STEP_MILESTONES = (0.5, 0.75)
#: batch mixing modes (:class:`edgekit.training.mix.Mixer`)
MIX_MODES = ("none", "mixup", "cutmix", "mwh", "mwh-cutmix")
#: the semi-supervised regimes of ``train --semi`` (registered in edgekit.training.semi)
SEMI_MODES = ("none", "pseudo-label", "r2d2")
#: the label-distribution losses (see edgekit.training.label_distribution)
LABEL_LOSSES = ("dldl", "kl", "l1", "ce", "ranking")

C = TypeVar("C", bound="RunConfig")
T = TypeVar("T")


def choice(name: str, value: str, choices: Iterable[str]) -> str:
    """``value`` if it is one of ``choices``, else a one-line error suggesting the closest."""
    choices = tuple(choices)
    if value not in choices:
        raise suggest(str(value), choices, name)
    return value


def device_name(value: Any) -> str:
    """A device name (``auto``, ``cpu``, ``cuda``, ...): non-empty text, else a one-line error."""
    if not isinstance(value, str) or not value:
        raise EdgekitError(f"device must be a name such as auto, cpu or cuda, got {value!r}")
    return value


def check_numbers(config: Any) -> None:
    """Run the number check :attr:`CHECKS` names for each field of ``config`` (one of
    :mod:`edgekit.numbers`; the CLI runs the same check through its click type,
    :data:`edgekit.numbers.CLICK_TYPES`). None passes only where the field's default is None
    ("not given")."""
    for name, check in type(config).CHECKS.items():
        value = getattr(config, name)
        if value is None and default(type(config), name) is None:
            continue
        setattr(config, name, check(name, value))


def from_options(cls: type[T], options: dict[str, Any], stage: str) -> T:
    """Dataclass ``cls`` built from keyword ``options``; an unknown option is a one-line error
    naming the valid ones (for every stage config, and a recipe's other sections)."""
    names = [f.name for f in dataclasses.fields(cls)]
    for key in options:
        if key not in names:
            raise suggest(key, names, f"{stage} option")
    return cls(**options)


def default(cls: type, name: str) -> Any:
    """The default of field ``name`` of dataclass ``cls`` (for CLI option defaults)."""
    for f in dataclasses.fields(cls):
        if f.name == name:
            if f.default is dataclasses.MISSING:
                raise KeyError(f"{cls.__name__}.{name} has no plain default")
            return f.default
    raise KeyError(f"{cls.__name__} has no field {name!r}")


@dataclass
class RunConfig:
    """Options every training stage shares."""

    batch_size: int = 64
    seed: int = 0
    device: str = "auto"
    precise_bn: int = PRECISE_BN_BATCHES  # batches; 0 disables

    def __post_init__(self) -> None:
        self.batch_size = positive_int("batch_size", self.batch_size)
        self.seed = non_negative_int("seed", self.seed)
        self.precise_bn = non_negative_int("precise_bn", self.precise_bn)
        self.device = device_name(self.device)

    @classmethod
    def from_options(cls: type[C], options: dict[str, Any], stage: str) -> C:
        """Build from keyword options; an unknown option is a one-line error naming the valid ones."""
        return from_options(cls, options, stage)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
