"""EfficientNet-Lite0/1/2: EfficientNet without squeeze-excitation, with ReLU6.

Matches the ``efficientnet-lite-pytorch`` reference (itself a port of the
TensorFlow builder): TensorFlow "SAME" padding, BatchNorm epsilon 1e-3, stem
and head widths not scaled, first and last stages not repeated more.

Module names are the reference's without their leading underscore
(``conv_stem``, ``blocks.3.depthwise_conv``, ``fc``). Layer names for
activations: ``stem``, ``blocks.0`` ... ``blocks.N``, ``head``, ``avgpool``, ``fc``.

Reference: Tan & Le, "EfficientNet: Rethinking Model Scaling for
Convolutional Neural Networks", ICML 2019; the Lite variants are from the
TensorFlow TPU repository.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import flax.linen as nn
import jax

from .layers import DepthwiseConv, batch_norm, conv, global_avg_pool

BN_EPS = 1e-3


class Stage(NamedTuple):
    repeats: int
    kernel: int
    stride: int
    expand: int
    in_ch: int
    out_ch: int


# The Lite builder's block string, one row per stage.
BASE_STAGES = (
    Stage(1, 3, 1, 1, 32, 16),
    Stage(2, 3, 2, 6, 16, 24),
    Stage(2, 5, 2, 6, 24, 40),
    Stage(3, 3, 2, 6, 40, 80),
    Stage(3, 5, 1, 6, 80, 112),
    Stage(4, 5, 2, 6, 112, 192),
    Stage(1, 3, 1, 6, 192, 320),
)

# name: (width coefficient, depth coefficient, native resolution)
VARIANTS = {
    "efficientnet_lite0": (1.0, 1.0, 224),
    "efficientnet_lite1": (1.0, 1.1, 240),
    "efficientnet_lite2": (1.1, 1.2, 260),
}


class Block(NamedTuple):
    kernel: int
    stride: int
    expand: int
    in_ch: int
    out_ch: int


def _round_filters(filters: int, width: float, divisor: int = 8) -> int:
    scaled = filters * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return int(rounded + divisor if rounded < 0.9 * scaled else rounded)


def blocks_for(width: float, depth: float) -> tuple[Block, ...]:
    """Expands the stage table into one entry per MBConv block."""
    blocks = []
    last = len(BASE_STAGES) - 1
    for i, s in enumerate(BASE_STAGES):
        fixed = i in (0, last)  # Lite keeps the first and last stages as they are
        repeats = s.repeats if fixed else int(math.ceil(depth * s.repeats))
        in_ch = 32 if i == 0 else _round_filters(s.in_ch, width)
        out_ch = _round_filters(s.out_ch, width)
        for r in range(repeats):
            blocks.append(Block(s.kernel, s.stride if r == 0 else 1, s.expand, in_ch if r == 0 else out_ch, out_ch))
    return tuple(blocks)


def layer_names(blocks: tuple[Block, ...]) -> tuple[str, ...]:
    return ("stem", *(f"blocks.{i}" for i in range(len(blocks))), "head", "avgpool", "fc")


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand -> depthwise kxk -> 1x1 project (+ skip)."""

    block: Block

    @nn.compact
    def __call__(self, inputs):
        b = self.block
        x = inputs
        hidden = b.in_ch * b.expand
        if b.expand != 1:
            x = jax.nn.relu6(batch_norm(BN_EPS, "bn0")(conv(hidden, 1, name="expand_conv")(x)))
        x = DepthwiseConv(b.kernel, b.stride, name="depthwise_conv")(x)
        x = jax.nn.relu6(batch_norm(BN_EPS, "bn1")(x))
        x = batch_norm(BN_EPS, "bn2")(conv(b.out_ch, 1, name="project_conv")(x))
        if b.stride == 1 and b.in_ch == b.out_ch:
            x = x + inputs
        return x


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite. ``__call__`` takes normalized NHWC images."""

    blocks: tuple[Block, ...] = blocks_for(1.0, 1.0)
    num_classes: int = 1000

    @nn.compact
    def __call__(self, x):
        x = batch_norm(BN_EPS, "bn0")(conv(32, 3, 2, "SAME", name="conv_stem")(x))
        with jax.named_scope("stem"):
            x = jax.nn.relu6(x)
        for i, block in enumerate(self.blocks):
            x = MBConv(block, name=f"blocks.{i}")(x)
        x = batch_norm(BN_EPS, "bn1")(conv(1280, 1, name="conv_head")(x))
        with jax.named_scope("head"):
            x = jax.nn.relu6(x)
        with jax.named_scope("avgpool"):
            x = global_avg_pool(x)
        return nn.Dense(self.num_classes, name="fc")(x)
