"""The model zoo: names, how to build each port, and where its weights come from."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable

from . import efficientnet_lite, resnet
from .core import Model, Preprocessing


@dataclasses.dataclass(frozen=True)
class Entry:
    """How to build a port and read its reference checkpoints.

    Attributes:
        build: returns the :class:`Model` record (no weights).
        rename: maps a reference state_dict key to the port's names (None drops it).
        weights: the manifest entry of the default weights.
    """

    build: Callable[[], Model]
    rename: Callable[[str], str | None] = lambda key: key
    weights: str | None = None


def _resnet(name: str) -> Model:
    stages = resnet.STAGES[name]
    return Model(name, resnet.ResNet(stages), 224, 1000, Preprocessing(), resnet.layer_names(stages),
                 cam_layer="layer4")


def _lite(name: str) -> Model:
    width, depth, size = efficientnet_lite.VARIANTS[name]
    blocks = efficientnet_lite.blocks_for(width, depth)
    module = efficientnet_lite.EfficientNetLite(blocks)
    return Model(name, module, size, 1000, Preprocessing(), efficientnet_lite.layer_names(blocks), cam_layer="head")


def _strip_underscores(key: str) -> str:
    """``_blocks.0._bn1.weight`` -> ``blocks.0.bn1.weight`` (the reference's private names)."""
    return re.sub(r"(^|\.)_", r"\1", key)


REGISTRY: dict[str, Entry] = {
    "efficientnet_lite0": Entry(lambda: _lite("efficientnet_lite0"), _strip_underscores, "efficientnet_lite0"),
    "resnet50": Entry(lambda: _resnet("resnet50"), weights="resnet50"),
}

DEFAULT_MODEL = "efficientnet_lite0"
