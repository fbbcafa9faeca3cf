"""Outputs never hurt inputs: every stage checks its output paths before any work.

An output that is also an input is refused even with --force; a bad output path (empty, a
folder for a file or the reverse, a parent that is a file or cannot be written) is one line
up front; a file that is not the stage's own kind is never overwritten; a score cache names
its parent checkpoint; a write killed mid-way leaves nothing the next write does not clean.
Every case asserts the inputs' bytes are unchanged.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from edgekit.cli import main
from edgekit.errors import EdgekitError
from edgekit.fileio import atomic_path, check_writable, remove_stale_temps, sha256_file

DATA = "synthetic:classes=4,n=48"


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained compact_cnn checkpoint on 4-class synthetic shapes (saved, never trained: instant)."""
    from edgekit.checkpoint import save_checkpoint
    from edgekit.data.transforms import make_input_spec
    from edgekit.registry import create_model

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("outputs") / "model.pt"
    save_checkpoint(path, create_model("compact_cnn", num_classes=4, width_mult=0.5), arch="compact_cnn",
                    arch_kwargs={"num_classes": 4, "width_mult": 0.5}, labels=list("abcd"),
                    input_spec=make_input_spec(32), provenance={"data": DATA})
    return path


def cli(*args: str | Path) -> tuple[int, str]:
    """Run the CLI in-process; returns the exit status and stderr (an uncaught exception fails the test)."""
    res = CliRunner().invoke(main, [str(a) for a in args])
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        raise AssertionError(f"traceback from {args}") from res.exception
    return res.exit_code, res.stderr


def refused(args: list[str | Path], text: str, *unchanged: Path) -> None:
    """The command exits 2 with one line holding ``text``, and the ``unchanged`` files keep their bytes."""
    before = {p: sha256_file(p) for p in unchanged}
    code, err = cli(*args)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, (args, code, err)
    assert lines[0].startswith("edgekit: error:") and text in lines[0], (args, lines[0])
    assert {p: sha256_file(p) for p in unchanged} == before, args


def test_output_that_is_an_input_is_refused_even_with_force(ckpt: Path, tmp_path: Path) -> None:
    link = tmp_path / "alias.pt"
    link.symlink_to(ckpt)
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"format": "edgekit.bench", "version": 1, "rows": []}))
    for args in (["eval", ckpt, "--json", ckpt, "--force"],
                 ["prune", ckpt, "-o", ckpt, "--force"],
                 ["prune", ckpt, "-o", link, "--force"],  # the same file under another name
                 ["prune", ckpt, "-o", tmp_path / "p.pt", "--scores", ckpt],
                 ["prune", ckpt, "-o", tmp_path / "p.pt", "--scores", ckpt, "--force"],
                 ["export", ckpt, "-o", ckpt],
                 ["bench", ckpt, "-o", ckpt, "--force"],
                 ["bench", results, "-o", results, "--force"],
                 ["report", results, "-o", results],
                 ["optimize", ckpt, "--budget", "2ms@onnxruntime", "-o", ckpt],
                 ["distill", "--teacher", ckpt, "--student", "compact_cnn_s", "-o", ckpt, "--force"],
                 ["train", "--arch", "compact_cnn", "--data", DATA, "--weights", ckpt, "-o", ckpt, "--force"]):
        refused(args, "is also an input", ckpt, results)
    # a results file inside the report folder under a name the report writes
    own = tmp_path / "rep" / "report.md"
    own.parent.mkdir()
    own.write_text("{}")
    refused(["report", own, "-o", own.parent, "--force"], "is also an input", own)
    refused(["prune", ckpt, "-o", tmp_path / "same.pt", "--scores", tmp_path / "same.pt"], "both name")
    # the API's named teacher cache of distillation, too: never over the teacher, never over a stranger
    from edgekit.compress.distill import distill

    notes = tmp_path / "notes.txt"
    notes.write_text("mine\n")
    for cache, text in ((ckpt, "is also an input"), (notes, "not an edgekit teacher-output cache")):
        with pytest.raises(EdgekitError, match=text):
            distill(ckpt, "compact_cnn_s", DATA, tmp_path / "s.pt", cache_teacher=cache, progress=False)
    assert notes.read_text() == "mine\n"


def test_bad_output_paths_are_one_line_before_any_work(ckpt: Path, tmp_path: Path) -> None:
    a_file = tmp_path / "file.txt"
    a_file.write_text("not a folder\n")
    a_dir = tmp_path / "folder"
    a_dir.mkdir()
    many = ["--epochs", "100000"]  # any work done before the check would never finish
    train = ["train", "--arch", "compact_cnn", "--data", DATA, *many]
    t0 = time.perf_counter()
    for args, text in (
            ([*train, "-o", ""], "output path is empty"),
            ([*train, "-o", "."], "is a folder"),
            ([*train, "-o", a_dir], "is a folder"),
            ([*train, "-o", a_file / "x.pt"], "is a file, not a folder"),
            ([*train, "-o", a_file / "deeper" / "x.pt"], "is a file, not a folder"),
            ([*train, "-o", "/proc/edgekit-test/x.pt"], "not writable"),
            (["eval", ckpt, "--json", ""], "output path is empty"),
            (["eval", ckpt, "--json", a_dir], "is a folder"),
            (["bench", ckpt, "-o", ""], "output path is empty"),
            (["bench", ckpt, "-o", a_file / "r.json"], "is a file, not a folder"),
            (["prune", ckpt, "-o", "", "--force"], "output path is empty"),
            (["prune", ckpt, "-o", tmp_path / "p.pt", "--scores", a_dir], "is a folder"),
            (["prune", ckpt, "-o", tmp_path / "p.pt", "--scores", a_file / "s.pt"], "is a file, not a folder"),
            (["prune", ckpt, "-o", a_file / "p.pt"], "is a file, not a folder"),
            (["distill", "--teacher", ckpt, "--student", "compact_cnn_s", "-o", a_dir, *many], "is a folder"),
            (["export", ckpt, "-o", a_file], "is not a folder"),
            (["export", ckpt, "-o", a_file / "sub"], "is a file, not a folder"),
            (["optimize", ckpt, "--budget", "2ms@onnxruntime", "-o", a_file], "is not a folder"),
            (["report", ckpt, "-o", a_file], "is not a folder"),
            (["report", ckpt, "-o", ""], "output path is empty"),
            (["run", "quickstart", "-o", a_file], "is not a folder"),
            (["quickstart", "-o", a_file], "is not a folder"),
            (["quickstart", "-o", "/proc/edgekit-test"], "not writable")):
        refused(args, text, ckpt, a_file)
    assert time.perf_counter() - t0 < 120  # no training, scoring or measuring ran
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt", "folder"]  # nothing left behind


def test_read_only_folder_is_one_line(ckpt: Path, tmp_path: Path) -> None:
    """A folder the process cannot write: mode 555 for a user; root writes through modes, so as root
    the folder is one under /proc, which no one can create files in."""
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    if os.geteuid() == 0:
        ro = Path("/proc/edgekit-read-only")
    try:
        refused(["eval", ckpt, "--json", ro / "e.json"], "not writable", ckpt)
        refused(["export", ckpt, "-o", ro / "sub"], "not writable", ckpt)
    finally:
        (tmp_path / "ro").chmod(0o755)


def test_a_file_of_another_kind_is_never_overwritten(ckpt: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.pt"
    other.write_bytes(ckpt.read_bytes())  # another checkpoint: not a score cache
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    config = tmp_path / "config.json"
    config.write_text('{"not": "bench results"}\n')
    for force in ([], ["--force"]):
        refused(["prune", ckpt, "-o", tmp_path / "p.pt", "--scores", other, *force], "is not an edgekit score cache",
                ckpt, other)
        refused(["prune", ckpt, "-o", tmp_path / "p.pt", "--scores", notes, *force], "is not an edgekit score cache",
                ckpt, notes)
        refused(["prune", ckpt, "-o", notes, *force], "is not an edgekit checkpoint", ckpt, notes)
        refused(["train", "--arch", "compact_cnn", "--data", DATA, "-o", notes, *force], "is not an edgekit checkpoint",
                notes)
        refused(["bench", ckpt, "-o", config, *force], "is not an edgekit bench results", ckpt, config)
        refused(["eval", ckpt, "--json", notes, *force], "is not a JSON file", ckpt, notes)
    # a report folder holding files the report did not write
    rep = tmp_path / "rep"
    rep.mkdir()
    (rep / "report.md").write_text("# my own page\n")
    (rep / "latency.png").write_text("not a png")
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"format": "edgekit.bench", "version": 1, "rows": []}))
    refused(["report", results, "-o", rep, "--force"], "is not an edgekit report", rep / "report.md")
    (rep / "report.md").unlink()
    refused(["report", results, "-o", rep, "--force"], "is not a PNG figure", rep / "latency.png")
    # the API refuses too: a checkpoint is never written over a file that is not one
    from edgekit.checkpoint import load_checkpoint

    with pytest.raises(EdgekitError, match="never overwritten"):
        load_checkpoint(ckpt).save(notes, force=True)
    assert notes.read_text() == "my notes\n"


def test_run_folder_of_other_files_is_refused(tmp_path: Path) -> None:
    mine = tmp_path / "work"
    (mine / "train").mkdir(parents=True)
    (mine / "train" / "thesis.tex").write_text("years of work\n")
    refused(["run", "quickstart", "-o", mine], "not an earlier run's", mine / "train" / "thesis.tex")
    refused(["quickstart", "-o", mine, "--force"], "not an earlier run's", mine / "train" / "thesis.tex")


def test_score_cache_has_a_header_and_names_its_parent(ckpt: Path, tmp_path: Path) -> None:
    from edgekit.checkpoint import load_checkpoint
    from edgekit.compress.prune import SCORES_FORMAT, SCORES_VERSION, prune

    cache = tmp_path / "scores.pt"
    torch.save({"format": SCORES_FORMAT, "version": SCORES_VERSION, "parent": "0" * 64, "key": {"parent": "0" * 64},
                "scores": {}}, cache)
    foreign = sha256_file(cache)
    opts = dict(target="macs=0.7", method="l1", proxy_size=8, finetune_epochs=0, precise_bn=0, progress=False,
                scores_path=cache)
    with pytest.raises(EdgekitError, match="scores of another checkpoint.*--force"):
        prune(ckpt, DATA, tmp_path / "p.pt", **opts)
    assert sha256_file(cache) == foreign and not (tmp_path / "p.pt").exists()
    prune(ckpt, DATA, tmp_path / "p.pt", force=True, **opts)  # --force replaces another parent's scores
    obj = torch.load(cache, weights_only=True)
    assert (obj["format"], obj["version"], obj["parent"]) == (SCORES_FORMAT, SCORES_VERSION,
                                                              load_checkpoint(ckpt).sha256)
    again = prune(ckpt, DATA, tmp_path / "p.pt", force=True, **opts)  # its own parent's scores are reused
    assert again.metrics["scores_cached"]


def test_killed_write_leaves_a_temp_the_next_write_removes(tmp_path: Path) -> None:
    target = tmp_path / "model.pt"
    target.write_bytes(b"previous version")
    code = ("import os, signal, sys\nfrom edgekit.fileio import atomic_path\n"
            "with atomic_path(sys.argv[1]) as tmp:\n"
            "    tmp.write_bytes(b'half')\n    os.kill(os.getpid(), signal.SIGKILL)\n")
    res = subprocess.run([sys.executable, "-c", code, str(target)], capture_output=True, timeout=120)
    assert res.returncode == -signal.SIGKILL
    stale = [p for p in tmp_path.iterdir() if p.name.startswith(".model.pt.") and p.name.endswith(".tmp")]
    assert len(stale) == 1 and target.read_bytes() == b"previous version"  # the old version intact
    live = tmp_path / f".model.pt.{os.getpid()}.abcdefgh.tmp"  # a write in progress (this process) stays
    live.write_bytes(b"")
    kept = [tmp_path / ".model.pt.backup", tmp_path / ".other.pt.12345.abcdefgh.tmp", tmp_path / "model.pt.tmp"]
    for p in kept:
        p.write_bytes(b"not the writer's")
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"new version")
    assert target.read_bytes() == b"new version"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["model.pt", live.name, *(p.name for p in kept)])
    assert remove_stale_temps(target) == []  # the live one is not stale


def test_check_writable_api(tmp_path: Path) -> None:
    """The one check, directly: inputs by path or by object, folders, kinds, force."""
    from edgekit.fileio import Kind

    f = tmp_path / "a.json"
    f.write_text("{}")
    with pytest.raises(EdgekitError, match="already exists; pass --force"):
        check_writable(f, False)
    assert check_writable(f, True) == f
    with pytest.raises(EdgekitError, match="is not a thing"):
        check_writable(f, True, kind=Kind("a thing", lambda p: False))

    class Loaded:
        path = str(f)

    with pytest.raises(EdgekitError, match="is also an input"):
        check_writable(tmp_path / "." / "a.json", True, inputs=[Loaded()])
    assert check_writable(tmp_path / "new" / "deeper", folder=True, inputs=[f]) == tmp_path / "new" / "deeper"
    assert not (tmp_path / "new").exists()  # checking creates nothing
