"""InceptionV1 as Lucid and Distill's Feature Visualization use it (the "inception5h" graph).

TensorFlow's GoogLeNet port: 1008 classes, local response normalization, no
BatchNorm, TensorFlow "SAME" padding (max pools pad with -inf), inputs in
[-117, 138] (``255 x - 117``, applied inside). Module names follow the
PyTorch conversion Lucent loads (``conv2d0_pre_relu_conv``,
``mixed4a_3x3_pre_relu_conv``, ``softmax2_pre_activation_matmul``). Layer names
are Lucid's: ``conv2d0`` ... ``mixed3a`` ... ``mixed5b``, ``avgpool0`` and
``softmax2_pre_activation`` (the logits).

The reference averages mixed5b with a fixed 7x7 window, which only yields one
vector at 224 px; this port averages globally, the same at 224 px and defined
at every size (DeepDream runs at many).

References: Szegedy et al., "Going Deeper with Convolutions", CVPR 2015;
Olah et al., "Feature Visualization", Distill 2017.
"""

from __future__ import annotations

import contextlib

import flax.linen as nn
import jax
import jax.numpy as jnp

from .layers import conv, global_avg_pool, max_pool, same_padding

# mixed layer: (1x1, 3x3 bottleneck, 3x3, 5x5 bottleneck, 5x5, pool reduce); None: a 3x3/2 max pool.
MIXED = (
    ("mixed3a", (64, 96, 128, 16, 32, 32)),
    ("mixed3b", (128, 128, 192, 32, 96, 64)),
    ("maxpool4", None),
    ("mixed4a", (192, 96, 204, 16, 48, 64)),
    ("mixed4b", (160, 112, 224, 24, 64, 64)),
    ("mixed4c", (128, 128, 256, 24, 64, 64)),
    ("mixed4d", (112, 144, 288, 32, 64, 64)),
    ("mixed4e", (256, 160, 320, 32, 128, 128)),
    ("maxpool10", None),
    ("mixed5a", (256, 160, 320, 48, 128, 128)),
    ("mixed5b", (384, 192, 384, 48, 128, 128)),
)
LAYERS = ("conv2d0", "maxpool0", "localresponsenorm0", "conv2d1", "conv2d2", "localresponsenorm1", "maxpool1",
          *(name for name, _ in MIXED), "avgpool0", "softmax2_pre_activation")
LRN = dict(size=9, alpha=9.99999974738e-05, beta=0.5, k=1.0)


def local_response_norm(x: jax.Array, size: int, alpha: float, beta: float, k: float) -> jax.Array:
    """``torch.nn.functional.local_response_norm`` over channels (NHWC): x / (k + alpha/n sum x^2)^beta."""
    sq = jnp.pad(x * x, ((0, 0), (0, 0), (0, 0), (size // 2, (size - 1) // 2)))
    window = sum(sq[..., i:i + x.shape[-1]] for i in range(size))
    return x / (k + alpha / size * window) ** beta


def _same_max_pool(x, kernel, stride):
    pads = (same_padding(x.shape[1], kernel, stride), same_padding(x.shape[2], kernel, stride))
    return max_pool(x, kernel, stride, pads=pads)


class InceptionV1(nn.Module):
    num_classes: int = 1008

    def _conv(self, x, name, features, kernel, stride=1, layer: str | None = None):
        x = conv(features, kernel, stride, "SAME", bias=True, name=f"{name}_pre_relu_conv")(x)
        with jax.named_scope(layer) if layer else contextlib.nullcontext():
            return nn.relu(x)

    def _mixed(self, x, name, widths):
        c1, c3r, c3, c5r, c5, cp = widths
        b1 = self._conv(x, f"{name}_1x1", c1, 1)
        b3 = self._conv(self._conv(x, f"{name}_3x3_bottleneck", c3r, 1), f"{name}_3x3", c3, 3)
        b5 = self._conv(self._conv(x, f"{name}_5x5_bottleneck", c5r, 1), f"{name}_5x5", c5, 5)
        bp = self._conv(_same_max_pool(x, 3, 1), f"{name}_pool_reduce", cp, 1)
        with jax.named_scope(name):
            return jnp.concatenate([b1, b3, b5, bp], axis=-1)

    @nn.compact
    def __call__(self, x):
        x = self._conv(x, "conv2d0", 64, 7, 2, layer="conv2d0")
        with jax.named_scope("maxpool0"):
            x = _same_max_pool(x, 3, 2)
        with jax.named_scope("localresponsenorm0"):
            x = local_response_norm(x, **LRN)
        x = self._conv(x, "conv2d1", 64, 1, layer="conv2d1")
        x = self._conv(x, "conv2d2", 192, 3, layer="conv2d2")
        with jax.named_scope("localresponsenorm1"):
            x = local_response_norm(x, **LRN)
        with jax.named_scope("maxpool1"):
            x = _same_max_pool(x, 3, 2)
        for name, widths in MIXED:
            if widths is None:
                with jax.named_scope(name):
                    x = _same_max_pool(x, 3, 2)
            else:
                x = self._mixed(x, name, widths)
        with jax.named_scope("avgpool0"):
            x = global_avg_pool(x)
        return nn.Dense(self.num_classes, name="softmax2_pre_activation_matmul")(x)
