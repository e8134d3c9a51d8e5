"""Maximally activating patches: for one channel, the data-set crops that excite it most.

For every image, the channel's strongest position in the layer's map is found
(one jitted, batched pass), among the positions whose receptive field lies
inside the image (a field hanging over the border would be half grey padding);
the top images' positions are mapped back to the input through the layer's
receptive field (:func:`jaxviz.models.receptive_field`: size, stride and offset,
measured on the network) and cropped. A patch that nearly repeats one already
chosen (overlapping crops of one photo) is skipped, so ``k`` patches show ``k``
different things.

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
def _strongest(variables, images, channel, allowed, *, model, layer):
    _, acts = model.apply(variables, images, capture=(layer,))
    a = jnp.take(acts[layer], channel, axis=-1)  # (B, h, w)
    a = jnp.where(allowed, a, -jnp.inf)
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


def _inside(field, map_h: int, map_w: int, h: int, w: int) -> np.ndarray:
    """(map_h, map_w) bool: positions whose receptive field lies within an h x w image."""
    top = field.offset + np.arange(map_h) * field.stride
    left = field.offset + np.arange(map_w) * field.stride
    return ((top >= 0) & (top + field.size <= h))[:, None] & ((left >= 0) & (left + field.size <= w))[None, :]


def _similar(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two patches' pixels (1: the same picture up to brightness and contrast)."""
    a, b = a.ravel() - a.mean(), b.ravel() - b.mean()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


def _source_box(origin, top: int, left: int, size: int, side: int) -> tuple[float, float, float]:
    """A patch's (top, left, side) in its crop's source picture: ``origin`` is the crop's row of
    :func:`jaxviz.io.image.sample_crop_boxes`, the crop ``side`` px; the patch clipped to the crop."""
    _, o_top, o_left, o_side, mirrored = (int(v) for v in origin)
    t0, l0 = max(top, 0), max(left, 0)
    t1, l1 = min(top + size, side), min(left + size, side)
    if mirrored:
        l0, l1 = side - l1, side - l0
    scale = o_side / side
    return o_top + t0 * scale, o_left + l0 * scale, max(t1 - t0, l1 - l0) * scale


def _shared(a, b) -> float:
    """The share of the smaller of two square (top, left, side) boxes that the other covers."""
    h = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    w = min(a[1] + a[2], b[1] + b[2]) - max(a[1], b[1])
    return max(h, 0.0) * max(w, 0.0) / max(min(a[2], b[2]) ** 2, 1e-12)


def top_patches(model, variables, images, layer: str, channel: int, k: int = 9, batch_size: int = 64,
                field=None, inside: bool = True, distinct: float | None = 0.8, origins=None,
                overlap: float = 0.5) -> Patches:
    """Up to ``k`` crops of ``images`` (N, H, W, 3) that excite ``channel`` at ``layer`` most, one per image.

    Args:
        k: how many patches (fewer when fewer images have a distinct one).
        batch_size: images per forward pass.
        field: the layer's receptive field (default: measured, :func:`jaxviz.models.receptive_field`).
        inside: only positions whose receptive field lies inside the image (no grey padding); where no
            position's does (a field larger than the image), every position counts.
        distinct: skip a patch whose pixels correlate above this with a patch already chosen (the same region
            in two overlapping crops); None keeps every image's.
        origins: where each image was cut from, (N, 5) rows of :func:`jaxviz.io.image.sample_crop_boxes`
            (picture, top, left, side, mirrored): a patch is then also skipped when its region of the picture
            and a chosen patch's share more than ``overlap`` of the smaller one, which catches the same spot
            seen at another zoom or mirrored, where pixels no longer correlate.

    Returns:
        :class:`Patches`, strongest first; each patch the receptive field around its image's strongest position.
    """
    from jaxviz.models import check_names, receptive_field

    check_names(layer, model.layers)
    images = np.asarray(images, np.float32)
    n, size = len(images), images.shape[1]
    if not 1 <= k <= n:
        raise ValueError(f"k must be in [1, {n}], got {k}")
    if distinct is not None and not -1 <= distinct <= 1:
        raise ValueError(f"distinct must be a correlation in [-1, 1] or None, got {distinct}")
    if origins is not None:
        origins = np.asarray(origins)
        if origins.shape != (n, 5):
            raise ValueError(f"origins must be (N, 5) = ({n}, 5) rows of image.sample_crop_boxes, got "
                             f"{origins.shape}")
    if not 0 < overlap <= 1:
        raise ValueError(f"overlap must be in (0, 1], got {overlap}")
    field = field or receptive_field(model, layer, size)
    shape = jax.eval_shape(lambda x: model.apply(variables, x, capture=(layer,))[1][layer], images[:1]).shape
    allowed = _inside(field, shape[1], shape[2], *images.shape[1:3]) if inside else np.ones(shape[1:3], bool)
    if not allowed.any():
        allowed = np.ones(shape[1:3], bool)
    values, ys, xs = [], [], []
    for s in range(0, n, batch_size):
        v, y, x = _strongest(variables, jnp.asarray(images[s:s + batch_size]), channel, jnp.asarray(allowed),
                             model=model, layer=layer)
        values.append(np.asarray(v))
        ys.append(np.asarray(y))
        xs.append(np.asarray(x))
    values, ys, xs = np.concatenate(values), np.concatenate(ys), np.concatenate(xs)
    chosen, crops, boxes = [], [], []
    for i in np.argsort(-values, kind="stable"):
        top, left = field.offset + ys[i] * field.stride, field.offset + xs[i] * field.stride
        patch = crop(images[i], top, left, field.size)
        if distinct is not None and any(_similar(patch, c) > distinct for c in crops):
            continue
        if origins is not None:
            box = _source_box(origins[i], int(top), int(left), field.size, size)
            if any(origins[j][0] == origins[i][0] and _shared(box, b) > overlap
                   for j, b in zip(chosen, boxes, strict=True)):
                continue
            boxes.append(box)
        chosen.append(i)
        crops.append(patch)
        if len(chosen) == k:
            break
    best = np.asarray(chosen)
    return Patches(np.stack(crops), best, ys[best], xs[best], values[best], field)
