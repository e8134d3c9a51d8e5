"""Adversarial examples and fooling images: small input changes that flip the prediction.

* :func:`fgsm`: one signed-gradient step (Goodfellow et al. 2015);
* :func:`pgd`: iterated FGSM projected onto an L-inf or L2 ball (Madry et al. 2018);
* :func:`fool`: targeted PGD that stops, per image, as soon as the network
  predicts the target (seeds 002/003: "make the cat an ostrich"), reporting the
  steps taken and the L-inf / L2 distortion.

:func:`fgsm` and :func:`pgd` follow Captum's definitions (``captum.robust``):
the loss is the cross-entropy of the target class, coordinates whose gradient
is at most 1e-6 in magnitude are left alone, and PGD's ball projection comes
before the clamp to [lower, upper]. Images are in [0, 1].

Example:
    >>> r = fool(model, variables, photo[None], target=9)  # doctest: +SKIP
    >>> int(r.pred[0]), float(r.linf[0]) <= 8 / 255  # doctest: +SKIP
    (9, True)
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxviz.core import forward, loop
from jaxviz.core.objectives import class_scores

__all__ = ["fgsm", "pgd", "fool", "FoolResult", "cross_entropy_grad"]

#: Captum's ``zero_thresh``: gradient coordinates at most this large do not move.
ZERO_THRESH = 1e-6


def _cross_entropy(model, variables, images, target):
    logits = model.apply(variables, images)
    losses = -class_scores(jax.nn.log_softmax(logits), target)
    return jnp.sum(losses), logits


def cross_entropy_grad(model, variables, images, target):
    """(gradient of each image's cross-entropy w.r.t. the image, logits)."""
    grads, logits = jax.grad(_cross_entropy, argnums=2, has_aux=True)(model, variables, images, target)
    return grads, logits


def _signed_step(images, grads, eps, targeted):
    direction = -1.0 if targeted else 1.0
    return jnp.where(jnp.abs(grads) > ZERO_THRESH, images + direction * eps * jnp.sign(grads), images)


def fgsm(model, variables, images: jax.Array, target, eps: float, *, targeted: bool = False,
         lower: float = 0.0, upper: float = 1.0) -> jax.Array:
    """Fast gradient sign method: ``clip(x +- eps * sign(grad CE(x, target)))``.

    Args:
        images: (B, H, W, 3) in [0, 1].
        target: the true class (untargeted: the loss rises) or, with
            ``targeted``, the class to reach (the loss falls); int or (B,).
        eps: step size.
        lower, upper: the clamp applied to the result.

    Returns:
        (B, H, W, 3) perturbed images.
    """
    grads, _ = cross_entropy_grad(model, variables, images, target)
    return jnp.clip(_signed_step(images, grads, eps, targeted), lower, upper)


def _project(center, x, radius, norm):
    diff = x - center
    if norm == "Linf":
        return center + jnp.clip(diff, -radius, radius)
    length = jnp.sqrt(jnp.sum(jnp.square(diff), axis=(1, 2, 3), keepdims=True))
    return center + diff * jnp.where(length > radius, radius / (length + 1e-7), 1.0)


def pgd(key: jax.Array | None, model, variables, images: jax.Array, target, *, radius: float, step_size: float,
        steps: int, targeted: bool = False, norm: str = "Linf", lower: float = 0.0, upper: float = 1.0) -> jax.Array:
    """Projected gradient descent: ``steps`` FGSM steps, each projected onto the ``radius`` ball.

    Args:
        radius: the ball's radius around ``images`` (``norm``: "Linf" or "L2").
        step_size: each FGSM step's size.
        steps: number of steps (a ``lax.fori_loop``; dynamic).
        key: a PRNG key: start from a uniform random point of the L-inf ball; None: start at ``images``
            (deterministic, as Captum's ``PGD(random_start=False)``).
        Others: as :func:`fgsm`.
    """
    if norm not in ("Linf", "L2"):
        raise ValueError(f"norm must be 'Linf' or 'L2', got {norm!r}")
    x = images
    if key is not None:
        x = jnp.clip(images + jax.random.uniform(key, images.shape, minval=-radius, maxval=radius), lower, upper)

    def step(_, x):
        grads, _ = cross_entropy_grad(model, variables, x, target)
        x = _project(images, _signed_step(x, grads, step_size, targeted), radius, norm)
        return jnp.clip(x, lower, upper)

    return jax.lax.fori_loop(0, steps, step, x)


class FoolResult(NamedTuple):
    """What :func:`fool` returns, per image.

    Attributes:
        images: (B, H, W, 3) the fooling images.
        pred: (B,) the network's prediction on them.
        steps: (B,) steps taken until the target was predicted (or the maximum).
        success: (B,) whether ``pred == target``.
        linf, l2: (B,) distortion from the originals, in [0, 1] pixel units.
    """

    images: jax.Array
    pred: jax.Array
    steps: jax.Array
    success: jax.Array
    linf: jax.Array
    l2: jax.Array


def _fool_step(carry, i, data, *, model, step_size, eps):
    x, done, steps = carry
    images, target = data["images"], data["target"]
    grads, logits = cross_entropy_grad(model, data["variables"], x, target)
    done = jnp.argmax(logits, axis=-1) == target
    moved = jnp.clip(_project(images, _signed_step(x, grads, step_size, True), eps, "Linf"), 0.0, 1.0)
    x = jnp.where(done[:, None, None, None], x, moved)
    return (x, done, steps + (~done).astype(jnp.int32)), done.astype(jnp.float32)


def fool(model, variables, images: jax.Array, target, *, eps: float = 8 / 255, step_size: float = 1 / 255,
         max_steps: int = 100, progress: bool | None = False) -> FoolResult:
    """Targeted L-inf PGD that stops for each image once the network predicts ``target``.

    Runs on :func:`jaxviz.core.loop.run` in chunks of 8 steps; an image the network already classifies as
    ``target`` no longer moves, and the run ends at the first chunk end where every image is fooled.

    Args:
        images: (B, H, W, 3) in [0, 1].
        target: class to reach, an int or (B,).
        eps: L-inf budget.
        step_size: signed-gradient step.
        max_steps: give up after this many steps.

    Returns:
        A :class:`FoolResult`.
    """
    images = jnp.asarray(images)
    b = images.shape[0]
    target = jnp.broadcast_to(jnp.asarray(target), (b,))
    step = loop.step(_fool_step, model=model, step_size=float(step_size), eps=float(eps))
    out = loop.run(step, (images, jnp.zeros(b, bool), jnp.zeros(b, jnp.int32)),
                   {"images": images, "target": target, "variables": variables}, steps=max_steps, chunk=8,
                   desc="fool", progress=progress, stop_when=lambda carry: bool(jnp.all(carry[1])))
    x, _, steps = out.carry
    pred = jnp.argmax(forward.logits(model, variables, x), axis=-1)
    diff = (x - images).reshape(b, -1)
    return FoolResult(x, pred, steps, pred == target, jnp.max(jnp.abs(diff), axis=1),
                      jnp.sqrt(jnp.sum(jnp.square(diff), axis=1)))
