"""DeepDream: amplify whatever a layer already sees in an image.

Gradient ascent on the mean squared activation of one or more layers
(Mordvintsev, Olah & Tyka, "Inceptionism", 2015), with the two tricks seed 001
describes:

* octaves: shrink the image ``octaves - 1`` times by ``octave_scale``, dream the
  smallest, then upscale only the dreamed *detail* and add it to the next larger
  original, up to full size;
* jitter: roll the image by a random offset before every step (the gradient
  flows back through the roll, so the step lands unrolled);

and seed 001's fix for "rotten" results: the step is ``step_size`` divided by
the mean absolute gradient (:func:`jaxviz.synthesis.render.scale_by_mean_abs`).

Each octave is one call of the jitted render loop (compiled once per octave
size). ``per_layer=True`` vmaps the loop over one-hot layer weights, so dreams
at several layers for a batch of images share one compiled program.

Example:
    >>> out = dream(jax.random.key(0), model, variables, photo[None], ("blocks.8",))  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import optax

from jaxviz.core import objectives as objs
from jaxviz.synthesis import render
from jaxviz.synthesis import transforms as tfm
from jaxviz.synthesis.param import Pixel

__all__ = ["dream", "default_layer", "DEFAULT_LAYER"]

#: A mid-level layer of EfficientNet-Lite0 whose dreams show textures and object parts.
DEFAULT_LAYER = "blocks.8"

_OPTIMIZER = optax.inject_hyperparams(
    lambda step_size: optax.chain(render.scale_by_mean_abs(), optax.scale(-step_size)))(step_size=0.01)


def default_layer(model) -> str:
    """:data:`DEFAULT_LAYER` where the model has it, else the layer 60% of the way through the network."""
    return DEFAULT_LAYER if DEFAULT_LAYER in model.layers else model.layers[int(0.6 * len(model.layers))]


def _octave_sizes(h: int, w: int, octaves: int, scale: float) -> list[tuple[int, int]]:
    sizes = [(max(8, round(h / scale ** i)), max(8, round(w / scale ** i))) for i in range(octaves)]
    return sizes[::-1]


def dream(key: jax.Array, model, variables, images: jax.Array | None = None,
          layers: str | Sequence[str] = DEFAULT_LAYER, *, per_layer: bool = False, channels=None,
          size: int | None = None, num_images: int = 1, steps: int = 10, step_size: float = 0.01,
          octaves: int = 4, octave_scale: float = 1.4, jitter: int = 16,
          progress: bool | None = None) -> render.RenderResult:
    """DeepDreams ``images`` (or noise) at ``layers``.

    Args:
        key: PRNG key for the jitter (and the noise start).
        model, variables: a jaxviz model and its weights.
        images: (B, H, W, 3) or (H, W, 3) in [0, 1]; None starts from grey
            noise: ``num_images`` images of ``size`` px.
        layers: layer name(s) whose mean squared activation is amplified.
        per_layer: dream each layer separately (vmapped) instead of their sum.
        channels: optional (C,) 0/1 mask: dream only these channels.
        steps: ascent steps per octave.
        step_size: step in units of the mean absolute gradient (pixels in [0, 1]).
        octaves: number of scales; 1 dreams at full size only.
        octave_scale: size ratio between successive octaves.
        jitter: maximum random roll in pixels, per step.

    Returns:
        A :class:`~jaxviz.synthesis.render.RenderResult`: ``images`` (B, H, W, 3) in [0, 1] (with ``per_layer``,
        (L, B, H, W, 3)), ``history`` over all octaves (steps counted across them), ``params`` of the last.
    """
    names = (layers,) if isinstance(layers, str) else tuple(layers)
    from jaxviz.models import check_names

    check_names(names, model.layers)
    k_noise, k_loop = jax.random.split(key)
    if images is None:
        size = size or model.input_size
        images = Pixel(noise=0.1).init(k_noise, (num_images, size, size, 3))
    images = jnp.asarray(images, jnp.float32)
    if images.ndim == 3:
        images = images[None]
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be (B, H, W, 3) or (H, W, 3) RGB, got shape {images.shape}")
    if octaves < 1 or octave_scale <= 1.0:
        raise ValueError(f"need octaves >= 1 and octave_scale > 1, got {octaves} and {octave_scale}")
    b, h, w, _ = images.shape
    n = len(names) if per_layer else None
    if per_layer:  # one-hot weights: instance i dreams layer i
        mask = None if channels is None else jnp.broadcast_to(jnp.asarray(channels, jnp.float32), (n, len(channels)))
        objective = objs.Dream(names, jnp.eye(n, dtype=jnp.float32), mask)
    else:
        objective = objs.dream(names, channels=channels)
    dreamed = prev_base = result = None
    history: list[tuple[int, float]] = []
    for i, (oh, ow) in enumerate(_octave_sizes(h, w, octaves, octave_scale)):
        base = jax.image.resize(images, (b, oh, ow, 3), "bilinear")
        if dreamed is None:
            start = base if n is None else jnp.broadcast_to(base, (n, b, oh, ow, 3))
        else:
            lead = dreamed.shape[:-3]
            detail = dreamed - prev_base
            detail = jax.image.resize(detail, (*lead, oh, ow, 3), "bilinear")
            start = jnp.clip(base + detail, 0.0, 1.0)
        shape = (b, oh, ow, 3)
        opt_state = jax.vmap(_OPTIMIZER.init)(start) if n else _OPTIMIZER.init(start)
        opt_state.hyperparams["step_size"] = jnp.full(opt_state.hyperparams["step_size"].shape, step_size)
        k = jax.random.fold_in(k_loop, i)
        result = render.optimize(jax.random.split(k, n) if n else k, model, variables, objective, start,
                                 shape=shape, param=Pixel(), transform=tfm.Roll(jitter), optimizer=_OPTIMIZER,
                                 steps=steps, progress=progress, desc=f"dream {oh}x{ow}", vmapped=bool(n),
                                 opt_state=opt_state)
        dreamed, prev_base = result.images, base
        history.extend((i * steps + s, v) for s, v in result.history)
    return result._replace(images=dreamed, history=history)
