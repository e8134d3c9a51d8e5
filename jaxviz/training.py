"""Training a jaxviz model with optax: on labels, or distilled from a teacher.

Adam with a cosine-decayed learning rate, BatchNorm in training mode, batches
drawn at random from an in-memory image array. With a ``teacher``, the targets
are the teacher's temperature-softened outputs on the very (randomly shifted)
batch the student sees (Hinton et al.'s distillation loss, scaled by T^2): this is
what data-free distillation trains on synthesized images.

One jitted step per call: XLA:CPU runs the weight gradients of small
convolutions ~25x slower inside a ``while`` loop (jax-ml/jax#12868), and the
Python loop costs well under a millisecond per step.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import optax

__all__ = ["fit", "shift"]


def shift(key: jax.Array, images: jax.Array, max_shift: int) -> jax.Array:
    """Rolls each image by its own random offset in [-max_shift, max_shift] (both axes)."""
    if max_shift == 0:
        return images
    offsets = jax.random.randint(key, (images.shape[0], 2), -max_shift, max_shift + 1)
    return jax.vmap(lambda x, o: jnp.roll(x, (o[0], o[1]), axis=(0, 1)))(images, offsets)


def _loss(params, batch_stats, x, targets, *, model, temperature):
    logits, updates = model.module.apply({"params": params, "batch_stats": batch_stats}, model.preprocessing(x),
                                         train=True, mutable=["batch_stats"])
    log_p = jax.nn.log_softmax(logits / temperature)
    return -jnp.mean(jnp.sum(targets * log_p, axis=-1)) * temperature ** 2, updates["batch_stats"]


@functools.partial(jax.jit, static_argnames=("model", "tx", "batch", "temperature", "max_shift", "teacher"),
                   donate_argnums=(0, 1))
def _step(variables, opt_state, images, targets, teacher_vars, key, *, model, tx, batch, temperature, max_shift,
          teacher):
    k_idx, k_shift = jax.random.split(key)
    idx = jax.random.randint(k_idx, (batch,), 0, images.shape[0])
    x = shift(k_shift, images[idx], max_shift)
    if teacher is None:
        t = targets[idx]
    else:
        t = jax.nn.softmax(jax.lax.stop_gradient(teacher.apply(teacher_vars, x)) / temperature)
    (loss, stats), g = jax.value_and_grad(_loss, has_aux=True)(variables["params"], variables["batch_stats"], x, t,
                                                               model=model, temperature=temperature)
    updates, opt_state = tx.update(g, opt_state, variables["params"])
    return {"params": optax.apply_updates(variables["params"], updates), "batch_stats": stats}, opt_state, loss


def fit(key: jax.Array, model, images, targets=None, *, teacher=None, steps: int = 500, batch: int = 64,
        lr: float = 3e-3, temperature: float = 1.0, max_shift: int = 0, variables=None):
    """Trains ``model``; returns ``(variables, last batch loss)``.

    Args:
        key: PRNG key (initialization unless ``variables`` is given, batches, shifts).
        model: a jaxviz model whose module takes ``train=True`` (BatchNorm in training mode).
        images: (N, H, W, 3) in [0, 1].
        targets: (N, C) distributions, e.g. one-hot labels; or None with a ``teacher``.
        teacher: ``(model, variables)`` whose softened outputs on each batch are the targets.
        steps, batch, lr: Adam steps (cosine-decayed learning rate), batch size, peak learning rate.
        temperature: softens the teacher and the student alike; the loss is scaled by its square.
        max_shift: random roll of each training image, in pixels (augmentation).
        variables: start from these instead of a fresh initialization.
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
    variables = jax.tree.map(jnp.array, variables)  # fresh buffers: the step donates them
    tx = optax.adam(optax.cosine_decay_schedule(lr, steps))
    opt_state, loss = tx.init(variables["params"]), jnp.zeros(())
    for i in range(steps):
        variables, opt_state, loss = _step(variables, opt_state, images, targets, teacher_vars,
                                           jax.random.fold_in(k_fit, i), model=model, tx=tx, batch=batch,
                                           temperature=temperature, max_shift=max_shift, teacher=teacher_model)
    return variables, float(loss)
