"""Build hook: what a wheel needs that is not Python source.

``pyproject.toml`` holds the project's metadata; this file only extends ``build_py`` so that a
wheel built from a clean clone (``pip wheel .``) carries

* the demo page and its LiteRT.js runtime, built from ``web/`` with its pinned npm toolchain
  (``npm ci``, then ``npm run build``) into ``edgekit/demo/static``;
* the recipes (``models/*.yaml``) and export profiles (``export/*.yaml``), copied into
  ``edgekit/_shipped/`` (the top-level folders stay their source; see ``edgekit/shipped.py``).

Without npm and without an already built page, the build stops with one line saying so.
An editable install (``pip install -e .``) reads all of these from the checkout and builds nothing.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
STATIC = ROOT / "edgekit" / "demo" / "static"
SHIPPED = {"models": "recipes", "export": "export profiles"}


def _fail(line: str) -> None:
    sys.stderr.write(f"edgekit build: {line}\n")
    raise SystemExit(1)


def build_demo_page() -> None:
    """Build ``web/`` into ``edgekit/demo/static`` (npm ci only when node_modules is missing)."""
    web = ROOT / "web"
    npm = shutil.which("npm")
    if npm is None:
        if (STATIC / "index.html").is_file():
            return  # built earlier (e.g. by .ci/run); nothing to rebuild it with
        _fail("npm not found: the demo page in web/ cannot be built into the wheel; install Node.js and npm "
              "(apt-get install nodejs npm) and build again")
    try:
        if not (web / "node_modules").is_dir():
            subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=web, check=True)
        subprocess.run([npm, "run", "build"], cwd=web, check=True)
    except subprocess.CalledProcessError as exc:
        _fail(f"building the demo page failed ({' '.join(exc.cmd[1:])} in web/ exited {exc.returncode})")


class BuildPy(build_py):
    """``build_py`` that first builds the demo page, then ships the recipes and profiles."""

    def run(self) -> None:
        if getattr(self, "editable_mode", False):
            super().run()
            return
        build_demo_page()
        super().run()
        for folder in SHIPPED:
            dest = Path(self.build_lib) / "edgekit" / "_shipped" / folder
            dest.mkdir(parents=True, exist_ok=True)
            for src in sorted((ROOT / folder).glob("*.yaml")):
                shutil.copy2(src, dest / src.name)


setup(cmdclass={"build_py": BuildPy})
