"""Registry entries, and the declarations of edgekit's own architectures, below the registry.

:mod:`edgekit.registry` builds models from entries and imports the model modules; a model
module therefore never imports the registry. edgekit's nets are declared here instead, with
:func:`builtin` (a decorator on the factory) and :func:`builtin_family` (a name prefix over
other registry names), in :mod:`edgekit.models.zoo`; the registry imports the zoo and adopts
its declarations (:func:`edgekit.registry.get_entry`). Users register with
:func:`edgekit.registry.register_model`, which checks their names against these.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

from .layout import Layout

Factory = Callable[..., nn.Module]


@dataclass(frozen=True)
class ModelEntry:
    """A registered architecture: its factory, the input size it is designed for, its layout."""

    name: str
    factory: Factory
    default_input: int
    source: str  # "edgekit", "torchvision", "user" or "plugin" (an entry point)
    layout: Layout = Layout()
    #: the torchvision architecture whose pretrained weights fit this one (``--weights imagenet``, see
    #: :mod:`edgekit.pretrained`): its own name for torchvision's, the backbone's for a video net over
    #: one, None where torchvision has none
    weights_arch: str | None = None


#: edgekit's own architectures by name (filled by :func:`builtin` when the zoo is imported)
BUILTIN: dict[str, ModelEntry] = {}
#: edgekit's families: prefix -> ``resolve(name, get_entry, create_model)``, given the registry's
#: lookup and builder by the registry (a family is built over other registry names)
BUILTIN_FAMILIES: dict[str, Callable[..., ModelEntry]] = {}


def builtin(name: str, default_input: int = 224, *, classifier: str | None = None, feature: str | None = None,
            stem: str | None = None, stem_pool: str | None = None) -> Callable[[Factory], Factory]:
    """Decorator: declare edgekit's own ``factory(num_classes=..., **kwargs)`` as ``name``, with
    its layout's module paths (see :func:`edgekit.registry.register_model`)."""

    def deco(fn: Factory) -> Factory:
        BUILTIN[name] = ModelEntry(name, fn, default_input, "edgekit",
                                   Layout(classifier=classifier, feature=feature, stem=stem, stem_pool=stem_pool))
        return fn

    return deco


def builtin_family(prefix: str, resolve: Callable[..., ModelEntry]) -> None:
    """Declare that every name ``prefix + rest`` resolves through ``resolve(name, get_entry, create_model)``."""
    BUILTIN_FAMILIES[prefix] = resolve
