"""The model zoo: names, how to build each port, and where its weights come from."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable

from . import efficientnet_lite, googlenet, inception_v1, resnet, vgg
from .adapters import linen_port
from .core import Model, Preprocessing

#: Keras Applications' "caffe" preprocessing: 0-255, BGR, ImageNet means subtracted, no scaling.
CAFFE = Preprocessing(mean=(103.939, 116.779, 123.68), std=(1.0, 1.0, 1.0), scale=255.0, bgr=True)


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
    return linen_port(name, resnet.ResNet(stages), 224, 1000, Preprocessing(), resnet.layer_names(stages),
                      aliases=resnet.stage_aliases(stages), cam_layer="layer4")


def _lite(name: str) -> Model:
    width, depth, size = efficientnet_lite.VARIANTS[name]
    blocks = efficientnet_lite.blocks_for(width, depth)
    module = efficientnet_lite.EfficientNetLite(blocks)
    return linen_port(name, module, size, 1000, Preprocessing(), efficientnet_lite.layer_names(blocks),
                      cam_layer="head")


def _vgg(name: str, keras: bool = False) -> Model:
    base = name.removesuffix("_keras")
    features = vgg.vgg_features(base)
    return linen_port(name, vgg.ConvNet(features), 224, 1000, CAFFE if keras else Preprocessing(),
                      vgg.layer_names(features))


def _resnet_keras() -> Model:
    stages = resnet.STAGES["resnet50"]
    return linen_port("resnet50_keras", resnet.ResNet(stages, variant=resnet.KERAS), 224, 1000, CAFFE,
                      resnet.layer_names(stages), aliases=resnet.stage_aliases(stages), cam_layer="layer4")


def _alexnet() -> Model:
    module = vgg.ConvNet(vgg.ALEXNET_FEATURES, pool_size=6, alexnet=True)
    return linen_port("alexnet", module, 224, 1000, Preprocessing(),
                      vgg.layer_names(vgg.ALEXNET_FEATURES, alexnet=True))


def _googlenet() -> Model:
    # transform_input=True folded into the preprocessing: (x - 0.5) / 0.5 on [0, 1] images.
    return linen_port("googlenet", googlenet.GoogLeNet(), 224, 1000, Preprocessing((0.5,) * 3, (0.5,) * 3),
                      googlenet.LAYERS, cam_layer="inception5b")


def _inception_v1() -> Model:
    # Lucid's inception5h: RGB scaled to [-117, 138] (255 x - 117).
    return linen_port("inception_v1", inception_v1.InceptionV1(), 224, 1008,
                      Preprocessing((117.0,) * 3, (1.0,) * 3, 255.0), inception_v1.LAYERS, labels="inception5h",
                      cam_layer="mixed5b", aliases={"softmax2_pre_activation": "softmax2_pre_activation_matmul"})


def _drop_aux(key: str) -> str | None:
    return None if key.startswith(("aux1.", "aux2.")) else key


def _strip_underscores(key: str) -> str:
    """``_blocks.0._bn1.weight`` -> ``blocks.0.bn1.weight`` (the reference's private names)."""
    return re.sub(r"(^|\.)_", r"\1", key)


REGISTRY: dict[str, Entry] = {
    "efficientnet_lite0": Entry(lambda: _lite("efficientnet_lite0"), _strip_underscores, "efficientnet_lite0"),
    "efficientnet_lite1": Entry(lambda: _lite("efficientnet_lite1"), _strip_underscores, "efficientnet_lite1"),
    "efficientnet_lite2": Entry(lambda: _lite("efficientnet_lite2"), _strip_underscores, "efficientnet_lite2"),
    "resnet50": Entry(lambda: _resnet("resnet50"), weights="resnet50"),
    "vgg16": Entry(lambda: _vgg("vgg16"), weights="vgg16"),
    "vgg19": Entry(lambda: _vgg("vgg19"), weights="vgg19"),
    "alexnet": Entry(_alexnet, weights="alexnet"),
    "googlenet": Entry(_googlenet, _drop_aux, weights="googlenet"),
    "vgg16_keras": Entry(lambda: _vgg("vgg16_keras", keras=True), weights="vgg16_keras"),
    "vgg19_keras": Entry(lambda: _vgg("vgg19_keras", keras=True), weights="vgg19_keras"),
    "resnet50_keras": Entry(_resnet_keras, weights="resnet50_keras"),
    "inception_v1": Entry(_inception_v1, weights="inception_v1"),
}

DEFAULT_MODEL = "efficientnet_lite0"
