"""ResNet-50 in torchvision's layout (v1.5: stride on the 3x3 convolution).

``variant=KERAS`` is Keras Applications' ResNet50 (v1: stride on the first 1x1
convolution, convolution biases, BN epsilon 1.001e-5) under the same names.

Module and layer names are torchvision's (``conv1``, ``layer1.0.conv2``,
``layer4.2``, ``fc``), so a torchvision state_dict converts key by key.

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import flax.linen as nn
import jax

from .core import Taps
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
    act: Callable[[jax.Array], jax.Array] = nn.relu

    @nn.compact
    def __call__(self, x):
        v = self.variant
        s1, s3 = (self.stride, 1) if v.stride_on_1x1 else (1, self.stride)
        out = conv(self.width, 1, s1, bias=v.conv_bias, name="conv1")(x)
        out = self.act(batch_norm(v.bn_eps, name="bn1")(out))
        out = conv(self.width, 3, s3, 1, bias=v.conv_bias, name="conv2")(out)
        out = self.act(batch_norm(v.bn_eps, name="bn2")(out))
        out = batch_norm(v.bn_eps, name="bn3")(conv(self.width * EXPANSION, 1, bias=v.conv_bias, name="conv3")(out))
        if self.project:
            shortcut = conv(self.width * EXPANSION, 1, self.stride, bias=v.conv_bias, name="downsample.0")(x)
            x = batch_norm(v.bn_eps, name="downsample.1")(shortcut)
        return self.act(out + x)


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
    act: Callable[[jax.Array], jax.Array] = nn.relu

    @nn.compact
    def __call__(self, x, taps: Taps | None = None):
        tap = taps if taps is not None else Taps()
        x = tap("conv1", conv(64, 7, 2, 3, bias=self.variant.conv_bias, name="conv1")(x))
        x = tap("bn1", batch_norm(self.variant.bn_eps, name="bn1")(x))
        x = tap("relu", self.act(x))
        x = tap("maxpool", max_pool(x, 3, 2, 1))
        for i, (blocks, width) in enumerate(zip(self.stages, WIDTHS, strict=True), start=1):
            for j in range(blocks):
                stride = 2 if (j == 0 and i > 1) else 1
                block = Bottleneck(width, stride, project=(j == 0), variant=self.variant, act=self.act,
                                   name=f"layer{i}.{j}")
                x = tap(f"layer{i}.{j}", block(x))
            x = tap(f"layer{i}", x)
        x = tap("avgpool", global_avg_pool(x))
        logits = tap("fc", nn.Dense(self.num_classes, name="fc")(x))
        return logits
