"""Robustness: does the explanation stay put when the input barely moves, and does it predict the score's change?

* :func:`max_sensitivity` (Yeh et al., NeurIPS 2019; Captum's ``sensitivity_max``): the largest relative change
  ``||e(x) - e(x')|| / ||e(x)||`` over ``samples`` inputs ``x'`` uniformly within ``radius`` of ``x``;
* :func:`local_lipschitz` (Alvarez-Melis & Jaakkola 2018; Quantus's ``LocalLipschitzEstimate``): the largest
  ``||e(x) - e(x')|| / ||x - x'||`` over Gaussian neighbours ``x'``;
* :func:`infidelity` (Yeh et al.; Captum's ``infidelity``): the mean squared difference between the attribution's
  prediction of a perturbation's effect, ``sum(a * p)``, and the effect itself, ``f(x) - f(x - p)``.

The first two re-run the attribution ``method`` (any ``method(model, variables, images, target)``: pass options
with ``functools.partial``) on the perturbed copies, ``batch_size`` images per call, in a ``lax.map``. The
perturbations come from ``key``, or are given as ``noise`` (samples, B, H, W, 3) to compare with a peer.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from jaxviz.core.batching import map_chunks, per_pass
from jaxviz.metrics._common import (
    check_finite,
    check_inputs,
    class_indices,
    target_scores,
    variant_scores,
)

__all__ = ["max_sensitivity", "local_lipschitz", "infidelity", "explanations_of"]

Method = Callable[..., jax.Array]


def _noise(images, noise, key, samples, draw) -> jax.Array:
    if noise is None:
        if key is None:
            raise ValueError("pass key= (or the perturbations as noise=)")
        if samples < 1:
            raise ValueError(f"samples must be >= 1, got {samples}")
        return draw(key, (samples, *images.shape)).astype(images.dtype)
    noise = jnp.asarray(noise, images.dtype)
    if noise.ndim != 5 or noise.shape[1:] != images.shape:
        raise ValueError(f"noise must be (samples, *images.shape) = (samples, {', '.join(map(str, images.shape))}), "
                         f"got {noise.shape}")
    return noise


def explanations_of(method: Method, model, variables, inputs: jax.Array, target: jax.Array,
                    batch_size: int | None = None) -> jax.Array:
    """``method`` on (S, B, H, W, 3) ``inputs``: (S, B, ...) maps, ``per_pass`` copies of the batch per call."""
    b = inputs.shape[1]

    def explain(idx):
        x = inputs[idx]  # (chunk, B, H, W, 3)
        maps = method(model, variables, x.reshape(-1, *x.shape[2:]), jnp.tile(target, len(idx)))
        return maps.reshape(len(idx), b, *maps.shape[1:])

    return map_chunks(explain, inputs.shape[0], per_pass(batch_size, b))


def _flat_norm(x: jax.Array, start: int) -> jax.Array:
    return jnp.sqrt(jnp.sum(x.reshape(*x.shape[:start], -1) ** 2, axis=-1))


def max_sensitivity(method: Method, model, variables, images, target, *, radius: float = 0.02, samples: int = 10,
                    key: jax.Array | None = None, noise: jax.Array | None = None,
                    batch_size: int | None = None) -> jax.Array:
    """Captum's ``sensitivity_max``: (B,) ``max_k ||e(x) - e(x + u_k)|| / ||e(x)||``, ``u_k ~ U(-radius, radius)``
    elementwise (Captum's defaults: 10 samples, radius 0.02, Frobenius norms; a zero ``||e(x)||`` counts as 1)."""
    images, _ = check_inputs(images)
    target = class_indices(target, images.shape[0])
    if radius <= 0:
        raise ValueError(f"radius must be > 0, got {radius}")
    u = _noise(images, noise, key, samples,
               lambda k, shape: jax.random.uniform(k, shape, minval=-radius, maxval=radius))
    e = method(model, variables, images, target)
    moved = explanations_of(method, model, variables, images[None] + u, target, batch_size)
    size = _flat_norm(e, 1)
    return jnp.max(_flat_norm(moved - e[None], 2) / jnp.where(size == 0, 1.0, size)[None], axis=0)


def local_lipschitz(method: Method, model, variables, images, target, *, std: float = 0.1, samples: int = 200,
                    key: jax.Array | None = None, noise: jax.Array | None = None,
                    batch_size: int | None = None) -> jax.Array:
    """Quantus's ``LocalLipschitzEstimate`` (without its normalization): (B,)
    ``max_k ||e(x) - e(x + n_k)|| / (||n_k|| + 1e-10)``, ``n_k ~ N(0, std^2)`` (Quantus: 200 samples, std 0.1)."""
    images, _ = check_inputs(images)
    target = class_indices(target, images.shape[0])
    if std <= 0:
        raise ValueError(f"std must be > 0, got {std}")
    n = _noise(images, noise, key, samples, lambda k, shape: std * jax.random.normal(k, shape))
    e = method(model, variables, images, target)
    moved = explanations_of(method, model, variables, images[None] + n, target, batch_size)
    return jnp.max(_flat_norm(moved - e[None], 2) / (_flat_norm(n, 2) + 1e-10), axis=0)


def infidelity(model, variables, images, target, maps, *, std: float = 0.1, samples: int = 10,
               key: jax.Array | None = None, noise: jax.Array | None = None, normalize: bool = False,
               batch_size: int | None = None, output: str = "logit") -> jax.Array:
    """Captum's ``infidelity``: (B,) ``mean_k (sum(a * p_k) - (f(x) - f(x - p_k)))^2`` for Gaussian perturbations
    ``p_k ~ N(0, std^2)`` (Captum takes them from a user function; pass the same ones as ``noise``).

    ``maps`` are full attributions, (B, H, W, 3), or (B, H, W) broadcast to every channel. ``normalize``: scale the
    attribution's predictions by the least-squares factor first (Captum's ``normalize=True``). ``output``: the
    score ``f``, ``"logit"`` (a plain network in Captum) or ``"probability"``.
    """
    images, _ = check_inputs(images)
    b = images.shape[0]
    target = class_indices(target, b)
    maps = jnp.asarray(maps, images.dtype)
    if maps.shape == images.shape[:3]:
        maps = jnp.broadcast_to(maps[..., None], images.shape)
    if maps.shape != images.shape:
        raise ValueError(f"maps must be (B, H, W, 3) = {images.shape} or (B, H, W), got {maps.shape}")
    check_finite(maps, "maps")
    p = _noise(images, noise, key, samples, lambda k, shape: std * jax.random.normal(k, shape))
    predicted = jnp.einsum("sbhwc,bhwc->bs", p, maps)
    before = target_scores(model, variables, images, target, output)
    after = variant_scores(model, variables, target, lambda k: images - p[k], p.shape[0], b, batch_size=batch_size,
                           output=output)
    actual = before[:, None] - after
    if normalize:
        denominator = jnp.sum(predicted * predicted, axis=1, keepdims=True)
        beta = jnp.sum(predicted * actual, axis=1, keepdims=True) / jnp.where(denominator == 0, 1.0, denominator)
        predicted = beta * predicted
    return jnp.mean((predicted - actual) ** 2, axis=1)
