"""Feature inversion: which images does a layer consider the same as this one?

Mahendran & Vedaldi ("Understanding Deep Image Representations by Inverting
Them", CVPR 2015) start from noise and minimize the normalized distance
``||phi(x) - phi(x0)||^2 / ||phi(x0)||^2`` at a layer, plus a total-variation
prior. Shallow layers give the photo back; deeper layers keep what the object
is and lose where exactly its pixels were.

Several layers invert in one vmapped render loop: instance ``i`` weights the
feature loss of layer ``i`` by one and the others by zero, so every layer shares
one compiled program.

Example:
    >>> out = invert(jax.random.key(0), model, variables, photo[None], ["blocks.2", "blocks.10"])  # doctest: +SKIP
    >>> out.images.shape  # doctest: +SKIP
    (2, 1, 224, 224, 3)
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import optax

from jaxviz.core import forward
from jaxviz.core import objectives as objs
from jaxviz.synthesis import render
from jaxviz.synthesis import transforms as tfm
from jaxviz.synthesis.param import Fourier

__all__ = ["invert", "DEFAULT_STEPS", "DEFAULT_TV_WEIGHT"]

DEFAULT_STEPS = 200
DEFAULT_TV_WEIGHT = 0.02
_OPTIMIZER = optax.adam(0.05)


def invert(key: jax.Array, model, variables, images: jax.Array, layers: str | Sequence[str], *,
           steps: int = DEFAULT_STEPS, tv_weight: float = DEFAULT_TV_WEIGHT, jitter: int = 0,
           optimizer: optax.GradientTransformation | None = None, thresholds: Sequence[int] = (),
           progress: bool | None = None) -> render.RenderResult:
    """Reconstructs ``images`` from their activations at each of ``layers``.

    Args:
        key: PRNG key (the noise start and the jitter).
        model, variables: a jaxviz model and its weights.
        images: (B, H, W, 3) or (H, W, 3) in [0, 1], the images to invert.
        layers: one layer name or several (each inverted separately, vmapped).
        steps: Adam steps.
        tv_weight: weight of the total-variation prior.
        jitter: random roll in pixels per step (0: none).
        optimizer: default Adam (0.05) on the Fourier parameterization.

    Returns:
        A :class:`~jaxviz.synthesis.render.RenderResult`; images are (L, B, H, W, 3).
    """
    from jaxviz.models import check_names

    names = check_names(layers, model.layers)
    images = jnp.asarray(images, jnp.float32)
    if images.ndim == 3:
        images = images[None]
    b, h, w, _ = images.shape
    if h != w:
        raise ValueError(f"feature inversion renders square images; got {h}x{w}")
    targets = forward.capture(model, variables, images, names)
    eye = jnp.eye(len(names), dtype=jnp.float32)
    objectives = []
    for i in range(len(names)):
        terms = [objs.match_features(n, targets[n]) * eye[i, j] for j, n in enumerate(names)]
        objectives.append(sum(terms[1:], start=terms[0]) - tv_weight * objs.total_variation())
    return render.render_many(key, model, variables, objectives, size=h, num_images=b, param=Fourier(),
                              transform=tfm.Roll(jitter) if jitter else tfm.identity(),
                              optimizer=optimizer or _OPTIMIZER, steps=steps, thresholds=thresholds,
                              progress=progress, desc="invert")
