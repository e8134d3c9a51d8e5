"""ResNet-50 in torchvision's layout (v1.5: stride on the 3x3 convolution).

Module and layer names are torchvision's (``conv1``, ``layer1.0.conv2``,
``layer4.2``, ``fc``), so a torchvision state_dict converts key by key.

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016.
"""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn
import jax

from .core import Taps
from .layers import batch_norm, conv, global_avg_pool, max_pool

STAGES = {"resnet50": (3, 4, 6, 3)}
WIDTHS = (64, 128, 256, 512)
EXPANSION = 4


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (strided) -> 1x1, with a projection shortcut where shapes change."""

    width: int
    stride: int = 1
    project: bool = False
    act: Callable[[jax.Array], jax.Array] = nn.relu

    @nn.compact
    def __call__(self, x):
        out = self.act(batch_norm(name="bn1")(conv(self.width, 1, name="conv1")(x)))
        out = self.act(batch_norm(name="bn2")(conv(self.width, 3, self.stride, 1, name="conv2")(out)))
        out = batch_norm(name="bn3")(conv(self.width * EXPANSION, 1, name="conv3")(out))
        if self.project:
            shortcut = conv(self.width * EXPANSION, 1, self.stride, name="downsample.0")(x)
            x = batch_norm(name="downsample.1")(shortcut)
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
    act: Callable[[jax.Array], jax.Array] = nn.relu

    @nn.compact
    def __call__(self, x, taps: Taps | None = None):
        tap = taps if taps is not None else Taps()
        x = tap("conv1", conv(64, 7, 2, 3, name="conv1")(x))
        x = tap("bn1", batch_norm(name="bn1")(x))
        x = tap("relu", self.act(x))
        x = tap("maxpool", max_pool(x, 3, 2, 1))
        for i, (blocks, width) in enumerate(zip(self.stages, WIDTHS, strict=True), start=1):
            for j in range(blocks):
                stride = 2 if (j == 0 and i > 1) else 1
                block = Bottleneck(width, stride, project=(j == 0), act=self.act, name=f"layer{i}.{j}")
                x = tap(f"layer{i}.{j}", block(x))
            x = tap(f"layer{i}", x)
        x = tap("avgpool", global_avg_pool(x))
        logits = tap("fc", nn.Dense(self.num_classes, name="fc")(x))
        return logits
