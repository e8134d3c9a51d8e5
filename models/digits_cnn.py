"""A small CNN with BatchNorm for scikit-learn's 8x8 digits, upsampled (the repo trains it; no download).

It serves the experiments that need a network trained end to end on a data set
small enough for a CPU: data-free distillation (DeepInversion inverts its
BatchNorm statistics) and feature-space nearest neighbours. It follows the model
protocol (RGB in [0, 1], named layers); the first thing it does is
average the three channels, since the digits are grey.

``train=True`` uses batch statistics and updates ``batch_stats`` (pass
``mutable=["batch_stats"]`` to ``module.apply``); the default is inference mode.

``pool="cov"`` replaces the global average pool with global covariance pooling (:mod:`.covpool`, iSQRT-COV):
the layer ``covpool`` then stands where ``avgpool`` was.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from .adapters import linen_port
from .core import Model, Preprocessing
from .covpool import CovariancePool
from .layers import global_avg_pool, max_pool

#: the digits' side after upsampling.
INPUT_SIZE = 32
LAYERS = ("conv1", "relu1", "conv2", "relu2", "conv3", "relu3", "avgpool", "fc")


class DigitsCNN(nn.Module):
    """conv(3x3)-BN-ReLU-pool twice, conv-BN-ReLU, global average (or covariance) pool, linear."""

    widths: tuple[int, int, int] = (16, 32, 64)
    num_classes: int = 10
    pool: str = "avg"  # or "cov": CovariancePool(cov_dim)
    cov_dim: int = 16
    grey: bool = True  # average the three channels first (the digits are grey)

    @nn.compact
    def __call__(self, x, train: bool = False):
        if self.grey:
            x = jnp.mean(x, axis=-1, keepdims=True)
        for i, width in enumerate(self.widths, start=1):
            x = nn.Conv(width, (3, 3), padding=1, use_bias=False, name=f"conv{i}")(x)
            x = nn.BatchNorm(use_running_average=not train, momentum=0.9, name=f"bn{i}")(x)
            with jax.named_scope(f"relu{i}"):
                x = nn.relu(x)
            if i < len(self.widths):
                x = max_pool(x, 2, 2)
        if self.pool == "cov":
            x = CovariancePool(self.cov_dim, name="covpool")(x, train)
        else:
            with jax.named_scope("avgpool"):
                x = global_avg_pool(x)
        return nn.Dense(self.num_classes, name="fc")(x)


def build(widths: tuple[int, int, int] = (16, 32, 64), pool: str = "avg", cov_dim: int = 16) -> Model:
    """The digits CNN's :class:`Model` record (``labels="digits"``: class ``k`` is the digit ``k``); ``pool``:
    ``"avg"`` (global average pooling) or ``"cov"`` (global covariance pooling to ``cov_dim`` channels)."""
    if pool not in ("avg", "cov"):
        raise ValueError(f"pool must be 'avg' or 'cov', got {pool!r}")
    name, layers = ("digits_cnn", LAYERS) if pool == "avg" else (
        "digits_cnn_cov", tuple("covpool" if n == "avgpool" else n for n in LAYERS))
    return _record(name, DigitsCNN(widths, pool=pool, cov_dim=cov_dim), INPUT_SIZE, layers, "digits")


def small_cnn(num_classes: int, input_size: int, widths: tuple[int, int, int] = (16, 32, 64)) -> Model:
    """The same network in colour with ``num_classes`` outputs: a student small enough to train on a CPU in
    seconds, for distillation from a large teacher (``labels="indices"``: class ``k`` is its ``k``-th output)."""
    return _record("small_cnn", DigitsCNN(widths, num_classes=num_classes, grey=False), input_size, LAYERS, "indices")


def _record(name: str, module: DigitsCNN, input_size: int, layers: tuple[str, ...], labels: str) -> Model:
    return linen_port(name, module, input_size, module.num_classes, Preprocessing((0.5,) * 3, (0.5,) * 3), layers,
                      aliases={f"conv{i}": f"bn{i}" for i in (1, 2, 3)}, labels=labels, cam_layer="relu3")
