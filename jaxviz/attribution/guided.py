"""Guided backpropagation and deconvnet as ``custom_vjp`` activations.

Both keep the forward pass and change how the gradient crosses each
ReLU-like operation. :meth:`~jaxviz.models.Model.rewrite_relus` puts them in
place of every ``relu``, ``relu6``, ``maximum(x, 0)`` or ``clip(x, 0, c)`` the
traced forward pass contains, on jaxviz's ports and on adapted models alike: no
hooks, the model and its weights untouched, any batch size, and they compose
with ``jit``, ``vmap`` and :func:`~jaxviz.attribution.gradients.smoothgrad`.

For an activation ``act`` with local derivative ``act'(x)`` and incoming
gradient ``g``:

* plain gradient: ``act'(x) * g``
* guided backprop: ``act'(x) * max(g, 0)`` (Springenberg et al.)
* deconvnet: ``max(g, 0)``, ignoring the forward pass (Zeiler & Fergus)

For ReLU these are Captum's GuidedBackprop and Deconvolution; for ReLU6 the same
rules apply with ReLU6's derivative.

References:
    Springenberg et al., "Striving for Simplicity: The All Convolutional Net", ICLR 2015 workshop.
    Zeiler & Fergus, "Visualizing and Understanding Convolutional Networks", ECCV 2014.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp

from jaxviz.attribution.gradients import saliency
from jaxviz.core.objectives import Target

__all__ = ["guided", "deconv", "guided_backprop", "deconvnet"]

Act = Callable[[jax.Array], jax.Array]


def _guided(act: Act) -> Act:

    @jax.custom_vjp
    def f(x):
        return act(x)

    def fwd(x):
        return act(x), x

    def bwd(x, g):
        _, vjp = jax.vjp(act, x)
        return vjp(jnp.maximum(g, 0))

    f.defvjp(fwd, bwd)
    return f


def _deconv(act: Act) -> Act:

    @jax.custom_vjp
    def f(x):
        return act(x)

    def fwd(x):
        return act(x), None

    def bwd(_, g):
        return (jnp.maximum(g, 0),)

    f.defvjp(fwd, bwd)
    return f


#: ``act`` whose backward pass lets only positive gradients through (and only where act' > 0).
guided = functools.cache(_guided)
#: ``act`` whose backward pass is a ReLU of the incoming gradient, whatever the input was.
deconv = functools.cache(_deconv)


def guided_backprop(model, variables, images: jax.Array, target: Target) -> jax.Array:
    """Guided backpropagation maps, (B, H, W, 3)."""
    return saliency(model.rewrite_relus(_guided), variables, images, target)


def deconvnet(model, variables, images: jax.Array, target: Target) -> jax.Array:
    """Deconvnet maps (Zeiler & Fergus's backward pass), (B, H, W, 3)."""
    return saliency(model.rewrite_relus(_deconv), variables, images, target)
