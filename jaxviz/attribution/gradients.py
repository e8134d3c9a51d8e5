"""Gradient attributions: saliency, Gradient x Input, SmoothGrad (and its square and variance forms), integrated
gradients.

Every method is ``f(model, variables, images, target, **options)`` with images
(B, H, W, 3) in [0, 1] (a random one takes ``key`` first: ``smoothgrad(key, model, ...)``), and returns
(B, H, W, 3) maps with respect to those images (see :mod:`jaxviz.core.objectives` for ``target``). They are pure and
batch-first; none jits behind your back, so wrap them in ``jax.jit`` with the
model static (a :class:`~jaxviz.models.Model` is hashable):

    >>> sal = jax.jit(saliency, static_argnums=0)(model, variables, x, 285)  # doctest: +SKIP

Sampled methods (SmoothGrad, IG) evaluate at most ``batch_size`` images per
forward pass inside a ``lax.scan``, so memory does not grow with the number of
samples or steps.

References:
    Simonyan et al., "Deep Inside Convolutional Networks", ICLR 2014 workshop.
    Shrikumar et al., "Not Just a Black Box: Learning Important Features Through Propagating Activation
    Differences", 2016 (Gradient x Input).
    Smilkov et al., "SmoothGrad: removing noise by adding noise", 2017.
    Adebayo et al., "Local Explanation Methods for Deep Neural Networks Lack Sensitivity to Parameter Values",
    2018 (VarGrad); Hooker et al., "A Benchmark for Interpretability Methods in Deep Neural Networks", 2019
    (SmoothGrad-Squared).
    Sundararajan et al., "Axiomatic Attribution for Deep Networks", ICML 2017.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxviz.core.batching import DEFAULT_BATCH_SIZE, chunked_sum, per_pass, tile_target
from jaxviz.core.objectives import Target, score_fn

__all__ = [
    "saliency", "gradient_x_input", "smoothgrad", "vargrad", "squaregrad", "smoothgrad_noise", "integrated_gradients",
    "ig_quadrature", "reduce_channels", "DEFAULT_BATCH_SIZE", "STATISTICS",
]

#: what :func:`smoothgrad` reports over its noisy samples: their mean (SmoothGrad), the mean of their squares
#: (SmoothGrad-Squared) or their variance (VarGrad), as Captum's ``NoiseTunnel`` ``nt_type`` does.
STATISTICS = ("mean", "square", "variance")

def saliency(model, variables, images: jax.Array, target: Target) -> jax.Array:
    """The gradient of the target score with respect to the images (Simonyan et al.)."""
    return jax.grad(score_fn(model, variables, target))(images)


def gradient_x_input(model, variables, images: jax.Array, target: Target) -> jax.Array:
    """The images times their saliency (Captum's ``InputXGradient``)."""
    return images * saliency(model, variables, images, target)


def _per_image_keys(key: jax.Array) -> bool:
    typed = jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)
    return key.ndim == (1 if typed else 2)


def smoothgrad_noise(key: jax.Array, index, shape, stdev: float) -> jax.Array:
    """The Gaussian noise SmoothGrad adds for sample ``index``: ``stdev * normal(fold_in(key, index))``.

    With one key per image (``jax.random.split(key, B)``), image ``b`` draws from
    its own key, so its noise does not depend on the rest of the batch.
    """
    if _per_image_keys(key):
        return jax.vmap(lambda k: smoothgrad_noise(k, index, shape[1:], stdev))(key)
    return stdev * jax.random.normal(jax.random.fold_in(key, index), shape)


def smoothgrad(key: jax.Array, model, variables, images: jax.Array, target: Target, *,
               method: Callable = saliency, stdev: float = 0.15, samples: int = 25, statistic: str = "mean",
               batch_size: int | None = None, **method_options) -> jax.Array:
    """The mean of ``method`` over noisy copies of the images (Smilkov et al.), or another :data:`STATISTICS`.

    Example:
        >>> sg = smoothgrad(jax.random.key(0), model, variables, x, 285, method=guided_backprop)  # doctest: +SKIP

    Args:
        key: a PRNG key, or one per image for batch-independent noise; sample
            ``i`` uses :func:`smoothgrad_noise` ``(key, i, ...)``.
        method: any attribution with this module's signature (saliency,
            guided_backprop, integrated_gradients, ...).
        stdev: noise standard deviation in image units ([0, 1] pixels); the paper
            suggests 10-20% of the input range.
        samples: number of noisy copies.
        statistic: ``"mean"`` (SmoothGrad), ``"square"`` (the mean of the squared maps, SmoothGrad-Squared) or
            ``"variance"`` (VarGrad: the mean of the squares minus the squared mean).
        batch_size: images per forward pass (default :data:`DEFAULT_BATCH_SIZE`).
    """
    if statistic not in STATISTICS:
        raise ValueError(f"statistic must be one of {', '.join(STATISTICS)}, got {statistic!r}")
    b = images.shape[0]
    chunk_size = per_pass(batch_size, b)
    moments = {"mean": (1,), "square": (2,), "variance": (1, 2)}[statistic]

    def chunk(idx):
        noise = jax.vmap(lambda i: smoothgrad_noise(key, i, images.shape, stdev))(idx)
        noisy = (images[None] + noise).reshape((-1,) + images.shape[1:])
        maps = method(model, variables, noisy, tile_target(target, idx.shape[0], b), **method_options)
        maps = maps.reshape(noise.shape)
        return jnp.stack([maps ** p for p in moments], axis=1)  # (chunk, moments, B, H, W, C)

    sums = chunked_sum(chunk, samples, chunk_size, (len(moments), *images.shape), images.dtype) / samples
    return sums[1] - sums[0] ** 2 if statistic == "variance" else sums[0]


def vargrad(key: jax.Array, model, variables, images: jax.Array, target: Target, **options) -> jax.Array:
    """The variance of ``method`` over noisy copies (VarGrad): :func:`smoothgrad` with ``statistic="variance"``."""
    return smoothgrad(key, model, variables, images, target, statistic="variance", **options)


def squaregrad(key: jax.Array, model, variables, images: jax.Array, target: Target, **options) -> jax.Array:
    """The mean square of ``method`` over noisy copies (SmoothGrad-Squared): ``statistic="square"``."""
    return smoothgrad(key, model, variables, images, target, statistic="square", **options)


def ig_quadrature(steps: int, method: str = "gausslegendre") -> tuple[np.ndarray, np.ndarray]:
    """Points ``alphas`` in [0, 1] and weights for integrating over the IG path.

    ``method`` is ``"gausslegendre"`` (Captum's default) or ``"riemann_left"``,
    ``"riemann_right"``, ``"riemann_middle"``, ``"riemann_trapezoid"``.
    """
    if steps < 2:
        raise ValueError(f"steps must be at least 2, got {steps}")
    if method == "gausslegendre":
        nodes, weights = np.polynomial.legendre.leggauss(steps)
        return 0.5 * (nodes + 1), 0.5 * weights
    weights = np.full(steps, 1.0 / steps)
    if method == "riemann_trapezoid":
        weights[[0, -1]] /= 2
        return np.linspace(0, 1, steps), weights
    offsets = {"riemann_left": 0.0, "riemann_middle": 0.5, "riemann_right": 1.0}
    if method not in offsets:
        raise ValueError(f"unknown quadrature {method!r}; use gausslegendre, {', '.join(offsets)} or riemann_trapezoid")
    return (np.arange(steps) + offsets[method]) / steps, weights


def integrated_gradients(model, variables, images: jax.Array, target: Target, *, baseline=0.0,
                         steps: int = 50, method: str = "gausslegendre", batch_size: int | None = None) -> jax.Array:
    """(x - baseline) times the path integral of gradients (Sundararajan et al.).

    Args:
        baseline: a scalar, an (H, W, 3) image or a (B, H, W, 3) batch (black by default).
        steps: quadrature points along the straight path.
        method: quadrature rule, see :func:`ig_quadrature`.
        batch_size: images per forward pass; memory does not grow with ``steps``.

    Completeness: the attributions sum to score(x) - score(baseline), up to the
    quadrature error.
    """
    alphas, weights = (jnp.asarray(a, images.dtype) for a in ig_quadrature(steps, method))
    baseline = jnp.broadcast_to(jnp.asarray(baseline, images.dtype), images.shape)
    delta = images - baseline
    b = images.shape[0]

    def chunk(idx):
        a = jnp.take(alphas, idx, mode="clip")
        path = baseline[None] + a[:, None, None, None, None] * delta[None]
        flat = path.reshape((-1,) + images.shape[1:])
        grads = saliency(model, variables, flat, tile_target(target, idx.shape[0], b))
        w = jnp.take(weights, idx, mode="clip")
        return w[:, None, None, None, None] * grads.reshape(path.shape)

    return delta * chunked_sum(chunk, steps, per_pass(batch_size, b), images.shape, images.dtype)


def reduce_channels(maps: jax.Array, how: str = "max_abs") -> jax.Array:
    """(B, H, W, 3) -> (B, H, W): ``"max_abs"`` (Simonyan et al.), ``"sum_abs"``, ``"sum"`` or ``"l2"``."""
    ops = {
        "max_abs": lambda m: jnp.max(jnp.abs(m), axis=-1),
        "sum_abs": lambda m: jnp.sum(jnp.abs(m), axis=-1),
        "sum": lambda m: jnp.sum(m, axis=-1),
        "l2": lambda m: jnp.sqrt(jnp.sum(m * m, axis=-1)),
    }
    if how not in ops:
        raise ValueError(f"unknown reduction {how!r}; use one of {', '.join(ops)}")
    return ops[how](maps)
