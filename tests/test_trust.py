"""A model file is data: crafted checkpoints, recipes and profiles never choose code.

Each attack file is made in the test. The architectures a file may name are the registered
ones; an import path in a file is refused in one line naming it and --trust-code, and is never
imported (a probe module writes a marker file when imported, or the victim file stays intact).
"""
from __future__ import annotations

import os
import subprocess
import sys
import uuid
import zipfile
from pathlib import Path
from typing import Any

import pytest
import torch

from edgekit.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from edgekit.data.transforms import make_input_spec
from edgekit.errors import EdgekitError
from edgekit.registry import create_model, get_entry, list_models, register_model
from edgekit.trust import UntrustedCode, trusting

ROOT = Path(__file__).resolve().parents[1]

PROBE = ("import pathlib, torch.nn as nn\n"
         "pathlib.Path({marker!r}).write_text('imported')\n"
         "def tiny(num_classes=2, **kw):\n"
         "    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(),\n"
         "                         nn.Linear(4, num_classes))\n")


def probe_module(folder: Path, marker: Path) -> str:
    """A module in ``folder`` that writes ``marker`` when imported, with a factory ``tiny``; its name
    is unique so that no earlier import in this process counts."""
    name = f"trust_probe_{uuid.uuid4().hex[:8]}"
    (folder / f"{name}.py").write_text(PROBE.format(marker=str(marker)))
    return name


def crafted(path: Path, **fields: Any) -> Path:
    """A checkpoint written as a plain dict (nothing is built): valid unless ``fields`` say otherwise;
    a field set to ``...`` is left out."""
    obj: dict[str, Any] = {"format": "edgekit.checkpoint", "version": 1,
                           "arch": {"name": "compact_cnn", "kwargs": {"num_classes": 2}, "channel_plan": {}},
                           "task": "classify", "labels": ["a", "b"], "input_spec": make_input_spec(32), "data": {},
                           "metrics": {}, "provenance": {}, "state_dict": {}, "extra": {}}
    for key, value in fields.items():
        target, _, leaf = key.replace("__", ".").rpartition(".")
        owner = obj
        for part in filter(None, target.split(".")):
            owner = owner[part]
        if value is ...:
            owner.pop(leaf)
        else:
            owner[leaf] = value
    torch.save(obj, path)
    return path


def cli(*args: str, pythonpath: tuple[Path, ...] = ()) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([*map(str, pythonpath), str(ROOT)])}
    env.pop("EDGEKIT_TRUST_CODE", None)
    return subprocess.run([sys.executable, "-m", "edgekit", *args], capture_output=True, text=True, env=env,
                          timeout=600)


def refused_in_one_line(res: subprocess.CompletedProcess, *words: str) -> str:
    assert res.returncode == 2, (res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


# ---------------------------------------------------------------- code named in a checkpoint

def test_checkpoint_naming_logging_basicconfig_truncates_nothing(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious data\n")
    evil = crafted(tmp_path / "evil.pt", arch={"name": "logging:basicConfig", "channel_plan": {},
                                               "kwargs": {"filename": str(victim), "filemode": "w", "force": True}})
    res = cli("info", str(evil))
    refused_in_one_line(res, "logging:basicConfig", "--trust-code", "evil.pt")
    assert victim.read_text() == "precious data\n"
    with pytest.raises(UntrustedCode, match="--trust-code"):
        load_checkpoint(evil)
    assert victim.read_text() == "precious data\n"


def test_torch_hub_is_never_reached_from_a_file(tmp_path: Path) -> None:
    """torch.hub:load with a local hubconf.py that writes a marker: refused by info, eval, export,
    bench (before any worker starts) and distill --student; the hub code never runs."""
    hub, marker = tmp_path / "hub", tmp_path / "HUB_RAN"
    hub.mkdir()
    (hub / "hubconf.py").write_text(f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n"
                                    "def evil(**kw):\n    return None\n")
    evil = crafted(tmp_path / "hub.pt", arch={"name": "torch.hub:load", "channel_plan": {}, "kwargs": {
        "repo_or_dir": str(hub), "model": "evil", "source": "local", "trust_repo": True}})
    for args in (("info", str(evil)), ("eval", str(evil), "--data", "digits")):
        refused_in_one_line(cli(*args), "torch.hub:load", "--trust-code")
    from edgekit.benchmark.run import bench
    from edgekit.compress.distill import distill
    from edgekit.exporters.pipeline import export

    with pytest.raises(UntrustedCode, match="torch.hub:load"):
        export(evil, "onnx", output_dir=tmp_path / "out")
    teacher = crafted(tmp_path / "teacher.pt", state_dict=create_model("compact_cnn", num_classes=2).state_dict())
    with pytest.raises(UntrustedCode, match="torch.hub:load"):
        distill(teacher, evil, "synthetic:classes=2,n=40", tmp_path / "student.pt", epochs=1, progress=False)
    with pytest.raises(UntrustedCode, match="--trust-code"):  # refused before any worker starts
        bench([str(evil)], runtime="torch", warmup=0, runs=1)
    assert not marker.exists()
    sources = [p for p in (ROOT / "edgekit").rglob("*.py") if "torch.hub.load" in p.read_text()]
    assert sources == []


def test_user_factory_checkpoint_needs_trust_code(tmp_path: Path) -> None:
    """An import path in a checkpoint imports nothing without trust; ``trust_code=True``,
    :func:`edgekit.trusting` and ``--trust-code`` allow it."""
    marker = tmp_path / "IMPORTED"
    name = probe_module(tmp_path, marker)
    sys.path.insert(0, str(tmp_path))
    try:
        factory = __import__(name).tiny
        marker.unlink()
        path = tmp_path / "user.pt"
        Checkpoint(arch=f"{name}:tiny", arch_kwargs={"num_classes": 2}, state_dict=factory(2).state_dict(),
                   labels=["a", "b"], input_spec=make_input_spec(8)).save(path)
        sys.modules.pop(name)
        with pytest.raises(UntrustedCode, match=rf"field 'arch.name' names the import path '{name}:tiny'"):
            load_checkpoint(path)
        assert not marker.exists() and name not in sys.modules
        refused_in_one_line(cli("info", str(path), pythonpath=(tmp_path,)), f"{name}:tiny", "--trust-code")
        assert not marker.exists()
        trusted = cli("info", str(path), "--trust-code", pythonpath=(tmp_path,))
        assert trusted.returncode == 0 and f"{name}:tiny" in trusted.stdout, trusted.stderr
        with trusting():
            assert load_checkpoint(path).arch == f"{name}:tiny"
        ckpt = load_checkpoint(path, trust_code=True)
        assert ckpt.model(torch.zeros(1, 3, 8, 8)).shape == (1, 2) and marker.exists()
    finally:
        sys.path.remove(str(tmp_path))


def test_own_arch_import_path_trains_and_reads_back(tmp_path: Path) -> None:
    """``--arch pkg.mod:fn`` from the caller stays allowed (the run reads its own checkpoint back);
    another process reading that checkpoint needs the same --trust-code."""
    name = probe_module(tmp_path, tmp_path / "IMPORTED")
    out = tmp_path / "own.pt"
    res = cli("train", "--arch", f"{name}:tiny", "--data", "synthetic:classes=2,n=40", "--epochs", "1",
              "--batch-size", "16", "-o", str(out), pythonpath=(tmp_path,))
    assert res.returncode == 0, res.stderr
    refused_in_one_line(cli("info", str(out), pythonpath=(tmp_path,)), f"{name}:tiny", "--trust-code")


def test_registered_factories_load_without_trust(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """register_model in code, and an ``edgekit.models`` entry point of an installed distribution
    (a fake one: a *.dist-info folder on sys.path), are names: their checkpoints load untrusted."""
    import torch.nn as nn

    own = f"trust_registered_{uuid.uuid4().hex[:6]}"

    @register_model(own, default_input=8)
    def registered(num_classes: int = 2) -> nn.Module:
        return nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, num_classes))

    path = tmp_path / "registered.pt"
    save_checkpoint(path, registered(2), arch=own, arch_kwargs={"num_classes": 2}, labels=["a", "b"],
                    input_spec=make_input_spec(8))
    assert load_checkpoint(path).model(torch.zeros(1, 3, 8, 8)).shape == (1, 2)

    plug = f"trust_plug_{uuid.uuid4().hex[:6]}"
    site = tmp_path / "site"
    (site / f"{plug}-0.1.dist-info").mkdir(parents=True)
    (site / f"{plug}-0.1.dist-info" / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {plug}\nVersion: 0.1\n")
    (site / f"{plug}-0.1.dist-info" / "entry_points.txt").write_text(f"[edgekit.models]\n{plug}_net = {plug}_models:tiny\n")
    (site / f"{plug}_models.py").write_text(PROBE.format(marker=str(tmp_path / "PLUGIN_LOADED")))
    monkeypatch.syspath_prepend(str(site))
    assert f"{plug}_net" in list_models()
    entry = get_entry(f"{plug}_net")
    assert entry.source == "plugin"
    plugged = tmp_path / "plugged.pt"
    save_checkpoint(plugged, entry.factory(num_classes=2), arch=f"{plug}_net", arch_kwargs={"num_classes": 2},
                    labels=["a", "b"], input_spec=make_input_spec(8))
    assert load_checkpoint(plugged).model(torch.zeros(1, 3, 8, 8)).shape == (1, 2)
    res = cli("info", str(plugged), pythonpath=(site,))  # found through importlib.metadata in a fresh process
    assert res.returncode == 0 and f"{plug}_net" in res.stdout, res.stderr


# ---------------------------------------------------------------- the checkpoint schema

@pytest.mark.parametrize("fields,words", [
    ({"arch": ...}, "field 'arch' is missing"),
    ({"input_spec.resize": ...}, "field 'input_spec.resize' is missing"),
    ({"input_spec.shape": [-3, 32, 32]}, "field 'input_spec.shape' must be positive integers, got [-3, 32, 32]"),
    ({"input_spec.resize": -32}, "field 'input_spec.resize' must be a positive size"),
    ({"input_spec.std": [0.2, 0.0, 0.2]}, "field 'input_spec.std' must be a list of positive numbers"),
    ({"labels": "ab"}, "field 'labels' must be a list of label names, got 'ab'"),
    ({"task": "mine_bitcoin"}, "field 'task' must be one of classify"),
    ({"arch.kwargs": ["num_classes", 2]}, "field 'arch.kwargs' must be a mapping"),
    ({"arch.kwargs.num_classes": -1}, "field 'arch.kwargs.num_classes' must be a positive integer, got -1"),
    ({"arch.name": 5}, "field 'arch.name' must be a non-empty architecture name, got 5"),
    ({"arch.name": "resnet1"}, "field 'arch.name': unknown architecture 'resnet1'; did you mean resnet18"),
    ({"arch.channel_plan": {"modules": {"conv": {"out_channels": -4}}}}, "field 'arch.channel_plan.modules'"),
    ({"state_dict": {"w": [1.0, 2.0]}}, "field 'state_dict' must be a mapping of names to tensors"),
    ({"version": "1"}, "field 'version' must be a non-negative integer"),
    ({"data": {"spec": "digits", "val": 1.5}}, "field 'data.val' must be a fraction in [0, 1)"),
    ({"metrics": ...}, "field 'metrics' is missing"),
])
def test_checkpoint_fields_are_checked_against_the_schema(tmp_path: Path, fields: dict, words: str) -> None:
    path = crafted(tmp_path / "bad.pt", **fields)
    with pytest.raises(EdgekitError) as info:
        load_checkpoint(path)
    assert str(info.value).startswith(f"{path}: ") and words in str(info.value) and "\n" not in str(info.value)


def test_bad_checkpoint_field_is_one_line_on_the_cli(tmp_path: Path) -> None:
    path = crafted(tmp_path / "negative.pt", **{"input_spec.shape": [-3, 32, 32]})
    refused_in_one_line(cli("info", str(path)), "negative.pt: field 'input_spec.shape' must be positive integers")


def test_crc_broken_checkpoint_is_refused(tmp_path: Path) -> None:
    """64 flipped bytes inside a tensor record: torch.load would read them as weights; the CRC says no."""
    path = tmp_path / "flipped.pt"
    save_checkpoint(path, create_model("compact_cnn", num_classes=2), arch="compact_cnn",
                    arch_kwargs={"num_classes": 2}, labels=["a", "b"], input_spec=make_input_spec(32))
    load_checkpoint(path)
    with zipfile.ZipFile(path) as archive:
        info = max((i for i in archive.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    raw = bytearray(path.read_bytes())
    name_len, extra_len = (int.from_bytes(raw[info.header_offset + o:info.header_offset + o + 2], "little")
                           for o in (26, 28))
    start = info.header_offset + 30 + name_len + extra_len + info.file_size // 2
    raw[start:start + 64] = bytes(b ^ 0xFF for b in raw[start:start + 64])
    path.write_bytes(bytes(raw))
    assert isinstance(torch.load(path, weights_only=True), dict)  # torch itself does not notice
    with pytest.raises(EdgekitError, match=r"fails its CRC check"):
        load_checkpoint(path)
    from edgekit.evaluation import evaluate

    with pytest.raises(EdgekitError, match=r"fails its CRC check"):
        evaluate(path, "synthetic:classes=2,n=40")


# ---------------------------------------------------------------- recipes and profiles

RECIPE = "name: evil\narch: {arch}\ndata: synthetic:classes=2,n=40\ntraining: {{epochs: 1}}\n"


def test_import_path_in_a_recipe_is_refused(tmp_path: Path) -> None:
    from edgekit.recipes.load import load_recipe

    marker = tmp_path / "IMPORTED"
    name = probe_module(tmp_path, marker)
    recipe = tmp_path / "evil.yaml"
    recipe.write_text(RECIPE.format(arch=f"{name}:tiny"))
    student = tmp_path / "student.yaml"
    student.write_text(RECIPE.format(arch="compact_cnn") + f"distill: {{student: '{name}:tiny'}}\n")
    sys.path.insert(0, str(tmp_path))
    try:
        with pytest.raises(UntrustedCode, match=rf"recipe {recipe}: arch names the import path '{name}:tiny'"):
            load_recipe(recipe)
        with pytest.raises(UntrustedCode, match=r"distill.student names the import path .*--trust-code"):
            load_recipe(student)
        assert not marker.exists()
        refused_in_one_line(cli("run", str(recipe), "-o", str(tmp_path / "run"), pythonpath=(tmp_path,)),
                            f"{name}:tiny", "--trust-code")
        assert not marker.exists()
        assert load_recipe(recipe, ["arch=compact_cnn"]).arch == "compact_cnn"
        assert load_recipe(recipe, trust_code=True).arch == f"{name}:tiny" and marker.exists()
        marker.unlink()
        sys.modules.pop(name)
        assert load_recipe(recipe, [f"arch={name}:tiny"]).arch == f"{name}:tiny"  # the caller's
    finally:
        sys.path.remove(str(tmp_path))


def test_recipe_yaml_is_safe_plain_data(tmp_path: Path) -> None:
    from edgekit.recipes.load import load_recipe

    marker = tmp_path / "PWNED"
    tagged = tmp_path / "tagged.yaml"
    tagged.write_text(f"arch: !!python/object/apply:os.system ['touch {marker}']\ndata: digits\n")
    listed = tmp_path / "listed.yaml"
    listed.write_text("- arch: compact_cnn\n- data: digits\n")
    broken = tmp_path / "broken.yaml"
    broken.write_text("arch: compact_cnn\ndata: digits\ntraining: {epochs: [1, 2\n")
    bomb = tmp_path / "bomb.yaml"  # "billion laughs": aliases of aliases, 9**6 nodes from a few bytes
    bomb.write_text("a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{n}: &{n} [{', '.join(['*' + p] * 9)}]\n" for p, n in zip("abcde", "bcdef")) + "arch: compact_cnn\n")
    for path, words in ((tagged, r"tagged.yaml line 1: not valid YAML: .*python/object/apply:os.system.*safe YAML"),
                        (listed, r"listed.yaml must be a mapping at the top, got a list"),
                        (broken, r"broken.yaml line 4: not valid YAML"),
                        (bomb, r"bomb.yaml line 1: not valid YAML: .*expansion exceeds")):
        with pytest.raises(EdgekitError, match=words) as info:
            load_recipe(path)
        assert "\n" not in str(info.value)
    refused_in_one_line(cli("run", str(tagged), "-o", str(tmp_path / "run")), "tagged.yaml line 1")
    assert not marker.exists()


def test_profiles_are_utf8_mappings_of_known_keys(tmp_path: Path) -> None:
    from edgekit.exporters.profiles import load_profile

    marker = tmp_path / "IMPORTED"
    name = probe_module(tmp_path, marker)
    cases = {"binary.yaml": (b"\x89PNG\r\n\x1a\n\x00\xff\xfe", "is not UTF-8 text"),
             "code_key.yaml": (f"arch: {name}:tiny\ntargets: onnx\n".encode(), "unknown key(s) arch"),
             "code_target.yaml": (f"targets: {name}:tiny\n".encode(), f"unknown export target '{name}:tiny'"),
             "tagged.yaml": (b"targets: !!python/name:os.system\n", "safe YAML"),
             "typed.yaml": (b"targets: onnx\ncalib_size: -5\n", "calib_size must be a positive integer, got -5"),
             "listed.yaml": (b"- onnx\n", "must be a mapping")}
    sys.path.insert(0, str(tmp_path))
    try:
        for file, (data, words) in cases.items():
            (tmp_path / file).write_bytes(data)
            with pytest.raises(EdgekitError) as info:
                load_profile(tmp_path / file)
            assert words in str(info.value) and file in str(info.value) and "\n" not in str(info.value)
        assert not marker.exists()
    finally:
        sys.path.remove(str(tmp_path))
    assert load_profile("android-cpu-int8")["targets"] == "tflite"  # the shipped ones still load
