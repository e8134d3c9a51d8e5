"""Localization: does the map put its relevance on the object? Each ``f(maps, masks)`` -> (B,), with ``masks``
(B, H, W) bool ground truth (an object's segmentation, or boxes through :func:`box_masks`). NaN where a mask is
empty. Quantus's definitions:

* :func:`pointing_game` (Zhang et al. 2016): 1 if a pixel of the map's maximum (any of them, if tied) is inside;
* :func:`relevance_mass` (Arras et al. 2022): the fraction of the map's total inside (signed, as Quantus);
* :func:`relevance_rank` (Arras et al.): of the K most relevant pixels, K the mask's size, the fraction inside.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np

from jaxviz.metrics._common import pixel_maps

__all__ = ["pointing_game", "relevance_mass", "relevance_rank", "box_masks"]


def box_masks(shape: tuple[int, int, int], boxes: Sequence[Sequence[tuple[int, int, int, int]]]) -> np.ndarray:
    """(B, H, W) bool masks from ``boxes[b]``: that image's (top, left, bottom, right) boxes, bottom/right
    exclusive."""
    b, h, w = shape
    if len(boxes) != b:
        raise ValueError(f"one list of boxes per image ({b}), got {len(boxes)}")
    masks = np.zeros(shape, bool)
    for i, image_boxes in enumerate(boxes):
        for top, left, bottom, right in image_boxes:
            if not (0 <= top < bottom <= h and 0 <= left < right <= w):
                raise ValueError(f"box {(top, left, bottom, right)} is not inside the {h} x {w} image")
            masks[i, top:bottom, left:right] = True
    return masks


def _inputs(maps, masks):
    masks = jnp.asarray(masks)
    if masks.ndim != 3 or masks.dtype != jnp.bool_:
        raise ValueError(f"masks must be (B, H, W) bool, got shape {masks.shape} and dtype {masks.dtype}")
    maps = pixel_maps(maps, masks.shape)
    b = maps.shape[0]
    flat, inside = maps.reshape(b, -1), masks.reshape(b, -1)
    return flat, inside, jnp.sum(inside, axis=1)


def pointing_game(maps, masks) -> jnp.ndarray:
    """(B,) 1.0 if the map's maximum falls inside the mask, else 0.0."""
    flat, inside, size = _inputs(maps, masks)
    hit = jnp.any(inside & (flat == jnp.max(flat, axis=1, keepdims=True)), axis=1)
    return jnp.where(size > 0, hit.astype(flat.dtype), jnp.nan)


def relevance_mass(maps, masks) -> jnp.ndarray:
    """(B,) ``sum(map inside) / sum(map)``."""
    flat, inside, size = _inputs(maps, masks)
    return jnp.where(size > 0, jnp.sum(flat * inside, axis=1) / jnp.sum(flat, axis=1), jnp.nan)


def relevance_rank(maps, masks) -> jnp.ndarray:
    """(B,) the fraction of the ``K = |mask|`` highest-ranked pixels (ties by raster order) inside the mask."""
    flat, inside, size = _inputs(maps, masks)
    order = jnp.argsort(-flat, axis=1, stable=True)
    position = jnp.argsort(order, axis=1)  # each pixel's rank
    top = position < size[:, None]
    return jnp.where(size > 0, jnp.sum(top & inside, axis=1) / jnp.maximum(size, 1), jnp.nan)
