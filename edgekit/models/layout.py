"""Where an architecture keeps its stem, its penultimate feature and its classifier.

Stages need three module paths that a forward hook can only guess: the **classifier**
(the final Linear, or 1x1 convolution, whose output is the logits: pruning never
shrinks its outputs, distillation copies or scales it), the **feature** (the module
whose output, globally pooled when it is a map, is the classifier's input: the
penultimate feature that feature mimicking matches) and the **stem** (the first
convolution, set to stride 1 for small images, with ``stem_pool``, a max-pool removed
with it). A :class:`Layout` records them per architecture, as timm's ``default_cfg``
records ``first_conv`` and ``classifier``. The registry attaches it to every model it
builds (``model.edgekit_layout``, like timm's ``model.pretrained_cfg``), so a stage
given only the module reads it; models from user factories carry none and the stages
fall back to hooks (:mod:`edgekit.compress.features`).

``feature`` is ``None`` where no module outputs exactly the classifier's input (a
functional ReLU or token selection comes in between, as in DenseNet and ViT); the
classifier's input is then tapped directly.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from torch import nn

ATTR = "edgekit_layout"


@dataclass(frozen=True)
class Layout:
    """Module paths of one architecture (``None``: not declared, found by hooks)."""

    classifier: str | None = None
    feature: str | None = None
    stem: str | None = None
    stem_pool: str | None = None
    #: the last stage of a staged (ResNet-style) backbone, which S3L's small-architecture
    #: pretraining removes (conv5 / ``layer4``); ``None``: the net has no such stage
    last_stage: str | None = None

    def with_connector(self, head: str) -> "Layout":
        """The layout after :func:`edgekit.models.connector.add_connector` replaced ``head``."""
        return self.with_head(head, "connector")

    def with_head(self, head: str, feature: str) -> "Layout":
        """The layout after the classifier at ``head`` became a module with children ``classifier``
        (the new final Linear) and ``feature`` (the module whose output is its input)."""
        return replace(self, classifier=f"{head}.classifier", feature=f"{head}.{feature}")


def _resnet() -> Layout:
    return Layout(classifier="fc", feature="avgpool", stem="conv1", stem_pool="maxpool", last_stage="layer4")


#: torchvision families by name prefix, longest first. ``stem_pool`` is declared only where
#: small-input adaptation has always removed the pool (``model.maxpool``), so checkpoints
#: built with ``small_input=True`` rebuild the same network.
TORCHVISION: tuple[tuple[str, Layout], ...] = (
    ("resnet", _resnet()),
    ("resnext", _resnet()),
    ("wide_resnet", _resnet()),
    ("regnet", Layout(classifier="fc", feature="avgpool", stem="stem.0", last_stage="trunk_output.block4")),
    ("mobilenet_v2", Layout(classifier="classifier.1", feature="classifier.0", stem="features.0.0")),
    ("mobilenet_v3", Layout(classifier="classifier.3", feature="classifier.2", stem="features.0.0")),
    ("efficientnet", Layout(classifier="classifier.1", feature="classifier.0", stem="features.0.0")),
    ("mnasnet", Layout(classifier="classifier.1", feature="classifier.0", stem="layers.0")),
    ("shufflenet", Layout(classifier="fc", feature="conv5", stem="conv1.0", stem_pool="maxpool")),
    ("densenet", Layout(classifier="classifier", feature=None, stem="features.conv0")),
    ("convnext", Layout(classifier="classifier.2", feature="classifier.1", stem="features.0.0")),
    ("squeezenet", Layout(classifier="classifier.1", feature="classifier.0", stem="features.0")),
    ("vgg", Layout(classifier="classifier.6", feature="classifier.5", stem="features.0")),
    ("alexnet", Layout(classifier="classifier.6", feature="classifier.5", stem="features.0")),
    ("googlenet", Layout(classifier="fc", feature="dropout", stem="conv1.conv")),
    ("inception", Layout(classifier="fc", feature="dropout", stem="Conv2d_1a_3x3.conv")),
    ("vit", Layout(classifier="heads.head", feature=None, stem="conv_proj")),
    ("swin", Layout(classifier="head", feature="flatten", stem="features.0.0")),
    ("maxvit", Layout(classifier="classifier.5", feature="classifier.4", stem="stem.0.0")),
)

#: Constructor arguments a family needs to train like the others: GoogLeNet and Inception v3
#: return auxiliary logits in training mode unless ``aux_logits=False`` (a training loss
#: then receives a tuple, not the logits); ``init_weights=True`` is their documented
#: initialisation without pretrained weights (torchvision warns when it is left unset).
TORCHVISION_KWARGS: dict[str, dict[str, Any]] = {
    "googlenet": {"aux_logits": False, "init_weights": True},
    "inception_v3": {"aux_logits": False, "init_weights": True},
}


def torchvision_layout(name: str) -> Layout:
    """The declared layout of torchvision architecture ``name`` (empty if its family is unknown)."""
    for prefix, layout in TORCHVISION:
        if name.startswith(prefix):
            return layout
    return Layout()


def layout_of(model: nn.Module) -> Layout:
    """The layout the registry attached to ``model`` (an empty one for models built elsewhere)."""
    return getattr(model, ATTR, None) or Layout()


def attach(model: nn.Module, layout: Layout) -> nn.Module:
    """Record ``layout`` on ``model`` (a plain attribute: copied by deepcopy, never saved)."""
    setattr(model, ATTR, layout)
    return model


def declared(model: nn.Module, field: str) -> str | None:
    """``model``'s declared module path for ``field``, or ``None`` if undeclared or absent from the model
    (a user edit that replaced it); callers then fall back to hooks."""
    path = getattr(layout_of(model), field)
    if path is None:
        return None
    try:
        model.get_submodule(path)
    except AttributeError:
        return None
    return path
