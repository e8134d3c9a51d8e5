"""Receptive fields of named layers, measured on the network itself.

The gradient of one unit with respect to the input is non-zero exactly on the
pixels that unit sees, provided nothing cancels or blocks it: the activations
are replaced by the identity, every weight by its absolute value (BatchNorm's
scale too), and max pools pass gradient to every position of their window.
The measured support is exact for convolution/pooling stacks, whatever their
padding rules, and needs no per-architecture bookkeeping.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .core import Model, check_names
from .layers import POOL_MODE


class ReceptiveField(NamedTuple):
    """``size``: side of the square of input pixels one unit sees (clipped to the input when
    ``clipped``); ``stride``: input pixels between neighbouring units; ``offset``: the input
    row/column where unit (0, 0)'s field starts (negative: it reaches into the padding)."""

    size: int
    stride: int
    offset: int
    clipped: bool


@functools.cache
def _support_fn(model: Model, layer: str, size: int):
    linear = model.with_act(lambda z: z)

    def unit_grad(variables, i, j):
        def unit(x):
            token = POOL_MODE.set("window_mean")
            try:
                act = linear.apply(variables, x, capture=[layer])[1][layer]
            finally:
                POOL_MODE.reset(token)
            return jnp.sum(act[0, i, j])

        return jnp.abs(jax.grad(unit)(jnp.full((1, size, size, 3), 0.5))).sum(axis=(0, 3))

    return jax.jit(unit_grad)


@functools.cache
def _positive_weights(model: Model, seed: int):
    # NumPy's abs: jnp.abs here would compile one program per weight shape (48 on Lite0)
    return jax.tree_util.tree_map(lambda w: jnp.asarray(np.abs(np.asarray(w))), model.init(jax.random.key(seed)))


def _extent(mask: np.ndarray) -> tuple[int, int]:
    rows = np.flatnonzero(mask.any(axis=1))
    return int(rows[0]), int(rows[-1])


def receptive_field(model: Model, layer: str, size: int | None = None, seed: int = 0) -> ReceptiveField:
    """Measures the receptive field of ``layer`` on a ``size`` x ``size`` input (default native).

    Example:
        >>> receptive_field(models.build("alexnet"), "features.0")   # doctest: +SKIP
        ReceptiveField(size=11, stride=4, offset=-2, clipped=False)
    """
    (layer,) = check_names(layer, model.layers)
    size = size or model.input_size
    variables = _positive_weights(model, seed)
    shape = jax.eval_shape(lambda v: model.apply(v, jnp.zeros((1, size, size, 3)), capture=[layer])[1][layer],
                           variables).shape
    if len(shape) != 4:
        raise ValueError(f"{layer!r} is not spatial (shape {shape}); receptive fields are defined for spatial layers")
    fn = _support_fn(model, layer, size)
    c = max(shape[1] // 2 - 1, 0)
    top, bottom = _extent(np.asarray(fn(variables, c, c)) > 0)
    clipped = top == 0 or bottom == size - 1
    stride = size // shape[1]
    if shape[1] > 1:  # measure it where an edge of both neighbouring fields lies inside the input
        next_top, next_bottom = _extent(np.asarray(fn(variables, c + 1, c + 1)) > 0)
        if top > 0:
            stride = next_top - top
        elif next_bottom < size - 1:
            stride = next_bottom - bottom
    rf_size = bottom - top + 1
    return ReceptiveField(rf_size, stride, top - c * stride if top > 0 else bottom - c * stride - rf_size + 1, clipped)
