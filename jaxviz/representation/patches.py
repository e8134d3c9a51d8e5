"""Maximally activating patches: for one channel, the data-set crops that excite it most.

For every image, the channel's strongest position in the layer's map is found
(one jitted, batched pass); the top ``k`` images' positions are mapped back to
the input through the layer's receptive field (:func:`jaxviz.models.receptive_field`:
size, stride and offset, measured on the network) and cropped, padded with grey
where the field hangs over the border.

Example:
    >>> p = top_patches(model, variables, photos, "blocks.4", channel=7, k=8)  # doctest: +SKIP
    >>> p.patches.shape                                                        # doctest: +SKIP
    (8, 51, 51, 3)
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["Patches", "top_patches", "crop"]


class Patches(NamedTuple):
    """``patches`` (k, S, S, 3); ``index``, ``y``, ``x``: image and map position of each; ``value``: the
    activation there; ``field``: the receptive field used."""

    patches: np.ndarray
    index: np.ndarray
    y: np.ndarray
    x: np.ndarray
    value: np.ndarray
    field: object


@functools.partial(jax.jit, static_argnames=("model", "layer"))
def _strongest(variables, images, channel, *, model, layer):
    _, acts = model.apply(variables, images, capture=(layer,))
    a = jnp.take(acts[layer], channel, axis=-1)  # (B, h, w)
    flat = a.reshape(a.shape[0], -1)
    pos = jnp.argmax(flat, axis=1)
    return jnp.max(flat, axis=1), pos // a.shape[2], pos % a.shape[2]


def crop(img: np.ndarray, top: int, left: int, size: int, fill: float = 0.5) -> np.ndarray:
    """A (size, size, 3) crop at (top, left), ``fill`` where it leaves the image."""
    h, w = img.shape[:2]
    out = np.full((size, size, 3), fill, np.float32)
    y0, x0, y1, x1 = max(top, 0), max(left, 0), min(top + size, h), min(left + size, w)
    if y1 > y0 and x1 > x0:
        out[y0 - top:y1 - top, x0 - left:x1 - left] = img[y0:y1, x0:x1]
    return out


def top_patches(model, variables, images, layer: str, channel: int, k: int = 9, batch_size: int = 64,
                field=None) -> Patches:
    """The ``k`` images of ``images`` (N, H, W, 3) whose strongest ``channel`` response at ``layer`` is
    highest, each cropped to the receptive field around that position (``batch_size`` images per forward pass)."""
    from jaxviz.models import check_names, receptive_field

    check_names(layer, model.layers)
    images = np.asarray(images, np.float32)
    n, size = len(images), images.shape[1]
    if not 1 <= k <= n:
        raise ValueError(f"k must be in [1, {n}], got {k}")
    field = field or receptive_field(model, layer, size)
    values, ys, xs = [], [], []
    for s in range(0, n, batch_size):
        v, y, x = _strongest(variables, jnp.asarray(images[s:s + batch_size]), channel, model=model, layer=layer)
        values.append(np.asarray(v))
        ys.append(np.asarray(y))
        xs.append(np.asarray(x))
    values, ys, xs = np.concatenate(values), np.concatenate(ys), np.concatenate(xs)
    best = np.argsort(-values, kind="stable")[:k]
    crops = [crop(images[i], field.offset + ys[i] * field.stride, field.offset + xs[i] * field.stride, field.size)
             for i in best]
    return Patches(np.stack(crops), best, ys[best], xs[best], values[best], field)
