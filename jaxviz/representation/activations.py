"""Activation maps: what every channel of a layer does with one image, as a grid.

Each channel's map is min-max normalized on its own (a shared scale hides most
channels), coloured with :func:`jaxviz.io.plot.colorize` and enlarged to ``tile``
pixels. Channels are shown in index order, or ``order="strongest"`` by their
mean activation.

Example:
    >>> grid = activation_grid(model, variables, photo, "blocks.2")  # doctest: +SKIP
    >>> image.save_png("acts.png", grid)                             # doctest: +SKIP
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxviz.io import image, plot

__all__ = ["activation_maps", "activation_grid"]


def activation_maps(model, variables, img, layer: str) -> np.ndarray:
    """(h, w, C) activations of a spatial ``layer`` for one (H, W, 3) image in [0, 1]."""
    from jaxviz.models import check_names

    check_names(layer, model.layers)
    x = jnp.asarray(img, jnp.float32)
    if x.ndim != 3 or x.shape[-1] != 3:
        raise ValueError(f"expected one (H, W, 3) image, got shape {x.shape}")
    _, acts = jax.jit(model.apply, static_argnames="capture")(variables, x[None], capture=(layer,))
    a = np.asarray(acts[layer][0], np.float32)
    if a.ndim != 3:
        raise ValueError(f"{layer!r} is not spatial (shape {a.shape}); pick a convolutional layer")
    return a


def activation_grid(model, variables, img, layer: str, *, max_channels: int = 64, tile: int = 48,
                    order: str = "index", labels: bool = True) -> np.ndarray:
    """Up to ``max_channels`` channel maps of ``layer`` as one (H, W, 3) grid, captioned with channel numbers."""
    a = activation_maps(model, variables, img, layer)
    if order == "strongest":
        channels = np.argsort(-a.mean(axis=(0, 1)))[:max_channels]
    elif order == "index":
        channels = np.arange(min(max_channels, a.shape[-1]))
    else:
        raise ValueError(f"order must be 'index' or 'strongest', got {order!r}")
    tiles = [image.resize(plot.colorize(a[..., c], percentile=100)[..., :3], tile, tile) for c in channels]
    return image.grid(tiles, [str(c) for c in channels] if labels else None, cols=8, pad=2, label_height=11)
