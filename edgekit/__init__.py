"""edgekit: train, compress, export and benchmark compact vision models for the edge.

The public API mirrors the CLI: ``edgekit train`` is :func:`edgekit.train`, and so on.
The stage functions are bound here, at the top level only (as torchvision's ``get_model``
and timm's ``create_model``); no subpackage shares a stage's name, so importing a
submodule never rebinds ``edgekit.train`` and friends. Heavy submodules load on first use
so ``import edgekit`` stays fast.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_API = {
    "create_model": "edgekit.registry",
    "list_models": "edgekit.registry",
    "register_model": "edgekit.registry",
    "Checkpoint": "edgekit.checkpoint",
    "load_checkpoint": "edgekit.checkpoint",
    "save_checkpoint": "edgekit.checkpoint",
    "load_data": "edgekit.data",
    "train": "edgekit.training.trainer",
    "pretrain": "edgekit.pretraining.trainer",
    "evaluate": "edgekit.evaluation",
    "quickstart": "edgekit.recipes.quickstart",
    "EdgekitError": "edgekit.errors",
    "distill": "edgekit.compress.distill",
    "bench": "edgekit.benchmark.run",
    "report": "edgekit.benchmark.report",
    "prune": "edgekit.compress.prune",
    "export": "edgekit.exporters.pipeline",
    "verify": "edgekit.exporters.pipeline",
    "optimize": "edgekit.optimization.search",
    "load_recipe": "edgekit.recipes.load",
    "run_recipe": "edgekit.recipes.run",
    "trusting": "edgekit.trust",
}


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'edgekit' has no attribute {name!r}")


__all__ = sorted(_API) + ["__version__"]
