"""Gradient-free CAMs: channel weights from perturbed forward passes (Score-CAM, Ablation-CAM).

Both read a spatial layer's activation ``A`` (B, h, w, C) and weight its channels by what happens to the target's
score when the network sees one channel at a time, as pytorch-grad-cam defines them:

============  =============================================================================================
Score-CAM     channel ``c``'s activation, upsampled to the image (bilinear, corners aligned: PyTorch's
              ``UpsamplingBilinear2d``) and min-max scaled to [0, 1], masks the image; the weights are the
              softmax over channels of the masked images' scores
Ablation-CAM  channel ``c`` set to zero; the weight is the relative drop ``(s - s_c) / s`` of the score
============  =============================================================================================

The map is ``relu(sum_c w_c A_c)`` (or, with ``eigen_smooth``, the first principal component of ``w A``),
upsampled as every CAM here is (:func:`jaxviz.attribution.cam.resize`) and not min-max normalized. Each method
runs one forward pass per channel and image, ``batch_size`` images per pass in a ``lax.map``, so memory does not
grow with the number of channels (pytorch-grad-cam loops in Python, 16 or 32 images per pass).

Where the definitions part: pytorch-grad-cam's ablation layer writes ``min(A) - 1e7`` instead of 0 when the
layer's minimum is not 0 (a linear bottleneck's output), and compounds it across the batch it ablates; jaxviz
always zeroes the channel (the paper's ablation). On post-ReLU layers (ResNet's stages, Lite0's ``conv_head``) the
two agree.

References:
    Wang et al., "Score-CAM: Score-Weighted Visual Explanations for Convolutional Neural Networks", CVPR-W 2020.
    Desai and Ramaswamy, "Ablation-CAM: Visual Explanations for Deep Convolutional Network via Gradient-free
    Localization", WACV 2020.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from jaxviz.attribution.cam import check_spatial, resize, spatial_layer
from jaxviz.attribution.cam_family import principal_projection
from jaxviz.core.batching import map_chunks, per_pass, tile_target
from jaxviz.core.objectives import Target, score, score_and_acts

__all__ = ["score_cam", "ablation_cam", "resize_aligned"]


def _aligned_weights(size: int, source: int, dtype) -> jax.Array:
    """(size, source) bilinear interpolation matrix with the corner samples aligned."""
    pos = jnp.arange(size, dtype=dtype) * ((source - 1) / max(size - 1, 1))
    low = jnp.clip(jnp.floor(pos).astype(jnp.int32), 0, source - 1)
    frac = pos - low
    high = jnp.minimum(low + 1, source - 1)
    return (jax.nn.one_hot(low, source, dtype=dtype) * (1 - frac)[:, None]
            + jax.nn.one_hot(high, source, dtype=dtype) * frac[:, None])


def resize_aligned(x: jax.Array, height: int, width: int) -> jax.Array:
    """(B, h, w, C) -> (B, height, width, C), bilinear with the corner pixels aligned (``align_corners=True``)."""
    rows = _aligned_weights(height, x.shape[1], x.dtype)
    cols = _aligned_weights(width, x.shape[2], x.dtype)
    return jnp.einsum("Hh,bhwc,Ww->bHWc", rows, x, cols, precision=jax.lax.Precision.HIGHEST)


def _channel_scores(count: int, batch: int, batch_size: int | None,
                    scores_of: Callable[[jax.Array], jax.Array]) -> jax.Array:
    """(B, C): ``scores_of`` a (k,) vector of channels -> (k, B), ``batch_size`` images per forward pass."""
    return map_chunks(scores_of, count, per_pass(batch_size, batch)).T


def _finish(weights: jax.Array, acts: jax.Array, images: jax.Array, eigen_smooth: bool, upsample: bool):
    weighted = weights[:, None, None, :] * acts
    maps = jax.nn.relu(principal_projection(weighted) if eigen_smooth else jnp.sum(weighted, axis=-1))
    return resize(maps, images.shape[1], images.shape[2]) if upsample else maps


def _layer_acts(model, variables, images, target, layer, what):
    s, acts = score_and_acts(model, variables, images, target, capture=(layer,))
    check_spatial(acts[layer].shape, layer, what)
    return s, acts[layer]


def score_cam(model, variables, images: jax.Array, target: Target, *, layer: str | None = None,
              eigen_smooth: bool = False, upsample: bool = True, batch_size: int | None = None) -> jax.Array:
    """Score-CAM (see the module's table): (B, H, W) maps >= 0, not normalized.

    Args:
        layer: any named spatial layer (default ``model.cam_layer``).
        eigen_smooth: the first principal component of the weighted activations instead of their sum.
        upsample: resize to the images' resolution (else the layer's).
        batch_size: images per forward pass (one per channel and image in all).
    """
    layer = spatial_layer(model, layer)
    _, acts = _layer_acts(model, variables, images, target, layer, "score_cam")
    b, height, width = images.shape[:3]

    def scores_of(channels):
        up = resize_aligned(jnp.take(acts, channels, axis=-1), height, width)  # (B, H, W, k)
        low = jnp.min(up, axis=(1, 2), keepdims=True)
        high = jnp.max(up, axis=(1, 2), keepdims=True)
        masks = jnp.moveaxis((up - low) / (high - low + 1e-8), -1, 0)[..., None]  # (k, B, H, W, 1)
        masked = (images[None] * masks).reshape(-1, *images.shape[1:])
        return score(model, variables, masked, tile_target(target, len(channels), b)).reshape(len(channels), b)

    weights = jax.nn.softmax(_channel_scores(acts.shape[-1], b, batch_size, scores_of), axis=-1)
    return _finish(weights, acts, images, eigen_smooth, upsample)


def ablation_cam(model, variables, images: jax.Array, target: Target, *, layer: str | None = None,
                 eigen_smooth: bool = False, upsample: bool = True, batch_size: int | None = None) -> jax.Array:
    """Ablation-CAM (see the module's table; a channel is ablated to 0): (B, H, W) maps >= 0, not normalized.

    Args: as :func:`score_cam`.
    """
    layer = spatial_layer(model, layer)
    original, acts = _layer_acts(model, variables, images, target, layer, "ablation_cam")
    b, c = images.shape[0], acts.shape[-1]

    def scores_of(channels):
        k = len(channels)
        onehot = jax.nn.one_hot(channels, c, dtype=acts.dtype)[:, None, None, None, :]  # (k, 1, 1, 1, C)
        delta = (-acts[None] * onehot).reshape(k * b, *acts.shape[1:])
        copies = jnp.broadcast_to(images[None], (k, *images.shape)).reshape(k * b, *images.shape[1:])
        s, _ = score_and_acts(model, variables, copies, tile_target(target, k, b), perturb={layer: delta})
        return s.reshape(k, b)

    ablated = _channel_scores(c, b, batch_size, scores_of)
    weights = (original[:, None] - ablated) / original[:, None]
    return _finish(weights, acts, images, eigen_smooth, upsample)
