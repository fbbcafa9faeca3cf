"""The wheel users install: built from this checkout, it carries the recipes, the export profiles
and the built demo page, and an installed copy finds them from any folder.

``.ci/run`` also installs the wheel in a fresh virtual environment and runs ``edgekit quickstart``
in an empty folder; these tests check the packaging itself in seconds.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _pip_wheel(src: Path, out: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "-q", "-w", str(out)],
                          capture_output=True, text=True, env=env, timeout=600)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("npm") is None and not (ROOT / "edgekit" / "demo" / "static" / "index.html").is_file():
        pytest.fail("building the wheel needs npm (apt-get install nodejs npm) or a built demo page")
    out = tmp_path_factory.mktemp("wheel")
    res = _pip_wheel(ROOT, out)
    assert res.returncode == 0, res.stderr[-2000:]
    (whl,) = out.glob("edgekit-*.whl")
    return whl


def test_wheel_ships_recipes_profiles_and_demo_page(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for folder in ("models", "export"):
        for src in (ROOT / folder).glob("*.yaml"):
            assert f"edgekit/_shipped/{folder}/{src.name}" in names, f"{folder}/{src.name} not in the wheel"
    for page in ("index.html", "app.js", "style.css", "wasm/litert_wasm_internal.wasm"):
        assert f"edgekit/demo/static/{page}" in names, f"demo page file {page} not in the wheel"


def test_installed_wheel_finds_shipped_files_from_an_empty_folder(wheel: Path, tmp_path: Path) -> None:
    """Installed (not editable) and run from a folder that holds nothing: the quickstart recipe, a
    profile and the demo page are found inside the package, not in a checkout."""
    site = tmp_path / "site"
    res = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    empty = tmp_path / "empty"
    empty.mkdir()
    code = ("import edgekit, pathlib; from edgekit.recipes.load import find_recipe; "
            "from edgekit.shipped import find_shipped; from edgekit.demo.server import check_static; "
            "check_static(); print(edgekit.__file__); print(find_recipe('quickstart')); "
            "print(find_shipped('android-cpu-int8', 'export', 'export profile'))")
    env = {**os.environ, "PYTHONPATH": str(site)}
    res = subprocess.run([sys.executable, "-c", code], cwd=empty, capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    pkg, recipe, profile = res.stdout.split()[-3:]
    assert Path(pkg).is_relative_to(site)
    assert Path(recipe) == site / "edgekit" / "_shipped" / "models" / "quickstart.yaml"
    assert Path(profile) == site / "edgekit" / "_shipped" / "export" / "android-cpu-int8.yaml"


def test_wheel_without_npm_or_page_says_so_in_one_line(tmp_path: Path) -> None:
    """A clean copy of the sources (no built page) on a PATH without npm: the build stops with one
    line naming npm instead of a wheel that silently lacks the demo."""
    src = tmp_path / "src"
    tracked = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for rel in tracked:
        if (ROOT / rel).is_file():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, src / rel)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "python3").symlink_to(sys.executable)
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}/usr/bin/nonexistent"}
    res = _pip_wheel(src, tmp_path / "out", env)
    assert res.returncode != 0
    lines = [ln.strip() for ln in res.stderr.splitlines() if ln.strip().startswith("edgekit build:")]
    assert len(lines) == 1 and "npm not found" in lines[0], res.stderr[-2000:]
