"""DeepLIFT with the Rescale rule: contributions of ``images - baselines`` to the score difference.

DeepLIFT (Shrikumar et al. 2017) replaces every nonlinearity's derivative by a *multiplier*, the ratio of its
output difference to its input difference between the image and a reference (the baseline), and backpropagates
those through the linear layers as the chain rule does. Here, as in Captum's ``DeepLift``, the network runs once
on the image and its baseline stacked into one batch of 2B, and two rules change the backward pass:

* every ReLU-like operation (:meth:`~jaxviz.models.Model.rewrite_relus`) passes ``g * dy / dx`` instead of
  ``g * act'(x)``, with ``dx = x - x_ref`` and ``dy = act(x) - act(x_ref)``;
* every max-pool (:meth:`~jaxviz.models.Model.rewrite_ops`, tag ``maxpool``) routes ``g * (max(y, y_ref) -
  y_ref)`` to the image's maximal inputs and ``g * (y - max(y, y_ref))`` to the baseline's, and divides their sum
  by ``dx`` (Captum's cross-maximum rule);

wherever ``|dx| < eps`` the plain gradient is kept. The attribution is ``(images - baselines) * multipliers``;
on a ReLU network without max-pools it sums exactly to ``score(images) - score(baselines)`` (completeness). The
target score is summed over both halves of the batch, as Captum does, so the baseline half's backward pass
carries the same multipliers the max-pool rule reads. No hooks: any model whose ReLUs and max-pools jaxviz's
tracer finds (ports, adapted models, plain functions), and it composes with ``jit``, ``vmap`` and
:func:`~jaxviz.attribution.gradients.smoothgrad`.

Reference:
    Shrikumar et al., "Learning Important Features Through Propagating Activation Differences", ICML 2017.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from jaxviz.attribution.gradients import saliency
from jaxviz.core.batching import tile_target
from jaxviz.core.objectives import Target

__all__ = ["deeplift", "rescale", "maxpool_rule", "EPS"]

#: Below this input difference a unit keeps its plain gradient (Captum's default ``eps``).
EPS = 1e-10


def _halves(z: jax.Array) -> tuple[jax.Array, jax.Array]:
    n = z.shape[0] // 2
    return z[:n], z[n:]


def _both(d: jax.Array) -> jax.Array:
    return jnp.concatenate([d, d])


def _with_backward(forward, backward):
    """``forward`` with ``backward(z, g)`` as its VJP (``z``: the stacked input, ``g``: the output's cotangent)."""
    f = jax.custom_vjp(forward)
    f.defvjp(lambda z: (forward(z), z), lambda z, g: (backward(z, g),))
    return f


@functools.cache
def rescale(eps: float = EPS):
    """The ReLU rule: ``act`` on the stacked (image, baseline) batch, with the Rescale multiplier as its VJP."""

    def rule(act):
        def backward(z, g):
            y, vjp = jax.vjp(act, z)
            (plain,) = vjp(g)
            (x, x_ref), (a, a_ref) = _halves(z), _halves(y)
            dx, dy = _both(x - x_ref), _both(a - a_ref)
            return jnp.where(jnp.abs(dx) < eps, plain, g * dy / jnp.where(dx == 0, 1, dx))

        return _with_backward(act, backward)

    return rule


@functools.cache
def maxpool_rule(eps: float = EPS):
    """The ``maxpool`` op rule: the pool on the stacked batch, with Captum's cross-maximum multiplier as its VJP."""

    def rule(bind, invals):
        def pool(z):
            return bind(z, *invals[1:])[0]  # the operand; any other input stays as traced

        def backward(z, g):
            y, vjp = jax.vjp(pool, z)
            (plain,) = vjp(g)
            (x, x_ref), (y_x, y_ref), (g_x, g_ref) = _halves(z), _halves(y), _halves(g)
            top = jnp.maximum(y_x, y_ref)
            routed = jax.vjp(pool, x)[1](g_x * (top - y_ref))[0] + jax.vjp(pool, x_ref)[1](g_ref * (y_x - top))[0]
            dx = x - x_ref
            return jnp.where(jnp.abs(_both(dx)) < eps, plain, _both(routed / jnp.where(dx == 0, 1, dx)))

        return [_with_backward(pool, backward)(invals[0])]

    return rule


def deeplift(model, variables, images: jax.Array, target: Target, *, baselines=None, eps: float = EPS) -> jax.Array:
    """DeepLIFT (Rescale) attributions (B, H, W, 3) of ``images`` against ``baselines`` (see the module docstring).

    Args:
        baselines: (B, H, W, 3), (H, W, 3) or a scalar in [0, 1] pixel units; None is black (zeros), Captum's
            default.
        eps: input differences below this keep the plain gradient.
    """
    images = jnp.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"images must be (B, H, W, 3), got shape {images.shape}")
    ref = jnp.zeros_like(images) if baselines is None else jnp.asarray(baselines, images.dtype)
    try:
        ref = jnp.broadcast_to(ref, images.shape)
    except ValueError:
        raise ValueError(f"baselines of shape {ref.shape} do not broadcast to the images' {images.shape}") from None
    if not eps > 0:
        raise ValueError(f"eps must be positive, got {eps}")
    dl = model.rewrite_relus(rescale(eps)).rewrite_ops({"maxpool": maxpool_rule(eps)})
    stacked = jnp.concatenate([images, ref])
    grads = saliency(dl, variables, stacked, tile_target(target, 2, images.shape[0]))
    return (images - ref) * grads[: images.shape[0]]
