"""Compiled forward passes for a driver's own bookkeeping: targets, features and predictions it computes once.

Model applies outside ``jit`` run op by op (and, for captured layers, equation by equation through the model
protocol's interpreter): fine for one call in research code, slow for the setup of a loop that then compiles
anyway. These are the same computations, compiled once per model, layers and shape.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax

__all__ = ["capture", "logits"]


@functools.partial(jax.jit, static_argnames=("model", "layers"))
def _capture(variables, images, *, model, layers):
    return model.apply(variables, images, capture=layers)[1]


def capture(model, variables, images: jax.Array, layers: Sequence[str]) -> dict[str, jax.Array]:
    """``{layer: activation}`` of ``images`` at ``layers`` (compiled)."""
    return _capture(variables, images, model=model, layers=tuple(layers))


@functools.partial(jax.jit, static_argnames="model")
def _logits(variables, images, *, model):
    return model.apply(variables, images)


def logits(model, variables, images: jax.Array) -> jax.Array:
    """The logits of ``images`` (compiled)."""
    return _logits(variables, images, model=model)
