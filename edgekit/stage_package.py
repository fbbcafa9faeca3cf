"""Stage packages that are also their stage's function (``edgekit.train``, ``.export``, ``.bench``).

The public API mirrors the CLI: ``edgekit train`` is ``edgekit.train(...)``. But once a
submodule such as ``edgekit.train.loop`` is imported, Python binds the attribute
``edgekit.train`` to the *package*, hiding the function of the same name. Giving the
package a module class with ``__call__`` keeps ``edgekit.train(...)`` working whatever
was imported first.
"""
from __future__ import annotations

import importlib
import sys
import types
from typing import Any


def make_callable(package: str, module: str, function: str) -> None:
    """Make ``sys.modules[package](...)`` call ``module.function(...)`` (imported on first call)."""

    class StagePackage(types.ModuleType):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            return getattr(importlib.import_module(module), function)(*args, **kwargs)

    StagePackage.__call__.__doc__ = f"Call :func:`{module}.{function}`."
    sys.modules[package].__class__ = StagePackage
