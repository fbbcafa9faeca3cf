"""Every stage's typed config: bad numbers refused in one line, and the CLI's defaults read from
the configs (a default lives in one place). Torch-free and fast: no model is built."""
from __future__ import annotations

import dataclasses
import math

import click
import pytest

from edgekit.benchmark.config import BenchConfig
from edgekit.cli import main
from edgekit.compress.prune_config import PruneConfig
from edgekit.demo.config import DemoConfig
from edgekit.errors import EdgekitError
from edgekit.evaluation.config import STREAM_BATCH_SIZE, EvalConfig
from edgekit.exporters.config import DEFAULT_OPSET, SAMPLE_IMAGES, STREAM_CLIPS, ExportConfig
from edgekit.optimization.config import PRUNE_OPTIONS, OptimizeConfig
from edgekit.stage_config import default, from_options

CONFIGS = [BenchConfig, EvalConfig, ExportConfig, DemoConfig]
# (config, field, values it must refuse): zero only where the field must be positive
BAD = [(cls, name, ["-1", -1, math.nan, math.inf] + ([0] if check.__name__.startswith("positive") else []))
       for cls in CONFIGS for name, check in cls.CHECKS.items()]


@pytest.mark.parametrize("cls,name,values", BAD, ids=[f"{c.__name__}.{n}" for c, n, _ in BAD])
def test_config_refuses_bad_numbers_in_one_line(cls: type, name: str, values: list) -> None:
    for value in values:
        with pytest.raises(EdgekitError) as err:
            cls(**{name: value})
        msg = str(err.value)
        assert msg.startswith(name) and "\n" not in msg, msg
    cls(**{name: default(cls, name)})  # the default itself passes


def test_configs_defaults_and_cross_checks() -> None:
    assert ExportConfig().calib_size == ExportConfig().parity_size == SAMPLE_IMAGES
    assert ExportConfig(streaming=True).calib_size == STREAM_CLIPS  # whole clips when streaming
    assert BenchConfig(threads="1,2").threads == (1, 2)
    with pytest.raises(EdgekitError, match="runs or min_seconds"):
        BenchConfig(runs=3, min_seconds=1.0)
    with pytest.raises(EdgekitError, match="port must be at most"):
        DemoConfig(port=70000)
    assert DemoConfig(host="127.0.0.1").listen_port == 8000 and DemoConfig().listen_port == 8443
    with pytest.raises(EdgekitError, match="stride"):
        EvalConfig(stride="0")
    with pytest.raises(EdgekitError, match="split"):
        EvalConfig(split="test")
    # evaluate_streaming batches whole clips: its own, documented default, not the image batch
    assert STREAM_BATCH_SIZE < default(EvalConfig, "batch_size")
    with pytest.raises(EdgekitError, match="did you mean"):
        from_options(BenchConfig, {"warmpu": 1}, "bench")


def _params(command: str) -> dict[str, click.Parameter]:
    return {p.name: p for p in main.commands[command].params}


@pytest.mark.parametrize("command,cls,names", [
    ("bench", BenchConfig, ["runtime", "batch", "warmup", "timeout"]),
    ("eval", EvalConfig, ["split", "batch_size", "device", "stride", "window", "agree", "bins", "workers"]),
    ("demo", DemoConfig, ["host"]),
])
def test_cli_defaults_are_the_configs(command: str, cls: type, names: list[str]) -> None:
    params = _params(command)
    for name in names:
        assert params[name].default == default(cls, name), (command, name)
        assert params[name].show_default
    for name, check in cls.CHECKS.items():  # the CLI's type runs the config's own check
        if name in params:
            assert getattr(params[name].type, "check", None) is check, (command, name)


def test_cli_help_shows_the_config_defaults() -> None:
    from click.testing import CliRunner

    bench = _params("bench")
    assert bench["threads"].default == ",".join(map(str, default(BenchConfig, "threads")))
    assert _params("verify")["n"].default == SAMPLE_IMAGES
    export, unset = _params("export"), (None, getattr(click.core, "UNSET", None))  # click >= 8.2: UNSET
    for name in ("calib_size", "parity_size", "opset", "max_batch"):  # not given: the profile's, else the config's
        assert export[name].default in unset and export[name].type.check is ExportConfig.CHECKS[name]
    text = " ".join(CliRunner().invoke(main, ["export", "--help"]).output.split())
    assert f"Calibration images (default {SAMPLE_IMAGES})" in text and f"(default {DEFAULT_OPSET})" in text
    assert f"whole clips (default {STREAM_CLIPS})" in text
    assert "default onnx" in text


def test_optimize_shares_prune_options() -> None:
    """OptimizeConfig's pruning options are PruneConfig's: same defaults where prune has one, same checks."""
    cfg = OptimizeConfig()
    for name in ("proxy_size", "min_keep", "scoring", "seed", "batch_size", "device", "precise_bn"):
        assert getattr(cfg, name) == default(PruneConfig, name), name
    assert cfg.steps == PruneConfig(target="macs=0.5", scoring=cfg.scoring).steps  # what prune picks itself
    pc = cfg.prune_config(0.25, 16, "scores.pt")
    assert (pc.target, pc.round_to, pc.finetune_epochs, pc.scores_path) == ("macs=0.25", 16, 0, "scores.pt")
    assert {n: getattr(pc, n) for n in PRUNE_OPTIONS if n != "round_to"} == \
        {n: getattr(cfg, n) for n in PRUNE_OPTIONS if n != "round_to"}
    assert "prune_config" not in {f.name for f in dataclasses.fields(OptimizeConfig)}
    for bad in ({"proxy_size": 0}, {"steps": -1}, {"min_keep": math.nan}, {"scoring": "nope"}, {"round_to": 0}):
        with pytest.raises(EdgekitError):
            OptimizeConfig(**bad)
