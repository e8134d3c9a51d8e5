"""Evaluating many perturbed copies of a batch in bounded memory.

Sampled methods (SmoothGrad, integrated gradients, occlusion) evaluate ``count``
variants of a batch. They run ``chunk`` variants per step of a ``lax.scan`` and
accumulate, so memory depends on the chunk, not on ``count``.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from jaxviz.core.objectives import Target

__all__ = ["DEFAULT_BATCH_SIZE", "chunked_sum", "map_chunks", "per_pass", "tile_target"]

#: images per forward pass in sampled methods, unless ``batch_size=`` says otherwise.
DEFAULT_BATCH_SIZE = 64


def tile_target(target: Target, reps: int, batch: int) -> Target:
    """The target for ``reps`` copies of a batch stacked sample-major: (reps * B,)."""
    if callable(target):
        return target
    return jnp.tile(jnp.broadcast_to(jnp.asarray(target), (batch,)), reps)


def chunked_sum(fn: Callable[[jax.Array], jax.Array], count: int, chunk: int, shape,
                 dtype=jnp.float32) -> jax.Array:
    """sum_{i < count} fn(i), evaluating ``chunk`` indices per step of a ``lax.scan``.

    ``fn`` maps a (chunk,) index vector to a (chunk, *shape) stack. Indices past
    ``count`` (padding of the last chunk) are computed and masked out.
    """
    chunk = max(1, min(chunk, count))
    n_chunks = -(-count // chunk)

    def body(total, c):
        idx = c * chunk + jnp.arange(chunk)
        values = fn(idx)
        keep = (idx < count).reshape((chunk,) + (1,) * len(shape))
        return total + jnp.sum(jnp.where(keep, values, 0), axis=0), None

    total, _ = jax.lax.scan(body, jnp.zeros(shape, dtype), jnp.arange(n_chunks))
    return total


def per_pass(batch_size: int | None, batch: int) -> int:
    """How many copies of a ``batch``-image batch fit in ``batch_size`` images per forward pass."""
    return max(1, (batch_size or DEFAULT_BATCH_SIZE) // batch)


def map_chunks(fn: Callable[[jax.Array], jax.Array], count: int, chunk: int) -> jax.Array:
    """``fn`` of (chunk,) index vectors, stacked for the indices ``k < count``: (count, ...), in a ``lax.map`` of
    ``ceil(count / chunk)`` calls (the last chunk repeats index ``count - 1``)."""
    chunk = max(1, min(chunk, count))
    n_chunks = -(-count // chunk)
    out = jax.lax.map(lambda c: fn(jnp.minimum(c * chunk + jnp.arange(chunk), count - 1)), jnp.arange(n_chunks))
    return out.reshape(n_chunks * chunk, *out.shape[2:])[:count]
