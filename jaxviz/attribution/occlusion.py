"""Occlusion: how much the target score drops when a patch is covered.

Slides a ``patch`` x ``patch`` square of ``fill`` over the image with
``stride``; each pixel's attribution is the mean score drop over the windows
covering it. Windows start at ``k * stride`` for ``k = 0 .. ceil((H - patch) /
stride)``, the last one cropped at the border, as Captum's ``Occlusion`` places
them. Occluded copies are evaluated ``batch_size`` images at a time in a
``lax.scan``.

Reference: Zeiler & Fergus, "Visualizing and Understanding Convolutional
Networks", ECCV 2014 (the grey square over the Pomeranian's face).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxviz.core.batching import chunked_sum, per_pass, tile_target
from jaxviz.core.objectives import Target, score

__all__ = ["occlusion", "window_starts"]


def window_starts(size: int, patch: int, stride: int) -> np.ndarray:
    """Top (or left) offsets of the occluding windows along one axis."""
    if not 1 <= patch <= size:
        raise ValueError(f"patch must be between 1 and the image side {size}, got {patch}")
    if not 1 <= stride <= patch:
        raise ValueError(f"stride must be between 1 and the patch size {patch}, got {stride}")
    return np.arange(int(np.ceil((size - patch) / stride)) + 1) * stride


def _coverage(size: int, starts: np.ndarray, patch: int) -> np.ndarray:
    """How many windows cover each position along one axis."""
    pos = np.arange(size)[:, None]
    return np.sum((pos >= starts[None]) & (pos < starts[None] + patch), axis=1)


def occlusion(model, variables, images: jax.Array, target: Target, *, patch: int = 16, stride: int = 8,
              fill: float = 0.5, batch_size: int | None = None) -> jax.Array:
    """Occlusion sensitivity maps, (B, H, W, 3) (the three channels are equal).

    Args:
        patch: side of the occluding square, in pixels.
        stride: step between windows (at most ``patch``).
        fill: the occluder's value in [0, 1] (0.5: grey).
        batch_size: images per forward pass.
    """
    b, h, w, _ = images.shape
    tops, lefts = window_starts(h, patch, stride), window_starts(w, patch, stride)
    starts = jnp.asarray(np.stack(np.meshgrid(tops, lefts, indexing="ij"), -1).reshape(-1, 2))
    rows, cols = jnp.arange(h), jnp.arange(w)

    def masks_for(idx):
        top, left = starts[idx, 0], starts[idx, 1]
        in_rows = (rows[None] >= top[:, None]) & (rows[None] < top[:, None] + patch)
        in_cols = (cols[None] >= left[:, None]) & (cols[None] < left[:, None] + patch)
        return in_rows[:, :, None] & in_cols[:, None, :]  # (n, H, W)

    base = score(model, variables, images, target)

    def chunk(idx):
        masks = masks_for(jnp.minimum(idx, starts.shape[0] - 1))
        covered = jnp.where(masks[:, None, :, :, None], jnp.asarray(fill, images.dtype), images[None])
        scores = score(model, variables, covered.reshape((-1, h, w, 3)), tile_target(target, idx.shape[0], b))
        drop = base[None] - scores.reshape(idx.shape[0], b)
        return drop[:, :, None, None] * masks[:, None]

    total = chunked_sum(chunk, starts.shape[0], per_pass(batch_size, b), (b, h, w), images.dtype)
    counts = np.outer(_coverage(h, tops, patch), _coverage(w, lefts, patch))
    return jnp.repeat((total / counts)[..., None], 3, axis=-1)
