"""What an attribution explains: a per-image score of the network's output.

A ``target`` is one of

* an int: the same class logit for every image;
* an int array of shape (B,): one class per image;
* a callable ``fn(logits, acts) -> (B,)`` scores, where ``acts`` holds the
  activations named in ``fn.layers`` (e.g. :class:`Neuron`, one unit of a
  mid-level layer as in Springenberg et al.'s guided backprop figures).

Ints and arrays are dynamic values: changing the class does not recompile.
:class:`Neuron` is a pytree whose layer name is static and whose channel and
position are dynamic.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp

__all__ = ["Neuron", "Channel", "score", "score_and_acts", "class_scores", "score_fn", "Target"]

Target = Any  # int | jax.Array | Callable[[jax.Array, dict], jax.Array]


@flax.struct.dataclass
class Channel:
    """Mean activation of ``channel`` in ``layer`` (a feature map's overall strength)."""

    layer: str = flax.struct.field(pytree_node=False)
    channel: Any = 0

    @property
    def layers(self) -> tuple[str, ...]:
        return (self.layer,)

    def __call__(self, logits, acts):
        a = acts[self.layer]
        a = a.reshape(a.shape[0], -1, a.shape[-1]).mean(axis=1)
        return jnp.take(a, self.channel, axis=-1)


@flax.struct.dataclass
class Neuron:
    """Activation of one unit: ``layer[:, y, x, channel]`` (centre if y/x are None)."""

    layer: str = flax.struct.field(pytree_node=False)
    channel: Any = 0
    y: Any = None
    x: Any = None

    @property
    def layers(self) -> tuple[str, ...]:
        return (self.layer,)

    def __call__(self, logits, acts):
        a = acts[self.layer]
        if a.ndim == 2:
            return jnp.take(a, self.channel, axis=-1)
        y = a.shape[1] // 2 if self.y is None else self.y
        x = a.shape[2] // 2 if self.x is None else self.x
        return a[:, y, x, self.channel]


def score(model, variables, images: jax.Array, target: Target) -> jax.Array:
    """The (B,) scores an attribution differentiates (or occludes).

    Raises:
        ValueError: a callable target names an unknown layer, or an array target
            has the wrong length.
    """
    return score_and_acts(model, variables, images, target)[0]


def score_and_acts(model, variables, images: jax.Array, target: Target, capture: tuple[str, ...] = (),
                   perturb: dict | None = None) -> tuple[jax.Array, dict]:
    """(B,) scores, and the activations in ``capture``, in one forward pass."""
    layers = tuple(dict.fromkeys(tuple(getattr(target, "layers", ())) + tuple(capture)))
    logits, acts = model.apply(variables, images, capture=layers, perturb=perturb)
    if callable(target):
        return _check_scores(target(logits, acts), images.shape[0]), acts
    return class_scores(logits, target), acts


def class_scores(logits: jax.Array, target) -> jax.Array:
    """``logits[b, target[b]]`` for an int or (B,) int target."""
    t = jnp.asarray(target)
    batch = logits.shape[0]
    if t.ndim > 1 or (t.ndim == 1 and t.shape[0] != batch):
        raise ValueError(f"target must be an int or one int per image ({batch}), got shape {t.shape}")
    if not jnp.issubdtype(t.dtype, jnp.integer):
        raise TypeError(f"target must be integer class indices, got dtype {t.dtype}")
    t = jnp.broadcast_to(t, (batch,))
    return jnp.take_along_axis(logits, t[:, None], axis=1)[:, 0]


def _check_scores(s: jax.Array, batch: int) -> jax.Array:
    if s.shape != (batch,):
        raise ValueError(f"a target callable must return one score per image, shape ({batch},); got {s.shape}")
    return s


def score_fn(model, variables, target: Target) -> Callable[[jax.Array], jax.Array]:
    """``images -> sum of scores``: its gradient is every image's own gradient (images are independent)."""
    return lambda images: jnp.sum(score(model, variables, images, target))
