"""Recipes: a YAML file in the top-level ``models/`` folder, dotted overrides, validation.

A recipe names everything one shipped pipeline does (see ``models/*.yaml``)::

    name: compact_cnn_digits
    arch: compact_cnn            # registry name (module:function only with --trust-code)
    data: digits                 # data spec; ``???`` marks it required (--set data=...)
    training: {epochs: 8, ...}   # TrainConfig fields
    prune: {target: macs=0.5}    # PruneConfig fields (optional section)
    distill: {student: prune}    # DistillConfig fields + student: a registry name, or
                                 # ``prune`` (KD recovery of the pruned model)
    export: {targets: [...], precision: [...], models: [train, distill]}
    bench: {runtimes: [...], threads: [1]}  # bench arguments (BenchConfig)
    optimize: {budget: 2ms@litert, ...}   # OptimizeConfig fields + budget

Loading and overrides are OmegaConf's (``--set training.epochs=2``, ``--set
optimize=null`` drops a section, ``${data}`` interpolates); what is checked here is the
resolved mapping against the stages' typed configurations (:class:`TrainConfig`,
:class:`PruneConfig`, :class:`DistillConfig`, :class:`OptimizeConfig`) and the export and
bench arguments (:class:`ExportOptions`, :class:`BenchOptions`). An unknown key, a bad
value or a missing required value is one :class:`~edgekit.errors.EdgekitError` line
naming the recipe and section, before anything runs.

``budget`` may also be relative, ``0.5x@litert``: that fraction of the trained model's
fp32 latency on that runtime, as this run's bench stage measured it (the recipe must
export the trained model at fp32 for the runtime's target and bench it there).
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from .. import formats
from ..benchmark.config import BenchConfig
from ..compress.distill_config import DistillConfig
from ..compress.prune_config import PruneConfig
from ..errors import EdgekitError, suggest
from ..exporters.config import ExportConfig
from ..numbers import optional, positive_float
from ..optimization.budget import Budget, parse_budget
from ..optimization.config import OptimizeConfig
from ..shipped import find_shipped, read_yaml_mapping, shipped_dirs, shipped_names
from ..stage_config import default, from_options
from ..training.config import TrainConfig

#: Top-level keys of a recipe, in the order the stages run.
KEYS = ("name", "description", "arch", "data", "training", "prune", "distill", "export", "bench", "optimize")
#: Stages that write a checkpoint (export's ``models`` picks among them).
CHECKPOINT_STAGES = ("train", "prune", "distill")
#: distill's ``student`` value meaning "the prune stage's checkpoint".
PRUNED = "prune"
_RELATIVE = re.compile(r"^\s*([0-9.eE+-]+)\s*x\s*@\s*([A-Za-z0-9_-]+)\s*$")


def recipe_dirs() -> list[Path]:
    """Where recipe names are looked up: ``models/`` in the working directory, then beside the package."""
    return shipped_dirs("models")


def available_recipes() -> list[str]:
    return shipped_names("models")


def find_recipe(name: str | Path) -> Path:
    """A recipe path, or the name of one in :func:`recipe_dirs` (``compact_cnn_digits``)."""
    return find_shipped(name, "models", "recipe")


@dataclass(frozen=True)
class RelativeBudget:
    """``0.5x@litert``: a fraction of the trained model's measured fp32 latency on ``runtime``."""

    factor: float
    runtime: str

    @property
    def target(self) -> str:
        return formats.export_target_for(self.runtime)

    def resolve(self, reference_ms: float) -> Budget:
        return Budget(round(self.factor * reference_ms, 6), self.runtime)

    def __str__(self) -> str:
        return f"{self.factor:g}x@{self.runtime}"


def parse_recipe_budget(text: Any) -> Budget | RelativeBudget:
    """``2ms@litert`` (:func:`~edgekit.optimization.budget.parse_budget`) or ``0.5x@litert``."""
    match = _RELATIVE.match(str(text))
    if not match:
        return parse_budget(str(text))
    factor = positive_float(f"budget {text!r}: the factor", match.group(1))
    formats.export_target_for(match.group(2).lower())  # an unknown runtime: the closest names
    return RelativeBudget(factor, match.group(2).lower())


def _names(value: Any, what: str) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else list(value or [])
    out = tuple(str(v).strip() for item in items for v in str(item).split(",") if str(v).strip())
    if not out:
        raise EdgekitError(f"{what} must name at least one")
    return out


def _flag(name: str, value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise EdgekitError(f"{name} must be true or false, got {value!r}")


@dataclass
class ExportOptions:
    """The arguments of :func:`edgekit.exporters.pipeline.export` a recipe sets, plus
    ``models``: which checkpoint stages to export (default: every one the recipe runs)."""

    targets: Any = None
    precision: Any = None
    profile: str | None = None
    models: Any = None
    nhwc: bool | None = None
    calib_size: int | None = None
    parity_size: int | None = None
    opset: int | None = None
    dynamic_batch: bool | None = None
    max_batch: int | None = None

    def __post_init__(self) -> None:
        from ..exporters.profiles import load_profile

        prof = load_profile(self.profile) if self.profile else {}
        if self.targets is None and not prof.get("targets"):
            raise EdgekitError("targets is required (or a profile that sets them), e.g. [onnx, tflite]")
        if self.targets is not None:
            self.targets = list(_names(self.targets, "targets"))
            for name in self.targets:
                if name != "all":
                    formats.target(name)
        if self.precision is not None:
            self.precision = list(_names(self.precision, "precision"))
            for name in self.precision:
                if name not in formats.PRECISIONS:
                    raise suggest(name, formats.PRECISIONS, "precision")
        if self.models is not None:
            self.models = list(_names(self.models, "models"))
            for name in self.models:
                if name not in CHECKPOINT_STAGES:
                    raise suggest(name, CHECKPOINT_STAGES, "checkpoint stage in models")
        for name, check in ExportConfig.CHECKS.items():  # None: export's default (or the profile's)
            setattr(self, name, optional(check, name, getattr(self, name)))
        for name in ("nhwc", "dynamic_batch"):
            setattr(self, name, _flag(name, getattr(self, name)))

    def arguments(self) -> dict[str, Any]:
        """Keyword arguments for ``export`` (``models`` is the runner's, not export's)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "models" and v is not None}


@dataclass
class BenchOptions:
    """The arguments of :func:`edgekit.benchmark.run.bench` a recipe sets. ``runtimes``
    naming ``torch`` also times the exported checkpoints in PyTorch eager; ``accuracy``
    scores each artifact on the recipe's data (held-out split); ``report`` writes
    :func:`edgekit.benchmark.report.report` beside the results."""

    runtimes: Any = default(BenchConfig, "runtime")
    threads: Any = default(BenchConfig, "threads")
    warmup: int = default(BenchConfig, "warmup")
    runs: int | None = None
    min_seconds: float | None = None
    max_samples: int | None = None
    accuracy: bool = True
    report: bool = True

    def __post_init__(self) -> None:
        self.runtimes = list(_names(self.runtimes, "runtimes"))
        for name in self.runtimes:
            if name != "auto":
                formats.runtime(name)
        threads = [self.threads] if isinstance(self.threads, (int, float, str)) else list(self.threads)
        cfg = BenchConfig(threads=_names([str(t) for t in threads], "threads"), warmup=self.warmup, runs=self.runs,
                          min_seconds=self.min_seconds, max_samples=self.max_samples)  # bench's own checks
        self.threads, self.warmup, self.runs = list(cfg.threads), cfg.warmup, cfg.runs
        self.min_seconds, self.max_samples = cfg.min_seconds, cfg.max_samples
        self.accuracy, self.report = bool(_flag("accuracy", self.accuracy)), bool(_flag("report", self.report))

    @property
    def times_checkpoints(self) -> bool:
        return any(r in ("torch", "torch-compile") for r in self.runtimes)


@dataclass
class Recipe:
    """A loaded, validated recipe: each stage's typed configuration (None: the section is absent)
    and ``resolved``, the merged mapping after overrides (what ``run.json`` records)."""

    name: str
    path: Path
    arch: str
    data: str
    training: TrainConfig
    prune: PruneConfig | None = None
    distill: DistillConfig | None = None
    student: str | None = None
    export: ExportOptions | None = None
    bench: BenchOptions | None = None
    optimize: OptimizeConfig | None = None
    budget: Budget | RelativeBudget | None = None
    overrides: tuple[str, ...] = ()
    resolved: dict[str, Any] = field(default_factory=dict)

    @property
    def checkpoint_stages(self) -> list[str]:
        """The stages that write a checkpoint, in order."""
        return ["train"] + [s for s in ("prune", "distill") if getattr(self, s) is not None]


def load_recipe(recipe: str | Path, overrides: Iterable[str] = (), *, trust_code: bool = False) -> Recipe:
    """Load ``recipe`` (a path or a name in ``models/``), apply ``KEY=VALUE`` overrides, validate.

    The file is safe YAML (:func:`~edgekit.shipped.read_yaml_mapping`: plain data, a mapping).
    Its ``arch`` and ``distill.student`` must be registered names: an import path there is
    refused unless ``trust_code`` (``--trust-code``, :mod:`edgekit.trust`) or the caller gave
    it itself as an override (``--set arch=pkg.mod:fn``)."""
    from omegaconf import OmegaConf
    from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

    path = find_recipe(recipe)
    overrides = tuple(overrides)
    for item in overrides:
        key, eq, _ = item.partition("=")
        if not eq or not key.strip() or key.startswith(".") or key.endswith("."):
            raise EdgekitError(f"bad override {item!r}; expected KEY=VALUE, e.g. training.epochs=2")
    data = read_yaml_mapping(path, "recipe")
    try:
        base = OmegaConf.create(data)
        merged = OmegaConf.merge(base, OmegaConf.from_dotlist(list(overrides)))
        raw = OmegaConf.to_container(merged, resolve=True, throw_on_missing=True)
    except MissingMandatoryValue as exc:
        key = getattr(exc, "full_key", None) or "a value"
        hint = " (e.g. --set data=imagefolder:PATH)" if key == "data" else f" (--set {key}=...)"
        raise EdgekitError(f"recipe {path.stem}: {key} is required{hint}") from None
    except (OmegaConfBaseException, ValueError) as exc:  # bad YAML, a broken interpolation, a bad merge
        raise EdgekitError(f"recipe {path}: {str(exc).strip().splitlines()[0]}") from None
    if not isinstance(raw, dict):
        raise EdgekitError(f"recipe {path} must be a mapping of sections ({', '.join(KEYS)})")
    _check_code(path, raw, overrides, trust_code)
    try:
        return _validate(path, raw, overrides)
    except EdgekitError as exc:
        raise EdgekitError(f"recipe {path.stem}: {exc}") from None


def _check_code(path: Path, raw: dict[str, Any], overrides: tuple[str, ...], trust_code: bool) -> None:
    """Refuse an import path the recipe file names at ``arch`` or ``distill.student`` (before
    :func:`_validate` resolves, and so imports, it) unless trusted or given by the caller's override."""
    from ..trust import check_name

    given = {key.strip(): value.strip() for key, _, value in (o.partition("=") for o in overrides)}
    distill = raw.get("distill")
    for key, value in (("arch", raw.get("arch")),
                       ("distill.student", distill.get("student") if isinstance(distill, dict) else None)):
        if isinstance(value, str) and given.get(key) != value:
            check_name(value, f"recipe {path}", key, trust_code)


def _section(raw: dict[str, Any], name: str) -> dict[str, Any] | None:
    value = raw.get(name)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise EdgekitError(f"{name} must be a mapping of options, got {value!r}")
    return dict(value)


def _in(section: str, build: Any, *args: Any) -> Any:
    """Run a section's check, naming the section in its one-line error."""
    try:
        return build(*args)
    except EdgekitError as exc:
        raise EdgekitError(f"{section}: {exc}") from None
    except TypeError as exc:  # a dataclass given an option it lacks (ExportOptions, BenchOptions)
        raise EdgekitError(f"{section}: {exc}") from None


def _validate(path: Path, raw: dict[str, Any], overrides: tuple[str, ...]) -> Recipe:
    from ..data import parse_spec
    from ..registry import get_entry

    for key in raw:
        if key not in KEYS:
            raise suggest(str(key), KEYS, "recipe section")
    for key in ("arch", "data"):
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            raise EdgekitError(f"{key} is required (a {'registry name' if key == 'arch' else 'data spec'})")
    get_entry(raw["arch"])
    parse_spec(raw["data"])
    recipe = Recipe(name=str(raw.get("name") or path.stem), path=path, arch=raw["arch"], data=raw["data"],
                    training=_in("training", TrainConfig.from_options, _section(raw, "training") or {}, "training"),
                    overrides=overrides, resolved=raw)
    prune = _section(raw, "prune")
    if prune is not None:
        recipe.prune = _in("prune", PruneConfig.from_options, prune, "prune")
    distill = _section(raw, "distill")
    if distill is not None:
        student = distill.pop("student", None)
        if not isinstance(student, str) or not student:
            raise EdgekitError("distill: student is required: a registry name, or prune (the pruned model)")
        if student == PRUNED and recipe.prune is None:
            raise EdgekitError("distill: student prune needs a prune section")
        if student != PRUNED:
            _in("distill", get_entry, student)
        recipe.student = student
        recipe.distill = _in("distill", DistillConfig.from_options, distill, "distill")
    export = _section(raw, "export")
    if export is not None:
        recipe.export = _in("export", from_options, ExportOptions, export, "export")
        missing = [m for m in recipe.export.models or [] if m not in recipe.checkpoint_stages]
        if missing:
            raise EdgekitError(f"export: models names {', '.join(missing)}, which this recipe does not run")
    bench = _section(raw, "bench")
    if bench is not None:
        if recipe.export is None:
            raise EdgekitError("bench: needs an export section (it times the exported artifacts)")
        recipe.bench = _in("bench", from_options, BenchOptions, bench, "bench")
    optimize = _section(raw, "optimize")
    if optimize is not None:
        if "budget" not in optimize:
            raise EdgekitError("optimize: budget is required, e.g. 2ms@litert or 0.5x@litert")
        recipe.budget = _in("optimize", parse_recipe_budget, optimize.pop("budget"))
        recipe.optimize = _in("optimize", OptimizeConfig.from_options, optimize, "optimize")
        if isinstance(recipe.budget, RelativeBudget):
            _in("optimize", _check_relative, recipe)
    return recipe


def _check_relative(recipe: Recipe) -> None:
    """A relative budget needs the trained model's fp32 row on its runtime from the bench stage."""
    budget, export, bench = recipe.budget, recipe.export, recipe.bench
    need = (f"budget {budget} needs the bench stage to time the trained model at fp32 on {budget.runtime} "
            f"({recipe.optimize.threads} thread(s)): export models [train, ...], targets [{budget.target}], "
            f"precision [fp32, ...], bench runtimes [{budget.runtime}] or auto")
    if export is None or bench is None or "train" not in (export.models or recipe.checkpoint_stages):
        raise EdgekitError(need)
    if export.targets is not None and budget.target not in export.targets and "all" not in export.targets:
        raise EdgekitError(need)
    if export.precision is not None and "fp32" not in export.precision:
        raise EdgekitError(need)
    if not {"auto", budget.runtime} & set(bench.runtimes) or recipe.optimize.threads not in bench.threads:
        raise EdgekitError(need)
