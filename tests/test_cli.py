"""The CLI: thin commands, one-line errors with exit 2, nothing overwritten without --force."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgekit", *args], capture_output=True, text=True, timeout=600)


def _one_line_error(res: subprocess.CompletedProcess, text: str) -> None:
    assert res.returncode == 2, (res.stdout, res.stderr)
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    assert lines[0].startswith("edgekit: error:") and text in lines[0], lines[0]


def test_info_eval_and_json(digits_ckpt: Path) -> None:
    res = run("info", str(digits_ckpt))
    assert res.returncode == 0, res.stderr
    for key in ("architecture compact_cnn", "params", "MACs", "labels       10", "val_top1", "lineage"):
        assert key in res.stdout
    data = json.loads(run("info", str(digits_ckpt), "--json").stdout)
    assert data["arch"] == "compact_cnn" and data["macs"] > 1e6
    ev = json.loads(run("eval", str(digits_ckpt), "--data", "digits", "--json").stdout)
    assert ev["n"] == 359 and 0 <= ev["top1"] <= ev["top5"] <= 100
    assert "top-1" in run("eval", str(digits_ckpt), "--data", "digits").stdout


def test_zoo_lists_params_and_macs() -> None:
    res = run("zoo", "--filter", "resnet18")
    assert res.returncode == 0
    row = [line for line in res.stdout.splitlines() if line.startswith("resnet18 ")][0].split()
    assert row[1] == "torchvision" and float(row[3]) == pytest.approx(11.69, abs=0.01)
    assert float(row[4]) == pytest.approx(1814, rel=0.01)


@pytest.mark.parametrize("args,text", [
    (["train", "--arch", "resnet81", "--data", "digits", "-o", "{tmp}/x.pt"], "did you mean resnet18"),
    (["train", "--arch", "compact_cnn", "--data", "digitz", "-o", "{tmp}/x.pt"], "unknown data source"),
    (["train", "--arch", "compact_cnn", "--data", "digits:val=2", "-o", "{tmp}/x.pt"], "digits:val=2"),
    (["train", "--arch", "compact_cnn", "--data", "digits", "--epochs", "0", "-o", "{tmp}/x.pt"], "positive"),
    # numbers: 0, negative and NaN are bad input, never "not given"
    (["train", "--arch", "compact_cnn", "--data", "digits", "--input-size", "0", "-o", "{tmp}/x.pt"],
     "--input-size must be a positive integer, got '0'"),
    (["train", "--arch", "compact_cnn", "--data", "digits", "--epochs", "-1", "-o", "{tmp}/x.pt"], "--epochs"),
    (["train", "--arch", "compact_cnn", "--data", "digits", "--lr", "nan", "-o", "{tmp}/x.pt"],
     "--lr must be a finite number"),
    (["train", "--arch", "compact_cnn", "--data", "digits", "--batch-size", "0", "-o", "{tmp}/x.pt"], "--batch-size"),
    (["train", "--arch", "compact_cnn", "--data", "digits", "--labeled-fraction", "0", "-o", "{tmp}/x.pt"],
     "--labeled-fraction must be in (0, 1], got '0'"),
    (["train", "--arch", "compact_cnn", "--data", "digits", "--labeled-fraction", "1.5", "-o", "{tmp}/x.pt"],
     "--labeled-fraction must be in (0, 1]"),
    # the deprecated name is the same option
    (["train", "--arch", "compact_cnn", "--data", "digits", "--train-fraction", "nan", "-o", "{tmp}/x.pt"],
     "--labeled-fraction must be a finite number"),
    (["train", "--arch", "compact_cnn", "--data", "digits", "--labeled-fraction", "0.002", "-o", "{tmp}/x.pt"],
     "labeled fraction 0.002 leaves class '8' (139 training samples) without a labelled sample; the smallest "
     "fraction that labels every class is 0.0036"),
    # torchvision weights names: checked before any training, never downloading
    (["train", "--arch", "compact_cnn", "--data", "digits", "--weights", "imagenet", "-o", "{tmp}/x.pt"],
     "compact_cnn has no torchvision weights to start from 'imagenet'"),
    (["train", "--arch", "resnet18", "--data", "digits", "--weights", "MobileNet_V2_Weights.IMAGENET1K_V2",
      "-o", "{tmp}/x.pt"], "MobileNet_V2_Weights.IMAGENET1K_V2 are not weights of resnet18"),
    (["train", "--arch", "tsm_mobilenet_v2", "--data", "gestures:n=40", "--weights", "ResNet18_Weights.NOPE",
      "-o", "{tmp}/x.pt"], "unknown torchvision weights 'ResNet18_Weights.NOPE'; tsm_mobilenet_v2 takes imagenet"),
    (["train", "--arch", "compact_cnn", "--data", "digits", "--weight-decay", "-1", "-o", "{tmp}/x.pt"],
     "--weight-decay"),
    (["train", "--arch", "compact_cnn", "--data", "digits", "--precise-bn", "-1", "-o", "{tmp}/x.pt"],
     "--precise-bn"),
    (["train", "--arch", "compact_cnn", "--data", "digits", "--lr-schedule", "step", "--milestones", "0.75,0.5",
      "-o", "{tmp}/x.pt"], "--milestones must be strictly increasing"),
    (["train", "--arch", "compact_cnn", "--data", "digits", "--lr-schedule", "step", "--milestones", "50,75",
      "-o", "{tmp}/x.pt"], "--milestones are fractions of the epochs"),
    (["train", "--arch", "compact_cnn", "--data", "digits", "--milestones", "0.5", "-o", "{tmp}/x.pt"],
     "--milestones belongs to --lr-schedule step"),
    (["train", "--arch", "compact_cnn", "--data", "digits", "--lr-schedule", "exp", "-o", "{tmp}/x.pt"],
     "--lr-schedule"),
    (["eval", "{tmp}/corrupt.pt", "--batch-size", "0"], "--batch-size"),
    (["quickstart", "-o", "{tmp}/qs", "--epochs", "0"], "--epochs"),
    (["prune", "{tmp}/corrupt.pt", "-o", "{tmp}/x.pt", "--proxy-size", "0"], "--proxy-size"),
    (["prune", "{tmp}/corrupt.pt", "-o", "{tmp}/x.pt", "--finetune-epochs", "-1"], "--finetune-epochs"),
    (["prune", "{tmp}/corrupt.pt", "-o", "{tmp}/x.pt", "--lr", "nan"], "--lr"),
    (["prune", "{tmp}/corrupt.pt", "-o", "{tmp}/x.pt", "--min-keep", "nan"], "--min-keep"),
    (["prune", "{tmp}/corrupt.pt", "-o", "{tmp}/x.pt", "--round-to", "0"], "--round-to"),
    (["distill", "--teacher", "{tmp}/corrupt.pt", "--student", "compact_cnn_s", "-o", "{tmp}/x.pt",
      "--input-size", "0"], "--input-size"),
    (["distill", "--teacher", "{tmp}/corrupt.pt", "--student", "compact_cnn_s", "-o", "{tmp}/x.pt",
      "--epochs", "-1"], "--epochs"),
    (["distill", "--teacher", "{tmp}/corrupt.pt", "--student", "compact_cnn_s", "-o", "{tmp}/x.pt",
      "--temperature", "0"], "--temperature"),
    (["distill", "--teacher", "{tmp}/corrupt.pt", "--student", "compact_cnn_s", "-o", "{tmp}/x.pt",
      "--hash-num", "0"], "--hash-num"),
    (["distill", "--teacher", "{tmp}/corrupt.pt", "--student", "compact_cnn_s", "-o", "{tmp}/x.pt",
      "--lr", "nan"], "--lr"),
    (["info", "{tmp}/missing.pt"], "not found"),
    (["info", "{tmp}/corrupt.pt"], "not a readable edgekit checkpoint"),
    (["eval", "{tmp}/corrupt.pt", "--data", "digits"], "not a readable edgekit checkpoint"),
])
def test_bad_input_is_one_line_exit_2(tmp_path: Path, args: list[str], text: str) -> None:
    (tmp_path / "corrupt.pt").write_bytes(b"PK\x03\x04 truncated zip")
    _one_line_error(run(*[a.format(tmp=tmp_path) for a in args]), text)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corrupt.pt"]  # nothing written


def test_stage_configs_reject_bad_numbers() -> None:
    """The library checks what the CLI checks: one-line EdgekitError, 0/negative/NaN never "not given"."""
    from edgekit.compress.distill_config import DistillConfig
    from edgekit.compress.prune_config import PruneConfig
    from edgekit.errors import EdgekitError

    for cls, options, text in [(PruneConfig, {"proxy_size": 0}, "proxy_size"),
                               (PruneConfig, {"lr": float("nan")}, "lr must be a finite number"),
                               (PruneConfig, {"method": "l3"}, "unknown pruning method .l3.; did you mean"),
                               (PruneConfig, {"finetune_epochs": -1}, "finetune_epochs"),
                               (DistillConfig, {"input_size": 0}, "input_size"),
                               (DistillConfig, {"hash_num": 0}, "hash_num"),
                               (DistillConfig, {"alpha": -1.0}, "alpha"),
                               (DistillConfig, {"method": "kd+lhs"}, "did you mean lsh"),
                               (DistillConfig, {"precise_bn": -2}, "precise_bn")]:
        with pytest.raises(EdgekitError, match=text):
            cls(**options)
        assert "\n" not in str(pytest.raises(EdgekitError, cls, **options).value)


def test_existing_output_is_kept_without_force(tmp_path: Path, digits_ckpt: Path) -> None:
    target = tmp_path / "model.pt"
    target.write_bytes(digits_ckpt.read_bytes())
    res = run("train", "--arch", "compact_cnn", "--data", "digits", "-o", str(target))
    _one_line_error(res, "--force")
    assert target.read_bytes() == digits_ckpt.read_bytes()
    (tmp_path / "qs").mkdir()
    (tmp_path / "qs" / "keep.txt").write_text("mine")
    _one_line_error(run("quickstart", "-o", str(tmp_path / "qs")), "not empty")
    assert (tmp_path / "qs" / "keep.txt").read_text() == "mine"


# ------------------------------------------------------------------------------------------------
# Every command, read from the click group (a new command is covered automatically): its --help,
# one good call and one bad call. In-process (click's runner) to stay fast; test_fuzz.py checks that
# in-process results agree with real `python -m edgekit` processes.
# ------------------------------------------------------------------------------------------------

def _command_names() -> list[str]:
    from edgekit.cli import main

    return sorted(main.commands)


def _invoke(*args: str):  # -> click.testing.Result
    from click.testing import CliRunner

    from edgekit.cli import main

    return CliRunner().invoke(main, list(args), prog_name="edgekit")


def test_top_level_help_lists_every_command() -> None:
    """The real entry point: `edgekit --help` exits 0 and names every command of the group."""
    res = run("--help")
    assert res.returncode == 0 and not res.stderr, res.stderr
    listed = {line.split()[0] for line in res.stdout.split("Commands:")[1].splitlines() if line.strip()}
    assert listed == set(_command_names())


def test_train_help_names_weights_and_labeled_fraction() -> None:
    out = " ".join(_invoke("train", "--help").stdout.split())
    for text in ("--labeled-fraction", "--train-fraction is its old, deprecated name", "'imagenet'",
                 "MobileNet_V2_Weights.IMAGENET1K_V2", "EDGEKIT_OFFLINE=1 never downloads"):
        assert text in out, text


@pytest.mark.parametrize("name", _command_names())
def test_command_help(name: str) -> None:
    res = _invoke(name, "--help")
    assert res.exit_code == 0 and not res.stderr, res.output
    assert res.stdout.startswith(f"Usage: edgekit {name} ") and "--help" in res.stdout


# One bad call per command: (args, text the one line must hold). {tmp} is the test's folder.
BAD_CALLS: dict[str, tuple[list[str], str]] = {
    "train": (["--arch", "compact_cnn", "--data", "digits", "-o", "{tmp}/x.pt", "--epochs", "nan"], "--epochs"),
    "eval": (["{tmp}/missing.pt", "--data", "digits"], "not found"),
    "info": (["{tmp}/missing.pt"], "not found"),
    "zoo": (["--no-such-option"], "No such option"),
    "quickstart": (["-o", "{tmp}/keep", "--epochs", "1"], "not empty"),
    "distill": (["--teacher", "{tmp}/missing.pt", "--student", "compact_cnn_s", "-o", "{tmp}/x.pt"], "not found"),
    "bench": (["{tmp}/missing.onnx", "--runs", "0"], "--runs"),
    "report": (["{tmp}/missing.json", "-o", "{tmp}/rep"], "not found"),
    "export": (["{tmp}/missing.pt", "-o", "{tmp}/exp"], "not found"),
    "verify": (["{tmp}/missing.onnx", "--checkpoint", "{tmp}/missing.pt", "-n", "0"], "-n"),
    "prune": (["{tmp}/missing.pt", "-o", "{tmp}/x.pt"], "not found"),
    "optimize": (["{tmp}/missing.pt", "--budget", "fast", "-o", "{tmp}/opt"], "--budget"),
    "run": (["no_such_recipe_zz", "-o", "{tmp}/run"], "no_such_recipe_zz"),
    "demo": (["--model", "{tmp}/missing.tflite", "--port", "0"], "--port"),
    "pretrain": (["--arch", "resnet18", "--data", "digits", "-o", "{tmp}/x.ckpt", "--from", "{tmp}/missing.ckpt"],
                 "not found"),
}


@pytest.mark.parametrize("name", _command_names())
def test_command_bad_call_is_one_line_exit_2(name: str, tmp_path: Path) -> None:
    assert name in BAD_CALLS, f"add a bad call for the new command {name!r} to BAD_CALLS"
    args, text = BAD_CALLS[name]
    (tmp_path / "keep").mkdir()
    (tmp_path / "keep" / "mine.txt").write_text("mine")
    res = _invoke(name, *[a.format(tmp=tmp_path) for a in args])
    assert res.exit_code == 2, (res.stdout, res.stderr)
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("edgekit: error:") and text in lines[0], res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep"]  # nothing written
    assert (tmp_path / "keep" / "mine.txt").read_text() == "mine"


# Good calls of the commands whose cheapest real run takes minutes or serves forever live in their
# own files; the test named here runs that command and succeeds.
GOOD_ELSEWHERE = {
    "distill": ("test_distill.py", "def test_cli_distill("),
    "optimize": ("test_optimize.py", "def searched("),
    "run": ("test_recipes.py", "def test_run_end_to_end_reuses_and_recomputes_downstream_only("),
    "quickstart": ("test_quickstart.py", "def test_quickstart_end_to_end("),
    "demo": ("test_demo.py", '[sys.executable, "-m", "edgekit", "demo"'),
    "pretrain": ("test_pretrain.py", "def test_cli_pretrain_good_call("),
}


@pytest.fixture(scope="module")
def good_calls(tmp_path_factory: pytest.TempPathFactory, digits_ckpt: Path) -> dict[str, Any]:
    """One cheap successful call of each command (in dependency order: export before verify, bench
    before report), run once for the module; per command the runner's result and its output path."""
    tmp = tmp_path_factory.mktemp("good")
    ck = str(digits_ckpt)
    calls = {
        "zoo": ["zoo", "--filter", "resnet18", "--no-macs"],
        "info": ["info", ck],
        "eval": ["eval", ck, "--data", "digits", "--json", f"{tmp}/eval.json"],
        "train": ["train", "--arch", "compact_cnn", "--data", "synthetic:classes=2,n=40", "--epochs", "2",
                  "--batch-size", "16", "--arch-arg", "width_mult=0.25", "--precise-bn", "0", "-o", f"{tmp}/t.pt",
                  "--mix", "mwh", "--lr-schedule", "step", "--milestones", "0.5", "--labeled-fraction", "0.5"],
        "prune": ["prune", ck, "-o", f"{tmp}/p.pt", "--target", "macs=0.7", "--scoring", "fisher", "--steps", "1",
                  "--proxy-size", "32", "--finetune-epochs", "0", "--precise-bn", "0"],
        "export": ["export", ck, "-t", "onnx", "-o", f"{tmp}/exp", "--parity-size", "16", "--calib-size", "16"],
        "verify": ["verify", "{onnx}", "--checkpoint", ck, "-n", "16"],
        "bench": ["bench", ck, "--runtime", "torch", "--runs", "3", "--warmup", "0", "-o", f"{tmp}/bench.json"],
        "report": ["report", f"{tmp}/bench.json", "-o", f"{tmp}/rep"],
    }
    out: dict[str, Any] = {}
    for name, args in calls.items():
        if name == "verify":
            args = [next((tmp / "exp").glob("*.onnx")).as_posix() if a == "{onnx}" else a for a in args]
        out[name] = _invoke(*args)
    out["tmp"] = tmp
    return out


@pytest.mark.parametrize("name", _command_names())
def test_command_good_call(name: str, good_calls: dict[str, Any]) -> None:
    if name in GOOD_ELSEWHERE:
        file, marker = GOOD_ELSEWHERE[name]
        assert marker in (Path(__file__).parent / file).read_text(), f"{file} no longer has {marker}"
        return
    assert name in good_calls, f"add a cheap good call for the new command {name!r} to good_calls"
    res, tmp = good_calls[name], good_calls["tmp"]
    assert res.exit_code == 0, (res.stdout, res.stderr, res.exception)
    expect = {"zoo": lambda: "resnet18 " in res.stdout,
              "info": lambda: "architecture compact_cnn" in res.stdout,
              "eval": lambda: json.loads((tmp / "eval.json").read_text())["n"] == 359,
              "train": lambda: (tmp / "t.pt").is_file() and "val top-1" in res.stdout and _step_schedule(tmp / "t.pt")
              and torch_load_data(tmp / "t.pt")["labeled_fraction"] == 0.5,
              "prune": lambda: (tmp / "p.pt").is_file() and "MACs" in res.stdout,
              "export": lambda: any((tmp / "exp").glob("*.onnx")) and "cosine" in res.stdout,
              "verify": lambda: "parity gate passed" in res.stdout,
              "bench": lambda: json.loads((tmp / "bench.json").read_text())["rows"][0]["error"] is None,
              "report": lambda: (tmp / "rep").is_dir() and any((tmp / "rep").iterdir())}[name]
    assert expect(), res.stdout


def torch_load_data(path: Path) -> dict[str, Any]:
    from edgekit.checkpoint import load_checkpoint

    return load_checkpoint(path).data


def _step_schedule(path: Path) -> bool:
    """The good train call's checkpoint records its step schedule; its log, the lr / 10 after epoch 1 of 2,
    and mWh's mixed fractions at 2 epochs (epoch 1 mixes, epoch 2 is an odd epoch of the alternating phase)."""
    from edgekit import load_checkpoint

    sched = load_checkpoint(path).provenance["lr_schedule"]
    log = [json.loads(line) for line in Path(f"{path}.metrics.jsonl").read_text().splitlines()]
    return sched["name"] == "step" and sched["milestones"] == [0.5] and sched["milestone_epochs"] == [1.0] and \
        [r["lr"] for r in log] == pytest.approx([0.005, 0.005]) and [r["mixed"] for r in log] == [1.0, 0.0]


def test_train_help_names_the_schedule_options() -> None:
    res = _invoke("train", "--help")
    assert res.exit_code == 0
    for text in ("--lr-schedule [cosine|step]", "--milestones", "fractions", "max(lambda, 1 -"):
        assert text in " ".join(res.stdout.split()), text


@pytest.mark.parametrize("exc,code,text", [
    (PermissionError(13, "Permission denied", "/srv/out/model.pt"), 2,
     "edgekit: error: /srv/out/model.pt: Permission denied"),
    (IsADirectoryError(21, "Is a directory", "/srv/out"), 2, "edgekit: error: /srv/out: Is a directory"),
    (OSError(28, "No space left on device", "/srv/a.tmp", None, "/srv/a.pt"), 2,
     "edgekit: error: /srv/a.tmp -> /srv/a.pt: No space left on device"),
    (MemoryError(), 1, "edgekit: error: out of memory"),
    (KeyboardInterrupt(), 130, "edgekit: interrupted"),
    (ValueError("shapes (3,) and (4,)\nnot aligned"), 1, "edgekit: internal error"),
])
def test_backstop_turns_any_failure_into_one_line(monkeypatch: pytest.MonkeyPatch, exc: BaseException, code: int,
                                                  text: str) -> None:
    """Whatever escapes a command (an OSError naming its path, out of memory, Ctrl-C, a bug) is one
    stderr line and a non-zero exit, never a traceback; -v or EDGEKIT_DEBUG=1 re-raise a real failure."""
    import edgekit.evaluation.inspect

    def boom(*args: Any, **kwargs: Any) -> None:
        raise exc

    monkeypatch.setattr(edgekit.evaluation.inspect, "zoo_rows", boom)
    monkeypatch.delenv("EDGEKIT_DEBUG", raising=False)
    res = _invoke("zoo")
    assert res.exit_code == code, (res.stderr, res.exception)
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(text) and "Traceback" not in res.stderr, res.stderr
    if code == 130:
        return
    for args, env in ((["-v", "zoo"], None), (["zoo"], "1")):
        if env:
            monkeypatch.setenv("EDGEKIT_DEBUG", env)
        res = _invoke(*args)
        assert res.exception is exc and res.exit_code == 1, (res.stderr, res.exception)  # the traceback's way
    monkeypatch.setenv("EDGEKIT_DEBUG", "0")
    assert _invoke("zoo").exit_code == code


def test_backstop_keeps_usage_errors_of_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    """A click usage error raised inside a command stays the usage error (exit 2), not a bug."""
    import click

    import edgekit.evaluation.inspect

    def bad(*args: Any, **kwargs: Any) -> None:
        raise click.BadParameter("no good", param_hint="'--filter'")

    monkeypatch.setattr(edgekit.evaluation.inspect, "zoo_rows", bad)
    res = _invoke("zoo")
    assert res.exit_code == 2 and res.stderr.strip() == "edgekit: error: Invalid value for '--filter': no good"


def test_cli_starts_without_importing_torch() -> None:
    """The CLI's option tables (configs, registries' names) are torch-free: `edgekit --help` and a
    one-line error answer at once; torch is imported by the stage that needs it."""
    code = "import sys, edgekit.cli; assert 'torch' not in sys.modules, 'edgekit.cli imported torch'"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
