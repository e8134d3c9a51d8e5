"""Complexity: how concentrated is the map? Each ``f(maps)`` -> (B,), on ``|map|`` scaled to a maximum of 1 per
image (Quantus's ``abs=True``, ``normalise=True`` with per-image axes).

* :func:`sparseness` (Chalasani et al. 2020): the Gini index of the map's values (1: one pixel holds everything,
  0: uniform), after adding Quantus's 1e-7;
* :func:`complexity` (Bhatt et al. 2020): the entropy of the map as a distribution over pixels (natural log;
  lower is simpler).
"""

from __future__ import annotations

import jax.numpy as jnp

from jaxviz.metrics._common import pixel_maps

__all__ = ["sparseness", "complexity"]


def _scaled(maps) -> jnp.ndarray:
    maps = jnp.asarray(maps)
    maps = pixel_maps(maps, maps.shape[:3])
    flat = jnp.abs(maps.reshape(maps.shape[0], -1))
    top = jnp.max(flat, axis=1, keepdims=True)
    return flat / jnp.where(top == 0, 1.0, top)


def sparseness(maps) -> jnp.ndarray:
    """(B,) Gini index of ``|map|``."""
    a = jnp.sort(_scaled(maps) + 1e-7, axis=1)
    n = a.shape[1]
    k = jnp.arange(1, n + 1, dtype=a.dtype)
    return jnp.sum((2 * k - n - 1) * a, axis=1) / (n * jnp.sum(a, axis=1))


def complexity(maps) -> jnp.ndarray:
    """(B,) entropy of ``|map| / sum |map|``."""
    a = _scaled(maps)
    p = a / jnp.sum(a, axis=1, keepdims=True)
    return -jnp.sum(p * jnp.log(p + 1e-12), axis=1)
