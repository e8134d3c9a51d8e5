"""What every metric shares: checked inputs, pixel ranks, baselines, and scoring many perturbed copies.

A metric's perturbations are ``count`` variants of the batch (``variant(k)`` builds the k-th, (B, H, W, 3)). They
are scored :func:`jaxviz.core.batching.per_pass` variants per forward pass, in a ``lax.map``, so memory depends
on ``batch_size``, not on ``count``; the whole metric is one ``jit``.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxviz.core.batching import map_chunks, per_pass

__all__ = ["check_inputs", "check_finite", "pixel_maps", "ranks", "baseline", "BASELINES", "class_indices",
           "target_scores", "variant_scores", "trapezoid"]

#: what replaces removed pixels: a number, or one of these names.
BASELINES = ("black", "zeros", "mean", "blur", "uniform")


def check_inputs(images, maps=None) -> tuple[jax.Array, jax.Array | None]:
    """``images`` as (B, H, W, 3) floats and ``maps`` as (B, H, W), or a ValueError that says what is wrong.

    Maps may be (B, H, W), (B, H, W, 1) or (B, H, W, C) like the attribution functions return them; a channel axis
    is averaged (equal channels, as occlusion and the CAMs give, are kept as they are; reduce a gradient's
    channels yourself with :func:`jaxviz.reduce_channels` if you want another rule). NaN or infinite maps are
    refused, since every metric would silently turn them into a rank or a sum.
    """
    images = jnp.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be (B, H, W, 3), got shape {images.shape}")
    if not jnp.issubdtype(images.dtype, jnp.floating):
        raise TypeError(f"images must be floats in [0, 1], got dtype {images.dtype}")
    if maps is None:
        return images, None
    return images, pixel_maps(maps, images.shape[:3])


def pixel_maps(maps, shape: tuple[int, int, int]) -> jax.Array:
    """(B, H, W) maps from (B, H, W) or (B, H, W, C) ones; checked against ``shape`` and for NaN."""
    maps = jnp.asarray(maps)
    if maps.ndim == 4:
        maps = jnp.mean(maps, axis=-1)
    if maps.shape != tuple(shape):
        raise ValueError(f"maps must be (B, H, W) = {tuple(shape)} (or with a channel axis), got {maps.shape}")
    check_finite(maps, "maps")
    return maps.astype(jnp.result_type(maps.dtype, jnp.float32))


def check_finite(x: jax.Array, what: str) -> None:
    """A ValueError if ``x`` holds NaN or infinities (checked on concrete arrays; inside ``jit`` it cannot be)."""
    if not isinstance(x, jax.core.Tracer) and not bool(jnp.all(jnp.isfinite(x))):
        raise ValueError(f"{what} contain NaN or infinite values")


def ranks(maps: jax.Array, descending: bool = True) -> jax.Array:
    """(B, H, W) int ranks: 0 for the most relevant pixel (``descending``), ties by raster order."""
    b = maps.shape[0]
    flat = maps.reshape(b, -1)
    order = jnp.argsort(-flat if descending else flat, axis=1, stable=True)
    rank = jnp.zeros_like(order).at[jnp.arange(b)[:, None], order].set(jnp.arange(flat.shape[1])[None])
    return rank.reshape(maps.shape)


def baseline(images: jax.Array, how, key: jax.Array | None = None, blur_sigma: float = 10.0) -> jax.Array:
    """What a removed pixel becomes, broadcastable to ``images``.

    ``"black"``: each image's minimum (Quantus's ``"black"``); ``"zeros"``: 0; ``"mean"``: each image's mean
    colour; ``"blur"``: a Gaussian blur of the image (RISE's insertion canvas, ``blur_sigma`` pixels);
    ``"uniform"``: uniform noise in [0, 1] (needs ``key``); a number: that value.
    """
    if isinstance(how, int | float) and not isinstance(how, bool):
        return jnp.full((1, 1, 1, 1), how, images.dtype)
    if how == "black":
        return jnp.min(images, axis=(1, 2, 3), keepdims=True)
    if how == "zeros":
        return jnp.zeros((1, 1, 1, 1), images.dtype)
    if how == "mean":
        return jnp.mean(images, axis=(1, 2), keepdims=True)
    if how == "blur":
        return _gaussian_blur(images, blur_sigma)
    if how == "uniform":
        if key is None:
            raise ValueError('baseline="uniform" needs a key')
        return jax.random.uniform(key, images.shape, images.dtype)
    raise ValueError(f"unknown baseline {how!r}; use a number or one of {', '.join(BASELINES)}")


def _gaussian_blur(images: jax.Array, sigma: float) -> jax.Array:
    radius = max(1, int(3 * sigma))
    t = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (t / sigma) ** 2)
    kernel = jnp.asarray(kernel / kernel.sum(), images.dtype)
    padded = jnp.pad(images, ((0, 0), (radius, radius), (radius, radius), (0, 0)), mode="edge")
    # separable: a vertical, then a horizontal depthwise convolution
    c = images.shape[-1]
    k_h = jnp.tile(kernel[:, None, None, None], (1, 1, 1, c))
    k_w = jnp.tile(kernel[None, :, None, None], (1, 1, 1, c))
    dims = ("NHWC", "HWIO", "NHWC")
    out = jax.lax.conv_general_dilated(padded, k_h, (1, 1), "VALID", dimension_numbers=dims, feature_group_count=c)
    return jax.lax.conv_general_dilated(out, k_w, (1, 1), "VALID", dimension_numbers=dims, feature_group_count=c)


def class_indices(target, batch: int) -> jax.Array:
    """(B,) int class indices from an int or (B,) ints; metrics score classes, not objectives."""
    t = jnp.asarray(target)
    if not jnp.issubdtype(t.dtype, jnp.integer) or t.ndim > 1 or (t.ndim == 1 and t.shape[0] != batch):
        raise ValueError(f"target must be a class index or one per image ({batch}), got {target!r}")
    return jnp.broadcast_to(t, (batch,))


def target_scores(model, variables, images: jax.Array, target: jax.Array, output: str = "probability") -> jax.Array:
    """(B,) the target class's softmax ``"probability"`` or ``"logit"`` on ``images``, or ``"accuracy"``: 1.0
    where the target is the top class (the first of tied ones, as ``argmax``), else 0.0."""
    logits = model.apply(variables, images)
    if output == "accuracy":
        return (jnp.argmax(logits, axis=-1) == target).astype(jnp.result_type(logits.dtype, jnp.float32))
    if output == "probability":
        logits = jax.nn.softmax(logits, axis=-1)
    elif output != "logit":
        raise ValueError(f'output must be "probability", "logit" or "accuracy", got {output!r}')
    return jnp.take_along_axis(logits, target[:, None], axis=1)[:, 0]


def variant_scores(model, variables, target: jax.Array, variant: Callable[[jax.Array], jax.Array], count: int,
                   batch: int, *, batch_size: int | None = None, output: str = "probability") -> jax.Array:
    """(B, count): the target's score on ``variant(k)`` for ``k < count``, ``per_pass`` variants per forward."""

    def scores(idx):
        x = jax.vmap(variant)(idx)  # (chunk, B, H, W, 3)
        s = target_scores(model, variables, x.reshape(-1, *x.shape[2:]), jnp.tile(target, len(idx)), output)
        return s.reshape(len(idx), batch)

    return map_chunks(scores, count, per_pass(batch_size, batch)).T


def trapezoid(curve: jax.Array, dx: float = 1.0) -> jax.Array:
    """Area under each row of ``curve`` by the trapezoid rule, spacing ``dx``."""
    return dx * (jnp.sum(curve, axis=-1) - 0.5 * (curve[..., 0] + curve[..., -1]))
