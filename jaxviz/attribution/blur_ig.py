"""Blur IG: integrated gradients along a path of ever stronger Gaussian blurs (Xu et al., CVPR 2020).

Instead of a straight line from a black baseline, the path runs from the image blurred with ``max_sigma`` down
to the image itself, so no baseline has to be chosen and the path never leaves natural-looking images. With
``sigma_0 = 0 < sigma_1 < ... < sigma_steps = max_sigma`` (evenly spaced, or their square roots evenly spaced
with ``sqrt=True``) and ``x_i`` the image blurred by ``sigma_i``::

    attribution = - sum_i (sigma_{i+1} - sigma_i) * d x_i / d sigma * grad score(x_i)

where ``d x_i / d sigma`` is the finite difference ``(blur(x, sigma_i + grad_step) - x_i) / grad_step``: the
definition and defaults of PAIR's ``saliency`` package (``BlurIG``). The blur is SciPy's ``gaussian_filter`` with
``mode="constant"``: a kernel truncated at ``4 sigma`` (radius ``int(4 sigma + 0.5)``), normalized, zero outside
the image; here as two (H, H) and (W, W) matrices built inside the program, so any image size and any sigma run
as one compiled program, ``batch_size`` images per forward pass in a ``lax.scan``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxviz.attribution.gradients import saliency
from jaxviz.core.batching import chunked_sum, per_pass, tile_target
from jaxviz.core.objectives import Target

__all__ = ["blur_integrated_gradients", "blur_sigmas", "gaussian_blur"]

TRUNCATE = 4.0


def blur_sigmas(max_sigma: float, steps: int, sqrt: bool = False) -> np.ndarray:
    """The ``steps + 1`` sigmas of the path, from 0 to ``max_sigma``."""
    s = np.arange(steps + 1) * (max_sigma / steps)
    return np.sqrt(s) if sqrt else s


def _blur_matrix(sigma: jax.Array, n: int, max_radius: int, dtype) -> jax.Array:
    """(n, n): correlation with SciPy's truncated, normalized Gaussian, zeros outside (identity at sigma 0)."""
    safe = jnp.maximum(sigma, 1e-12)
    radius = jnp.floor(TRUNCATE * safe + 0.5)
    taps = jnp.arange(-max_radius, max_radius + 1, dtype=dtype)
    norm = jnp.sum(jnp.where(jnp.abs(taps) <= radius, jnp.exp(-0.5 * (taps / safe) ** 2), 0))
    offset = jnp.arange(n, dtype=dtype)[None, :] - jnp.arange(n, dtype=dtype)[:, None]
    m = jnp.where(jnp.abs(offset) <= radius, jnp.exp(-0.5 * (offset / safe) ** 2), 0) / norm
    return jnp.where(sigma > 0, m, jnp.eye(n, dtype=dtype))


def gaussian_blur(images: jax.Array, sigma: jax.Array, max_sigma: float | None = None) -> jax.Array:
    """(B, H, W, C) blurred over H and W by ``sigma`` (SciPy's ``gaussian_filter``, ``mode="constant"``).

    ``max_sigma``: a static bound on ``sigma`` when it is traced (it sizes the kernel's normalization)."""
    bound = float(sigma) if max_sigma is None else max_sigma
    max_radius = int(TRUNCATE * bound + 0.5) + 1
    h, w = images.shape[1:3]
    rows = _blur_matrix(sigma, h, max_radius, images.dtype)
    cols = _blur_matrix(sigma, w, max_radius, images.dtype)
    return jnp.einsum("ij,bjkc,lk->bilc", rows, images, cols, precision=jax.lax.Precision.HIGHEST)


def blur_integrated_gradients(model, variables, images: jax.Array, target: Target, *, max_sigma: float = 50.0,
                              steps: int = 100, grad_step: float = 0.01, sqrt: bool = False,
                              batch_size: int | None = None) -> jax.Array:
    """Blur IG (see the module docstring): (B, H, W, 3), with respect to the images.

    Args:
        max_sigma: the blur at the start of the path, in pixels.
        steps: points on the path (gradients per image).
        grad_step: the sigma step of the finite difference ``d x / d sigma``.
        sqrt: space the square roots of the sigmas evenly (PAIR's option).
        batch_size: images per forward pass; memory does not grow with ``steps``.
    """
    if not (max_sigma > 0 and steps >= 1 and grad_step > 0 and math.isfinite(max_sigma)):
        raise ValueError(f"blur IG needs max_sigma > 0, steps >= 1, grad_step > 0; got {max_sigma}, {steps}, "
                         f"{grad_step}")
    sigmas = blur_sigmas(max_sigma, steps, sqrt)
    sig = jnp.asarray(sigmas[:-1], images.dtype)
    diffs = jnp.asarray(np.diff(sigmas), images.dtype)
    bound = max_sigma + grad_step
    b = images.shape[0]

    def chunk(idx):
        def point(i):
            s = jnp.take(sig, i, mode="clip")
            x = gaussian_blur(images, s, bound)
            dx = (gaussian_blur(images, s + grad_step, bound) - x) / grad_step
            return x, dx * jnp.take(diffs, i, mode="clip")

        x, dx = jax.vmap(point)(idx)  # (k, B, H, W, 3) each
        grads = saliency(model, variables, x.reshape(-1, *images.shape[1:]), tile_target(target, len(idx), b))
        return dx * grads.reshape(x.shape)

    return -chunked_sum(chunk, steps, per_pass(batch_size, b), images.shape, images.dtype)
