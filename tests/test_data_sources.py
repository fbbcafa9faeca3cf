"""The data-source registry: the built-in schemes and their properties, a source added by one
registration (loaded and trained on), and an unknown scheme refused in one line by every
stage that takes a data spec."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import edgekit
from edgekit.cli import main
from edgekit.data import DataBundle, load_data, parse_spec
from edgekit.data.datasets import ArrayImages, Subset, seeded_split
from edgekit.data.sources import SOURCES, DataSource, SourceRequest, get_source, register_source, unregister_source
from edgekit.errors import EdgekitError

BUILT_IN = {"digits", "synthetic", "ordinal", "gestures", "jester", "videofolder", "imagefolder", "csv", "tabular",
            "sklearn"}


def test_every_built_in_source_is_registered_with_its_properties() -> None:
    assert BUILT_IN <= set(SOURCES)
    kinds = {s.scheme: s.kind for s in SOURCES.values()}
    assert {k for k, v in kinds.items() if v == "clips"} >= {"gestures", "jester", "videofolder"}
    assert kinds["tabular"] == kinds["sklearn"] == "table" and kinds["digits"] == "images"
    assert {s.scheme for s in SOURCES.values() if s.path} >= {"imagefolder", "csv", "tabular", "sklearn", "jester",
                                                             "videofolder"}
    assert not any(SOURCES[k].path for k in ("digits", "synthetic", "ordinal", "gestures"))
    assert not SOURCES["digits"].flip_invariant and SOURCES["imagefolder"].flip_invariant
    assert SOURCES["digits"].default_input == 32 and SOURCES["tabular"].default_input is None
    assert not SOURCES["csv"].labels and SOURCES["imagefolder"].labels
    assert not any(s.boxes for s in SOURCES.values())  # none yet
    assert all(s.usage.startswith(s.scheme) and s.help for s in SOURCES.values())
    from edgekit.compress.expansion import PRESETS

    assert all(s.expansion in PRESETS for s in SOURCES.values())
    assert (SOURCES["digits"].expansion, SOURCES["synthetic"].expansion, SOURCES["csv"].expansion) == (
        "digits", "shapes", "natural")


def test_bundles_carry_their_source_flip_invariance() -> None:
    assert load_data("digits").flip_invariant is False
    assert load_data("synthetic:n=40,size=16").flip_invariant is True
    assert load_data("gestures:n=20,size=8,classes=2").flip_invariant is False


def _toy(req: SourceRequest) -> DataBundle:
    """A toy source: ``toy:PATH?n=N`` -> N coloured 8x8 images of two classes (left or right half lit)."""
    n = int(req.options.pop("n", 40))
    images = np.zeros((n, 8, 8, 3), np.uint8)
    targets = [i % 2 for i in range(n)]
    for i, t in enumerate(targets):
        images[i, :, t * 4:(t + 1) * 4] = 255
    base = ArrayImages(images, targets)
    tr, va = seeded_split(n, req.val, req.seed, targets)
    return req.bundle(Subset(base, tr), Subset(base, va), ["left", "right"], task="classify",
                      info={"from": req.path})


@pytest.fixture
def toy():
    register_source(DataSource("toy", _toy, kind="images", default_input=8, flip_invariant=False, path=True,
                               usage="toy:PATH", help="two classes of half-lit images"))
    yield
    unregister_source("toy")
    assert "toy" not in SOURCES


def test_a_registered_source_loads_and_trains(toy, tmp_path: Path) -> None:
    assert parse_spec("toy:some/dir?n=20") == ("toy", "some/dir", {"n": "20"})  # "a path": the registry's word
    b = load_data("toy:some/dir?n=20&val=0.5")
    assert (len(b.train), len(b.val), b.labels, b.default_input) == (10, 10, ["left", "right"], 8)
    assert b.info["from"] == "some/dir" and b.flip_invariant is False and b.record["val"] == 0.5
    with pytest.raises(EdgekitError, match="unknown option"):
        load_data("toy:x?n=20&colour=red")
    with pytest.raises(EdgekitError, match="already registered"):
        register_source(DataSource("toy", _toy))
    assert "toy:PATH" in str(pytest.raises(EdgekitError, get_source, "nosuch").value)
    ckpt = edgekit.train("compact_cnn", "toy:x?n=40", tmp_path / "toy.pt", epochs=1, batch_size=8, precise_bn=0)
    assert ckpt.labels == ["left", "right"] and ckpt.input_spec["shape"][-1] == 8
    assert ckpt.data["spec"] == "toy:x?n=40"


def test_bad_source_definitions_are_refused() -> None:
    with pytest.raises(EdgekitError, match="kind must be"):
        DataSource("odd", _toy, kind="sounds")
    with pytest.raises(EdgekitError, match="plain name"):
        DataSource("a:b", _toy)


def test_unknown_scheme_refused_by_the_api_before_any_work(tmp_path: Path) -> None:
    for call in (lambda: load_data("nosuch:x"), lambda: parse_spec("nosuch"),
                 lambda: edgekit.bench([tmp_path / "none.onnx"], data="nosuch:x")):
        with pytest.raises(EdgekitError, match="unknown data source 'nosuch'"):
            call()


@pytest.mark.parametrize("args", [
    ["train", "--arch", "compact_cnn", "-o", "{tmp}/x.pt", "--data", "nosuch:x"],
    ["eval", "{tmp}/c.pt", "--data", "nosuch:x"],
    ["prune", "{tmp}/c.pt", "-o", "{tmp}/p.pt", "--data", "nosuch:x"],
    ["distill", "--teacher", "{tmp}/c.pt", "--student", "compact_cnn_s", "-o", "{tmp}/d.pt", "--data", "nosuch:x"],
    ["export", "{tmp}/c.pt", "-o", "{tmp}/out", "--calib", "nosuch:x"],
    ["verify", "{tmp}/a.onnx", "--checkpoint", "{tmp}/c.pt", "--data", "nosuch:x"],
    ["bench", "{tmp}/a.onnx", "--data", "nosuch:x"],
    ["optimize", "{tmp}/c.pt", "--budget", "5ms@onnxruntime", "-o", "{tmp}/o", "--data", "nosuch:x"],
])
def test_every_stage_refuses_an_unknown_scheme_in_one_line(args: list[str], tmp_path: Path) -> None:
    res = CliRunner().invoke(main, [a.replace("{tmp}", str(tmp_path)) for a in args])
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "unknown data source 'nosuch'" in lines[0] and "digits" in lines[0], res.stderr
    assert not list(tmp_path.iterdir())


def _imports(path: Path) -> set[str]:
    """The edgekit modules ``path`` imports (any statement, module level or inside functions)."""
    import ast

    pkg = path.parent.relative_to(Path(edgekit.__file__).parent.parent).as_posix().replace("/", ".")
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = pkg.rsplit(".", node.level - 1)[0] if node.level > 1 else pkg if node.level else ""
            out.add(f"{base}.{node.module}" if base and node.module else base or node.module or "")
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return {m for m in out if m.startswith("edgekit")}


def test_lower_layers_do_not_import_upper_ones() -> None:
    """data imports no stage, models not the registry, lsh not its config, demo not the benchmark."""
    root = Path(edgekit.__file__).parent
    rules = {"data": ("edgekit.training", "edgekit.compress", "edgekit.registry", "edgekit.models"),
             "models": ("edgekit.registry",), "demo": ("edgekit.benchmark",)}
    for folder, banned in rules.items():
        for path in (root / folder).glob("*.py"):
            bad = sorted(m for m in _imports(path) if m.startswith(banned))
            assert not bad, f"{path.relative_to(root)} imports {bad}"
    assert not any(m.startswith("edgekit.compress.distill_config") for m in _imports(root / "compress" / "lsh.py"))


def test_lsh_accepts_every_configured_bias_mode() -> None:
    import torch

    from edgekit.compress.distill_config import BIAS_MODES
    from edgekit.compress.lsh import LSHProjector

    proj, feats = LSHProjector(3, 4), torch.randn(10, 3)
    for mode in BIAS_MODES:
        proj.fit_bias(feats, mode)
    with pytest.raises(ValueError, match="unknown LSH bias"):
        proj.fit_bias(feats, "max")
