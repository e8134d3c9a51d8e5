"""Receptive fields measured on the networks equal the textbook values."""

from __future__ import annotations

import pytest

from jaxviz import models


@pytest.mark.parametrize("name, layer, size, stride, offset", [
    ("alexnet", "features.0", 11, 4, -2),  # conv1: 11x11 / 4, padding 2
    ("alexnet", "features.2", 19, 8, -2),  # pool1: 3x3 / 2
    ("vgg16", "features.3", 5, 1, -2),  # conv1_2
    ("vgg16", "features.4", 6, 2, -2),  # pool1
    ("resnet50", "maxpool", 11, 4, -5),  # 7x7/2 then 3x3/2
    ("efficientnet_lite0", "stem", 3, 2, 0),  # TensorFlow SAME: the extra pixel is at the end
    ("inception_v1", "conv2d0", 7, 2, -2),  # TensorFlow SAME 7x7/2: pads (2, 3)
])
def test_known_receptive_fields(name, layer, size, stride, offset):
    rf = models.receptive_field(models.build(name), layer, size=64)
    assert (rf.size, rf.stride, rf.offset, rf.clipped) == (size, stride, offset, False)


def test_deep_fields_are_marked_clipped():
    rf = models.receptive_field(models.build("vgg16"), "features.30", size=64)
    assert rf.clipped and rf.size == 64


def test_non_spatial_layers_are_refused():
    with pytest.raises(ValueError, match="not spatial"):
        models.receptive_field(models.build("alexnet"), "classifier.1", size=64)
