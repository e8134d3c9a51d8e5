"""ResNet-50 in torchvision's layout (v1.5: stride on the 3x3 convolution).

``variant=KERAS`` is Keras Applications' ResNet50 (v1: stride on the first 1x1
convolution, convolution biases, BN epsilon 1.001e-5) under the same names.

Module and layer names are torchvision's (``conv1``, ``layer1.0.conv2``,
``layer4.2``, ``fc``), so a torchvision state_dict converts key by key.

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016.
"""

from __future__ import annotations

from typing import NamedTuple

import flax.linen as nn
import jax

from .layers import batch_norm, conv, global_avg_pool, max_pool

STAGES = {"resnet50": (3, 4, 6, 3)}
WIDTHS = (64, 128, 256, 512)
EXPANSION = 4


class Variant(NamedTuple):
    """torchvision's v1.5 (stride on the 3x3, no conv biases) or Keras's v1 (stride on the first 1x1, biases)."""

    stride_on_1x1: bool = False
    conv_bias: bool = False
    bn_eps: float = 1e-5


TORCHVISION = Variant()
KERAS = Variant(stride_on_1x1=True, conv_bias=True, bn_eps=1.001e-5)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 -> 1x1, strided as the variant says, with a projection shortcut where shapes change."""

    width: int
    stride: int = 1
    project: bool = False
    variant: Variant = TORCHVISION

    @nn.compact
    def __call__(self, x):
        v = self.variant
        s1, s3 = (self.stride, 1) if v.stride_on_1x1 else (1, self.stride)
        out = conv(self.width, 1, s1, bias=v.conv_bias, name="conv1")(x)
        out = nn.relu(batch_norm(v.bn_eps, name="bn1")(out))
        out = conv(self.width, 3, s3, 1, bias=v.conv_bias, name="conv2")(out)
        out = nn.relu(batch_norm(v.bn_eps, name="bn2")(out))
        out = batch_norm(v.bn_eps, name="bn3")(conv(self.width * EXPANSION, 1, bias=v.conv_bias, name="conv3")(out))
        if self.project:
            shortcut = conv(self.width * EXPANSION, 1, self.stride, bias=v.conv_bias, name="downsample.0")(x)
            x = batch_norm(v.bn_eps, name="downsample.1")(shortcut)
        return nn.relu(out + x)


def stage_aliases(stages: tuple[int, ...]) -> dict[str, str]:
    """Each stage's output is its last block's: ``layer1`` -> ``layer1.2``."""
    return {f"layer{i}": f"layer{i}.{blocks - 1}" for i, blocks in enumerate(stages, start=1)}


def layer_names(stages: tuple[int, ...]) -> tuple[str, ...]:
    names = ["conv1", "bn1", "relu", "maxpool"]
    for i, blocks in enumerate(stages, start=1):
        names += [f"layer{i}.{j}" for j in range(blocks)] + [f"layer{i}"]
    return tuple(names + ["avgpool", "fc"])


class ResNet(nn.Module):
    """A bottleneck ResNet. ``__call__`` takes normalized NHWC images."""

    stages: tuple[int, ...] = STAGES["resnet50"]
    num_classes: int = 1000
    variant: Variant = TORCHVISION

    @nn.compact
    def __call__(self, x):
        x = conv(64, 7, 2, 3, bias=self.variant.conv_bias, name="conv1")(x)
        x = batch_norm(self.variant.bn_eps, name="bn1")(x)
        with jax.named_scope("relu"):
            x = nn.relu(x)
        with jax.named_scope("maxpool"):
            x = max_pool(x, 3, 2, 1)
        for i, (blocks, width) in enumerate(zip(self.stages, WIDTHS, strict=True), start=1):
            for j in range(blocks):
                stride = 2 if (j == 0 and i > 1) else 1
                x = Bottleneck(width, stride, project=(j == 0), variant=self.variant, name=f"layer{i}.{j}")(x)
        with jax.named_scope("avgpool"):
            x = global_avg_pool(x)
        return nn.Dense(self.num_classes, name="fc")(x)
