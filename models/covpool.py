"""Global covariance pooling: a trainable head that pools a feature map into its channel covariance.

Seed 000 names it as the replacement for global average pooling: where average pooling keeps each channel's
mean, covariance pooling keeps how channels vary together over the positions, a second-order statistic.
iSQRT-COV (Li et al., CVPR 2018) normalizes the covariance by its matrix square root, computed by coupled
Newton-Schulz iterations (matrix products only, so it runs fast on accelerators and differentiates through
plain autodiff), after dividing by the trace and before multiplying back by its square root.

* :func:`covariance`: (B, H, W, C) -> (B, C, C), over the H x W positions (``jaxviz.style.gram`` pools
  with it too);
* :func:`sqrtm`: the Newton-Schulz square root of a batch of symmetric positive semi-definite matrices;
* :func:`upper_triangle`: (B, C, C) -> (B, C (C + 1) / 2), the distinct entries;
* :class:`CovariancePool`: 1x1 convolution to ``dim`` channels, BatchNorm, ReLU, covariance, square root,
  upper triangle: what :class:`~jaxviz.models.digits_cnn.DigitsCNN` uses with ``pool="cov"``.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

__all__ = ["covariance", "sqrtm", "upper_triangle", "CovariancePool"]


def covariance(x: jax.Array) -> jax.Array:
    """The channel covariance of each feature map over its positions: (B, H, W, C) -> (B, C, C) (biased)."""
    b, h, w, c = x.shape
    flat = x.reshape(b, h * w, c)
    centred = flat - jnp.mean(flat, axis=1, keepdims=True)
    return jnp.einsum("bnc,bnd->bcd", centred, centred, precision=jax.lax.Precision.HIGHEST) / (h * w)


def sqrtm(sigma: jax.Array, iterations: int = 5, eps: float = 1e-8) -> jax.Array:
    """Approximate square roots of symmetric PSD matrices (..., C, C) by coupled Newton-Schulz iterations.

    ``sigma`` is divided by its trace first (the iteration converges when the spectrum lies in (0, 1]) and the
    result multiplied by the trace's square root (iSQRT-COV's pre- and post-compensation). Five iterations are
    iSQRT-COV's default: an approximation whose error shrinks with each one, not an exact root.
    """
    c = sigma.shape[-1]
    eye = jnp.eye(c, dtype=sigma.dtype)
    trace = jnp.trace(sigma, axis1=-2, axis2=-1)[..., None, None] + eps
    y, z = sigma / trace, jnp.broadcast_to(eye, sigma.shape)
    for _ in range(iterations):
        t = 0.5 * (3.0 * eye - z @ y)
        y, z = y @ t, t @ z
    return y * jnp.sqrt(trace)


def upper_triangle(m: jax.Array) -> jax.Array:
    """(B, C, C) -> (B, C (C + 1) / 2): the entries on and above the diagonal, row by row."""
    rows, cols = jnp.triu_indices(m.shape[-1])
    return m[..., rows, cols]


class CovariancePool(nn.Module):
    """Reduce to ``dim`` channels (1x1 convolution, BatchNorm, ReLU), then the covariance, its Newton-Schulz
    square root (``iterations``; 0 keeps the plain covariance) and its upper triangle: (B, dim (dim + 1) / 2)."""

    dim: int = 16
    iterations: int = 5

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = nn.Conv(self.dim, (1, 1), use_bias=False, name="reduce")(x)
        x = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.9, name="bn")(x))
        sigma = covariance(x)
        if self.iterations:
            sigma = sqrtm(sigma, self.iterations)
        return upper_triangle(sigma)
