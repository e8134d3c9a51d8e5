"""Gram losses: the statistics that texture synthesis and style transfer match.

Pure functions of NHWC feature maps (what ``model.apply(..., capture=...)``
returns), one value per image:

- :func:`gram`: the channel-by-channel inner products of a layer, divided by
  C*H*W (the normalization of the PyTorch neural-style tutorial), so layers of
  different sizes weigh alike and the value does not depend on the image size;
- :func:`covariance_pool`: the same statistic centred, ``cov = X^T X / N - mu mu^T``
  with N = H*W: global covariance pooling (Li et al., iSQRT-COV), a second-order
  replacement for mean or max pooling; :func:`covariance_features` flattens its
  upper triangle into a feature vector;
- :func:`style_loss`: the weighted sum over layers of the mean squared
  difference of Gram matrices (Gatys et al. 2015/2016);
- :func:`content_loss`: the mean squared difference of one layer's features;
- :func:`total_variation`: the mean squared difference of neighbouring pixels;
- :func:`colour_loss`: the sliced Wasserstein distance between the pixels' colours and the style's
  (Heitz et al., CVPR 2021, on RGB): sorted projections on fixed random directions, matched by quantile, so
  the whole colour distribution is matched and not only its first two moments.

:func:`default_layers` picks the style and content layers of any zoo model:
Gatys' ``relu1_1 ... relu5_1`` and ``relu4_2`` on VGG, a table for the others,
and evenly spaced spatial layers for the rest.

Example:
    >>> _, acts = model.apply(variables, images, capture=layers.style)        # doctest: +SKIP
    >>> targets = {n: gram(a) for n, a in acts.items()}                       # doctest: +SKIP
    >>> style_loss(acts, targets)                                              # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxviz.core import forward
from jaxviz.core.objectives import variation
from jaxviz.models import covpool

__all__ = ["gram", "covariance_pool", "covariance_features", "style_loss", "content_loss", "total_variation",
           "colour_loss", "colour_targets", "Layers", "default_layers", "style_targets"]


def _check_features(features: jax.Array) -> None:
    if features.ndim != 4:
        raise ValueError(f"expected NHWC feature maps (B, H, W, C), got shape {features.shape}")


def gram(features: jax.Array) -> jax.Array:
    """(B, H, W, C) -> (B, C, C): ``F^T F / (C*H*W)`` per image, F the (H*W, C) feature matrix."""
    _check_features(features)
    b, h, w, c = features.shape
    f = features.reshape(b, h * w, c)
    g = jnp.einsum("bnc,bnd->bcd", f, f, precision=jax.lax.Precision.HIGHEST)
    return g / (c * h * w)


def covariance_pool(features: jax.Array) -> jax.Array:
    """(B, H, W, C) -> (B, C, C): the covariance among channels over the H*W positions (divided by N); the
    statistic of the trainable covariance-pooling head, :mod:`jaxviz.models.covpool`."""
    _check_features(features)
    return covpool.covariance(features)


def covariance_features(features: jax.Array) -> jax.Array:
    """(B, H, W, C) -> (B, C*(C+1)/2): the upper triangle of :func:`covariance_pool`, a pooled feature vector."""
    return covpool.upper_triangle(covariance_pool(features))


def style_loss(acts: Mapping[str, jax.Array], targets: Mapping[str, jax.Array],
               weights: Mapping[str, float] | None = None) -> jax.Array:
    """Sum over ``targets``' layers of ``weight * mean((gram(acts[l]) - targets[l])^2)``, per image (B,).

    ``targets`` are Gram matrices, (C, C) (one style for every image) or (B, C, C).
    """
    total = 0.0
    for name, target in targets.items():
        g = gram(acts[name])
        w = 1.0 if weights is None else weights[name]
        total = total + w * jnp.mean(jnp.square(g - target), axis=(1, 2))
    return total


def content_loss(features: jax.Array, target: jax.Array) -> jax.Array:
    """Mean squared difference per image, (B,)."""
    return jnp.mean(jnp.square(features - target), axis=tuple(range(1, features.ndim)))


def total_variation(images: jax.Array) -> jax.Array:
    """Mean squared difference between vertical and horizontal neighbours, per image (B,)."""
    return variation(images, "squared")


#: random RGB directions of :func:`colour_targets` (fixed: a loss is the same function on every call)
COLOUR_DIRECTIONS = 16


def colour_targets(style: jax.Array, directions: int = COLOUR_DIRECTIONS) -> dict[str, jax.Array]:
    """What :func:`colour_loss` compares with: ``style``'s ((H, W, 3) or (1, H, W, 3)) pixels projected on
    ``directions`` fixed unit RGB directions, sorted: ``{"directions": (3, D), "sorted": (H*W, D)}``."""
    d = jax.random.normal(jax.random.key(7), (3, directions))
    d = d / jnp.linalg.norm(d, axis=0, keepdims=True)
    return {"directions": d, "sorted": jnp.sort(jnp.reshape(style, (-1, 3)) @ d, axis=0)}


def colour_loss(images: jax.Array, targets: Mapping[str, jax.Array]) -> jax.Array:
    """Sliced Wasserstein-2 distance (squared) between each image's pixel colours and the style's
    (:func:`colour_targets`), per image (B,); the two pixel counts may differ (the style's sorted
    projections are read at the images' quantiles)."""
    b = images.shape[0]
    ours = jnp.sort(jnp.reshape(images, (b, -1, 3)) @ targets["directions"], axis=1)
    n, m = ours.shape[1], targets["sorted"].shape[0]
    at = jnp.clip(((jnp.arange(n) + 0.5) * (m / n)).astype(jnp.int32), 0, m - 1)
    return jnp.mean(jnp.square(ours - targets["sorted"][at]), axis=(1, 2))


class Layers(NamedTuple):
    """Which layers carry style (Gram matrices), which one carries content, the style weight that balances the
    two on this network (feature scales differ between networks), and what Gatys' transfer optimizes on it
    (``"pixel"`` or ``"fourier"``, :class:`jaxviz.style.transfer.Settings`) with which style weight (None: the
    same ``style_weight``; fast style training and textures always take ``style_weight``)."""

    style: tuple[str, ...]
    content: str
    style_weight: float = 1e6  # the PyTorch neural-style tutorial's, for VGG
    param: str = "pixel"
    transfer_style_weight: float | None = None


_VGG19 = Layers(("features.1", "features.6", "features.11", "features.20", "features.29"), "features.22")
_VGG16 = Layers(("features.1", "features.6", "features.11", "features.18", "features.25"), "features.20")
_TABLE = {
    "vgg19": _VGG19,
    "vgg16": _VGG16,
    "vgg19_keras": Layers(("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1"),
                          "block4_conv2"),
    "vgg16_keras": Layers(("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1"),
                          "block4_conv2"),
    # Linear-bottleneck outputs: Gram entries ~1e5 times VGG's ReLU features'; 10 measured on chelsea. On
    # pixels, Lite0's strided stem turns Gatys' transfer into colour speckle; the Fourier parameterization
    # started from the photo paints strokes, and takes 100 to be stylized visibly (README, "style").
    "efficientnet_lite0": Layers(("stem", "blocks.0", "blocks.2", "blocks.4", "blocks.7"), "blocks.4", 10.0,
                                 "fourier", 100.0),
}


def _spatial_layers(model) -> list[str]:
    """The layers whose activations are feature maps (4-D with a spatial extent), in forward order."""
    size = model.input_size
    variables = jax.eval_shape(lambda: model.init(jax.random.key(0), size))
    x = jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32)
    _, acts = jax.eval_shape(lambda v, x: model.apply(v, x, capture=model.layers), variables, x)
    return [n for n in model.layers if len(acts[n].shape) == 4 and acts[n].shape[1] > 1]


def default_layers(model) -> Layers:
    """Gatys' layers on VGG, a table for known models, else 5 evenly spaced feature maps up to 60% depth
    (content: the fourth of them, as ``relu4_2`` follows ``relu4_1`` on VGG; style weight: the tutorial's)."""
    known = _TABLE.get(model.name)
    if known is None and model.name.startswith("efficientnet_lite"):
        known = _TABLE["efficientnet_lite0"]
    if known is not None and all(n in model.layers for n in (*known.style, known.content)):
        return known
    spatial = _spatial_layers(model)
    if not spatial:
        raise ValueError(f"model {model.name!r} has no spatial feature maps to take Gram matrices of")
    last = max(1, round(0.6 * len(spatial)))
    picks = sorted({round(i * (last - 1) / 4) for i in range(5)})
    return Layers(tuple(spatial[i] for i in picks), spatial[picks[min(3, len(picks) - 1)]])


def style_targets(model, variables, style: jax.Array, layers: Sequence[str]) -> dict[str, jax.Array]:
    """The Gram matrices of ``style`` ((H, W, 3) or (1, H, W, 3) in [0, 1]) at ``layers``, each (C, C)."""
    style = jnp.asarray(style)
    if style.ndim == 3:
        style = style[None]
    acts = forward.capture(model, variables, style, layers)
    return dict(zip(layers, _first_grams(tuple(acts[n] for n in layers)), strict=True))


@jax.jit  # one program for all layers; unjitted, each layer's Gram matrix compiles its own operations
def _first_grams(acts: tuple[jax.Array, ...]) -> tuple[jax.Array, ...]:
    return tuple(gram(a)[0] for a in acts)
