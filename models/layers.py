"""Layer helpers shared by the ports, in PyTorch's conventions.

Kernels are HWIO. ``padding`` is an int (symmetric, as ``torch.nn.Conv2d``) or
``"SAME"`` (TensorFlow's rule, as EfficientNet-Lite's reference pads).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

# torchvision initializes convs with kaiming_normal_(mode="fan_out").
_he_fan_out = nn.initializers.variance_scaling(2.0, "fan_out", "truncated_normal")


def conv(features: int, kernel: int, stride: int = 1, padding: int | str = 0, *, groups: int = 1,
         bias: bool = False, name: str | None = None) -> nn.Conv:
    """A 2-D convolution laid out like ``torch.nn.Conv2d``."""
    pad = padding if isinstance(padding, str) else ((padding, padding), (padding, padding))
    return nn.Conv(features, (kernel, kernel), strides=(stride, stride), padding=pad,
                   feature_group_count=groups, use_bias=bias, kernel_init=_he_fan_out, name=name)


def batch_norm(epsilon: float = 1e-5, name: str | None = None) -> nn.BatchNorm:
    """BatchNorm in inference mode (running statistics), as ``model.eval()``."""
    return nn.BatchNorm(use_running_average=True, momentum=0.9, epsilon=epsilon, name=name)


def max_pool(x: jax.Array, kernel: int, stride: int, padding: int = 0) -> jax.Array:
    """``torch.nn.MaxPool2d`` (pads with -inf)."""
    return nn.max_pool(x, (kernel, kernel), (stride, stride), ((padding, padding), (padding, padding)))


def global_avg_pool(x: jax.Array) -> jax.Array:
    """(B, H, W, C) -> (B, C)."""
    return jnp.mean(x, axis=(1, 2))
