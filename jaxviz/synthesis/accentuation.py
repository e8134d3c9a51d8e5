"""Visualizations seeded by a natural image: feature accentuation and caricatures.

A feature visualization from noise shows what a unit responds to most, in no image in particular. Two
recipes start from a photo instead, and keep its structure:

* :func:`accentuate` (Hamblin et al., "Feature Accentuation: Revealing 'What' Features Respond to in
  Natural Images", 2024): start from the photo (in the Fourier parameterization) and push a target (a class,
  a channel, any objective) up while a penalty holds an intermediate layer's activations near the photo's.
  The result is the photo with what drives the target made stronger: where the cat's features are, more cat.
* :func:`caricature` (Lucid's recipe): start from noise and maximize the dot product of a layer's
  activations with the photo's; the picture exaggerates whatever that layer sees in the photo.

Both are one :func:`jaxviz.synthesis.render.render` call with a composed objective.

Example:
    >>> out = accentuate(jax.random.key(0), model, variables, photo[None], 285)   # doctest: +SKIP
    >>> out.images.shape                                                         # doctest: +SKIP
    (1, 224, 224, 3)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from jaxviz.core import forward
from jaxviz.core import objectives as objs
from jaxviz.synthesis import render
from jaxviz.synthesis import transforms as tfm
from jaxviz.synthesis.param import Fourier

__all__ = ["accentuate", "caricature", "default_layer", "ALIGNED", "DEFAULT_STEPS", "DEFAULT_WEIGHT"]

DEFAULT_STEPS = 64
#: weight of the penalty on the relative squared distance to the seed's activations
DEFAULT_WEIGHT = 2.0
_OPTIMIZER = optax.adam(0.05)
#: small zooms and rotations about the centre: they keep the image's size and layout, so its activations stay
#: comparable position by position with the seed's (Lucid's pad-and-crop jitter would not)
ALIGNED = tfm.compose(tfm.Scale(0.95, 1.05), tfm.Rotate(5.0))


def default_layer(model) -> str:
    """The regularized (or caricatured) layer: the one 40% of the way through ``model.layers``."""
    return model.layers[max(0, round(0.4 * (len(model.layers) - 1)))]


def _as_objective(target) -> objs.Objective:
    if isinstance(target, objs.Objective):
        return target
    if isinstance(target, int) or (hasattr(target, "ndim") and target.ndim == 0):
        return objs.class_logit(int(target))
    raise TypeError(f"target must be a class index or an objective, got {type(target).__name__}")


def _seeds(images) -> jax.Array:
    x = jnp.asarray(images, jnp.float32)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"images must be (B, H, W, 3) in [0, 1], got shape {x.shape}")
    return x


def accentuate(key: jax.Array, model, variables, images, target, *, layer: str | None = None,
               weight: float = DEFAULT_WEIGHT, steps: int = DEFAULT_STEPS, transform=None,
               optimizer: optax.GradientTransformation = _OPTIMIZER, progress: bool | None = None
               ) -> render.RenderResult:
    """Accentuates ``target`` in each of ``images``, keeping ``layer``'s activations near the image's own.

    Args:
        key: PRNG key (the random transforms).
        model, variables: a jaxviz model and its weights.
        images: (B, H, W, 3) or (H, W, 3) seeds in [0, 1].
        target: a class index or an objective (:mod:`jaxviz.core.objectives`) to increase.
        layer: the regularized layer (default :func:`default_layer`).
        weight: weight of ``-||a(x) - a(seed)||^2 / ||a(seed)||^2`` at ``layer`` against the target's score.
        steps: optimizer steps (Adam 0.05 on the Fourier parameterization by default).
        transform: random transforms per step; they must keep the image's size (default :data:`ALIGNED`).

    Returns:
        A :class:`~jaxviz.synthesis.render.RenderResult`; ``images`` (B, H, W, 3).
    """
    seeds = _seeds(images)
    layer = layer or default_layer(model)
    anchor = forward.capture(model, variables, seeds, (layer,))[layer]
    objective = _as_objective(target) + weight * objs.match_features(layer, anchor)
    return render.render(key, model, variables, objective, image=seeds, param=Fourier(),
                         transform=ALIGNED if transform is None else transform,
                         optimizer=optimizer, steps=steps, progress=progress, desc="accentuate")


def caricature(key: jax.Array, model, variables, images, *, layer: str | None = None, cossim_power: float = 0.0,
               steps: int = 256, size: int | None = None, transform=None,
               optimizer: optax.GradientTransformation | None = None, progress: bool | None = None
               ) -> render.RenderResult:
    """Lucid's caricature: from noise, maximize ``<a(x), a(photo)> * cos^cossim_power`` at ``layer``.

    Args:
        images: (B, H, W, 3) or (H, W, 3) photos in [0, 1]; one caricature each, at ``size`` (default: theirs).
        layer: the compared layer (default :func:`default_layer`).
        cossim_power: 0 exaggerates (a caricature); larger powers reconstruct more faithfully.

    Returns:
        A :class:`~jaxviz.synthesis.render.RenderResult`; ``images`` (B, size, size, 3).
    """
    seeds = _seeds(images)
    layer = layer or default_layer(model)
    size = size or seeds.shape[1]
    if (seeds.shape[1], seeds.shape[2]) != (size, size):
        seeds = jax.image.resize(seeds, (seeds.shape[0], size, size, 3), "bilinear")
    anchor = forward.capture(model, variables, seeds, (layer,))[layer]
    objective = objs.dot_compare(layer, anchor, cossim_power)
    return render.render(key, model, variables, objective, size=size, num_images=seeds.shape[0], param=Fourier(),
                         transform=ALIGNED if transform is None else transform, optimizer=optimizer, steps=steps,
                         progress=progress, desc="caricature")
