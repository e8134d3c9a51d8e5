"""First-layer filters: the weights of the first convolution, as little pictures.

The first layer sees RGB directly, so its kernels are images: AlexNet's 64
filters of 11x11x3 are the classic picture (oriented edges, colour blobs). Each
filter is min-max normalized on its own and enlarged with nearest-neighbour
pixels so a 3x3 kernel stays readable.

Example:
    >>> k = first_conv_kernel(model, variables)       # doctest: +SKIP
    >>> k.shape                                       # doctest: +SKIP
    (3, 3, 3, 32)
    >>> image.save_png("filters.png", filter_grid(model, variables))  # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np
from flax import traverse_util

from jaxviz.io import image

__all__ = ["first_conv_kernel", "filter_images", "filter_grid"]


def first_conv_kernel(model, variables) -> np.ndarray:
    """The first layer's (kh, kw, in, out) kernel: the convolution on the RGB input (in = 3), or on a grey
    input (in = 1) for models that average the colours first; earliest in ``model.layers`` when several."""
    flat = traverse_util.flatten_dict(variables["params"])
    order = {name: i for i, name in enumerate(model.layers)}

    def rank(path):
        return min((order[p] for p in path if p in order), default=len(order))

    for channels in (3, 1):
        found = sorted((rank(path), path) for path, value in flat.items()
                       if path[-1] == "kernel" and np.ndim(value) == 4 and np.shape(value)[2] == channels)
        if found:
            return np.asarray(flat[found[0][1]], np.float32)
    raise ValueError(f"model {model.name!r} has no convolution on its RGB (or grey) input")


def filter_images(kernel: np.ndarray, tile: int = 33) -> list[np.ndarray]:
    """Each filter of a (kh, kw, 3 or 1, out) kernel as a (tile, tile, 3) picture, normalized to [0, 1] alone."""
    if kernel.shape[2] == 1:
        kernel = np.repeat(kernel, 3, axis=2)
    kh, kw, _, out = kernel.shape
    zoom = max(1, tile // max(kh, kw))
    pictures = []
    for i in range(out):
        f = kernel[..., i]
        f = (f - f.min()) / max(float(f.max() - f.min()), 1e-12)
        f = np.repeat(np.repeat(f, zoom, axis=0), zoom, axis=1)
        canvas = np.ones((tile, tile, 3), np.float32)
        top, left = (tile - f.shape[0]) // 2, (tile - f.shape[1]) // 2
        canvas[top:top + f.shape[0], left:left + f.shape[1]] = f
        pictures.append(canvas)
    return pictures


def filter_grid(model, variables, max_filters: int = 64, tile: int = 33) -> np.ndarray:
    """The first ``max_filters`` first-layer filters as one (H, W, 3) grid."""
    kernel = first_conv_kernel(model, variables)
    return image.grid(filter_images(kernel[..., :max_filters], tile), cols=8, pad=2)
