"""GoogLeNet (Inception v1) as torchvision defines it: with BatchNorm.

torchvision's pretrained weights expect ``transform_input=True``, which maps
ImageNet-normalized inputs to (x - 0.5) / 0.5; here that is simply the
preprocessing, applied to [0, 1] images. Module and layer names are
torchvision's (``conv1``, ``inception3a`` ... ``inception5b``, ``fc``; inside a
block ``branch2.1.conv``). The auxiliary classifiers are training-only and
are not ported (their weights are dropped on conversion). torchvision's
"5x5" branch uses a 3x3 convolution, and so does this port.

Reference: Szegedy et al., "Going Deeper with Convolutions", CVPR 2015.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from .layers import batch_norm, conv, global_avg_pool, max_pool

# name: (1x1, 3x3 reduce, 3x3, "5x5" reduce, "5x5", pool proj)
INCEPTIONS = (
    ("inception3a", (64, 96, 128, 16, 32, 32)),
    ("inception3b", (128, 128, 192, 32, 96, 64)),
    ("maxpool3", None),
    ("inception4a", (192, 96, 208, 16, 48, 64)),
    ("inception4b", (160, 112, 224, 24, 64, 64)),
    ("inception4c", (128, 128, 256, 24, 64, 64)),
    ("inception4d", (112, 144, 288, 32, 64, 64)),
    ("inception4e", (256, 160, 320, 32, 128, 128)),
    ("maxpool4", None),
    ("inception5a", (256, 160, 320, 32, 128, 128)),
    ("inception5b", (384, 192, 384, 48, 128, 128)),
)
LAYERS = ("conv1", "maxpool1", "conv2", "conv3", "maxpool2", *(n for n, _ in INCEPTIONS), "avgpool", "fc")


class BasicConv(nn.Module):
    """conv (no bias) -> BN (eps 1e-3) -> act, named ``conv`` and ``bn`` as torchvision's BasicConv2d."""

    features: int
    kernel: int
    stride: int = 1
    padding: int = 0

    @nn.compact
    def __call__(self, x):
        x = conv(self.features, self.kernel, self.stride, self.padding, name="conv")(x)
        return nn.relu(batch_norm(1e-3, name="bn")(x))


class Inception(nn.Module):
    widths: tuple[int, ...]

    @nn.compact
    def __call__(self, x):
        c1, c3r, c3, c5r, c5, cp = self.widths
        b1 = BasicConv(c1, 1, name="branch1")(x)
        b2 = BasicConv(c3r, 1, name="branch2.0")(x)
        b2 = BasicConv(c3, 3, padding=1, name="branch2.1")(b2)
        b3 = BasicConv(c5r, 1, name="branch3.0")(x)
        b3 = BasicConv(c5, 3, padding=1, name="branch3.1")(b3)
        b4 = max_pool(x, 3, 1, 1, ceil_mode=True)
        b4 = BasicConv(cp, 1, name="branch4.1")(b4)
        return jnp.concatenate([b1, b2, b3, b4], axis=-1)


class GoogLeNet(nn.Module):
    num_classes: int = 1000

    @nn.compact
    def __call__(self, x):
        x = BasicConv(64, 7, 2, 3, name="conv1")(x)
        with jax.named_scope("maxpool1"):
            x = max_pool(x, 3, 2, ceil_mode=True)
        x = BasicConv(64, 1, name="conv2")(x)
        x = BasicConv(192, 3, padding=1, name="conv3")(x)
        with jax.named_scope("maxpool2"):
            x = max_pool(x, 3, 2, ceil_mode=True)
        for name, widths in INCEPTIONS:
            if widths is None:
                with jax.named_scope(name):
                    x = max_pool(x, 3 if name == "maxpool3" else 2, 2, ceil_mode=True)
            else:
                x = Inception(widths, name=name)(x)
        with jax.named_scope("avgpool"):
            x = global_avg_pool(x)
        return nn.Dense(self.num_classes, name="fc")(x)
