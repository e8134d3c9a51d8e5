"""Training a jaxviz model with optax: on labels, or distilled from a teacher.

Any optax optimizer (default Adam with a cosine-decayed learning rate), BatchNorm in training mode, batches
drawn at random from an in-memory image array. With a ``teacher``, the targets
are the teacher's temperature-softened outputs on the very (randomly shifted)
batch the student sees (Hinton et al.'s distillation loss, scaled by T^2): this is
what data-free distillation trains on synthesized images.

The steps run on :func:`jaxviz.core.loop.run`.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxviz.core import loop

__all__ = ["fit", "shift", "distillation_loss", "adam_cosine", "FitResult", "DEFAULT_BATCH_SIZE", "DEFAULT_LR"]

_CHUNK = 50
DEFAULT_BATCH_SIZE = 64
DEFAULT_LR = 3e-3


class FitResult(NamedTuple):
    """``variables`` (params and batch_stats) and ``history``: ``[(step, batch loss)]`` at every chunk end."""

    variables: Any
    history: list[tuple[int, float]]


def shift(key: jax.Array, images: jax.Array, max_shift: int) -> jax.Array:
    """Rolls each image by its own random offset in [-max_shift, max_shift] (both axes)."""
    if max_shift == 0:
        return images
    offsets = jax.random.randint(key, (images.shape[0], 2), -max_shift, max_shift + 1)
    return jax.vmap(lambda x, o: jnp.roll(x, (o[0], o[1]), axis=(0, 1)))(images, offsets)


def distillation_loss(params, batch_stats, x, targets, *, model, temperature):
    """Cross-entropy of the student's temperature-softened outputs with ``targets`` (B, C) distributions, scaled
    by ``temperature ** 2``, BatchNorm in training mode: ``(loss, new batch_stats)``."""
    logits, updates = model.module.apply({"params": params, "batch_stats": batch_stats}, model.preprocessing(x),
                                         train=True, mutable=["batch_stats"])
    log_p = jax.nn.log_softmax(logits / temperature)
    return -jnp.mean(jnp.sum(targets * log_p, axis=-1)) * temperature ** 2, updates["batch_stats"]


def _step(carry, i, data, *, model, tx, batch_size, temperature, max_shift, teacher):
    variables, opt_state = carry
    k_idx, k_shift = jax.random.split(jax.random.fold_in(data["key"], i))
    idx = jax.random.randint(k_idx, (batch_size,), 0, data["images"].shape[0])
    x = shift(k_shift, data["images"][idx], max_shift)
    if teacher is None:
        t = data["targets"][idx]
    else:
        t = jax.nn.softmax(jax.lax.stop_gradient(teacher.apply(data["teacher_variables"], x)) / temperature)
    (loss, stats), g = jax.value_and_grad(distillation_loss, has_aux=True)(
        variables["params"], variables["batch_stats"], x, t, model=model, temperature=temperature)
    updates, opt_state = tx.update(g, opt_state, variables["params"])
    return ({"params": optax.apply_updates(variables["params"], updates), "batch_stats": stats}, opt_state), loss


@functools.cache
def adam_cosine(lr: float, steps: int) -> optax.GradientTransformation:
    """Adam with a learning rate cosine-decayed from ``lr`` to 0 over ``steps``; cached, so a new call with the
    same settings compiles nothing."""
    return optax.adam(optax.cosine_decay_schedule(float(lr), int(steps)))


def fit(key: jax.Array, model, images, targets=None, *, teacher=None, steps: int = 500,
        batch_size: int = DEFAULT_BATCH_SIZE, optimizer: optax.GradientTransformation | None = None,
        temperature: float = 1.0, max_shift: int = 0, variables=None, progress: bool | None = False) -> FitResult:
    """Trains ``model``; returns a :class:`FitResult` (``variables, history = fit(...)``).

    Args:
        key: PRNG key (initialization unless ``variables`` is given, batches, shifts).
        model: a jaxviz model whose module takes ``train=True`` (BatchNorm in training mode).
        images: (N, H, W, 3) in [0, 1].
        targets: (N, C) distributions, e.g. one-hot labels; or None with a ``teacher``.
        teacher: ``(model, variables)`` whose softened outputs on each batch are the targets.
        steps: optimizer steps.
        batch_size: images per step, drawn at random.
        optimizer: an optax optimizer; default ``adam_cosine(DEFAULT_LR, steps)`` (Adam, 3e-3, cosine-decayed).
        temperature: softens the teacher and the student alike; the loss is scaled by its square.
        max_shift: random roll of each training image, in pixels (augmentation).
        variables: start from these instead of a fresh initialization.
        progress: show a progress bar (None: only on a terminal).
    """
    images = jnp.asarray(images, jnp.float32)
    if (targets is None) == (teacher is None):
        raise ValueError("give exactly one of targets (distributions) and teacher=(model, variables)")
    if targets is not None:
        targets = jnp.asarray(targets, jnp.float32)
        if images.shape[0] != targets.shape[0]:
            raise ValueError(f"{images.shape[0]} images but {targets.shape[0]} targets")
    teacher_model, teacher_vars = teacher if teacher is not None else (None, None)
    k_init, k_fit = jax.random.split(key)
    if variables is None:
        variables = model.init(k_init, images.shape[1])
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    tx = adam_cosine(DEFAULT_LR, steps) if optimizer is None else optimizer
    step = loop.step(_step, model=model, tx=tx, batch_size=batch_size, temperature=temperature,
                     max_shift=max_shift, teacher=teacher_model)
    data = {"key": k_fit, "images": images, "targets": targets, "teacher_variables": teacher_vars}
    out = loop.run(step, (variables, tx.init(variables["params"])), data, steps=steps, chunk=_CHUNK, desc="train",
                   progress=progress, kind="training")
    return FitResult(out.carry[0], out.history)
