"""DeepInversion: synthesize images from a trained network's BatchNorm statistics.

Yin et al., "Dreaming to Distill: Data-free Knowledge Transfer via
DeepInversion" (CVPR 2020). Every BatchNorm layer remembers the mean and
variance of what it saw in training; images whose batch statistics match them
at every layer, and which the network classifies as chosen targets, look like
the training data (seed 000: "L2 loss of mean and variance in all BN layers").

The loss per step (images in [0, 1], one target class per image)::

    main * CE(target) + bn * sum_l w_l (||mu_l - mean_l||_2 + ||var_l - running_var_l||_2)
      + tv_l2 * TV_l2(x) + l2 * ||x||_2 [+ adi * (1 - JS(teacher || student))]

with ``w_0 = first_bn_weight`` and 1 elsewhere, random roll and flip each step,
Adam with a warm-up then cosine learning rate, and a multi-resolution schedule
(the network sees the images average-pooled by 2 for the first part of the
run). The BN inputs are reached with :func:`jaxviz.models.bn_inputs` (no model
edits). Adaptive DeepInversion adds the competition term with a student.

Scale-out: pass a ``mesh``; the image batch is sharded over its devices and the
batch statistics (means over the batch axis) become cross-device reductions
inside the one jitted step, so 8 devices give the images 1 device gives.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxviz.render import progress_bar

__all__ = ["Settings", "bn_statistics_loss", "running_stats", "deepinversion", "js_divergence", "learning_rate",
           "Result"]


@dataclasses.dataclass(frozen=True)
class Settings:
    """DeepInversion's hyperparameters (defaults: the paper's ImageNet setting, scaled to [0, 1] images).

    Attributes:
        lr: Adam's peak learning rate (betas 0.5, 0.9, as the reference code).
        warmup: steps of linear warm-up before the cosine decay.
        main: weight of the cross-entropy with the targets.
        bn: weight of the BN-statistic loss (``r_feature``).
        first_bn_weight: extra multiplier of the first BN layer.
        tv_l2: weight of the squared total variation.
        l2: weight of the image's L2 norm (around grey).
        adi: weight of the Adaptive DeepInversion competition term (needs a student).
        jitter: maximum random roll in pixels.
        flip: random horizontal flips.
        low_res_fraction: fraction of the steps at half resolution.
    """

    lr: float = 0.25
    warmup: int = 100
    main: float = 1.0
    bn: float = 0.01
    first_bn_weight: float = 10.0
    tv_l2: float = 1e-4
    l2: float = 1e-5
    adi: float = 0.0
    jitter: int = 30
    flip: bool = True
    low_res_fraction: float = 2 / 3


def running_stats(variables, name: str):
    """(running mean, running var) of the BatchNorm at dotted path ``name`` (as :func:`bn_inputs` names it)."""
    node, rest = variables["batch_stats"], name
    while rest:
        key = max((k for k in node if rest == k or rest.startswith(k + ".")), key=len, default=None)
        if key is None:
            raise KeyError(f"no batch statistics for BatchNorm {name!r}")
        node, rest = node[key], rest[len(key) + 1:]
    return node["mean"], node["var"]


def bn_statistics_loss(model, variables, images: jax.Array, first_bn_weight: float = 1.0):
    """The BN-statistic loss of a batch, and the logits.

    For every BatchNorm layer, the mean and (biased) variance of its input over
    batch and positions against its running statistics:
    ``||mu - running_mean||_2 + ||var - running_var||_2``, summed over layers,
    the first weighted by ``first_bn_weight``.

    Returns:
        ``(loss, logits)``; ``loss`` is a scalar (the statistics couple the batch).
    """
    from jaxviz.models import bn_inputs

    logits, inputs = bn_inputs(model, variables, images)
    total = 0.0
    for i, (name, x) in enumerate(inputs.items()):
        mean, var = running_stats(variables, name)
        axes = tuple(range(x.ndim - 1))
        mu = jnp.mean(x, axis=axes)
        v = jnp.mean(jnp.square(x - mu), axis=axes)
        term = jnp.linalg.norm(mu - mean) + jnp.linalg.norm(v - var)
        total = total + (first_bn_weight if i == 0 else 1.0) * term
    return total, logits


def js_divergence(logits_p: jax.Array, logits_q: jax.Array) -> jax.Array:
    """(B,) Jensen-Shannon divergence between two categorical distributions given as logits (nats)."""
    p, q = jax.nn.softmax(logits_p), jax.nn.softmax(logits_q)
    m = 0.5 * (p + q)

    def kl(a):
        return jnp.sum(a * (jnp.log(a + 1e-10) - jnp.log(m + 1e-10)), axis=-1)

    return 0.5 * (kl(p) + kl(q))


class Result(NamedTuple):
    """Images (B, H, W, 3) in [0, 1]; ``history``: ``[(step, loss)]`` at chunk boundaries."""

    images: jax.Array
    history: list[tuple[int, float]]


def _loss(params, key, step, low_res_until, variables, targets, student_vars, *, model, student, settings):
    x = params
    k_roll, k_flip = jax.random.split(key)
    shift = jax.random.randint(k_roll, (2,), -settings.jitter, settings.jitter + 1)
    x = jnp.roll(x, (shift[0], shift[1]), axis=(1, 2))
    if settings.flip:
        x = jnp.where(jax.random.bernoulli(k_flip), x[:, :, ::-1], x)
    def at(images):
        return bn_statistics_loss(model, variables, images, settings.first_bn_weight)

    def half(images):
        b, h, w, c = images.shape
        return at(images[:, : h // 2 * 2, : w // 2 * 2].reshape(b, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4)))

    bn, logits = jax.lax.cond(step < low_res_until, half, at, x)
    ce = -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), targets[:, None], axis=1))
    tv = (jnp.mean(jnp.square(params[:, 1:] - params[:, :-1]))
          + jnp.mean(jnp.square(params[:, :, 1:] - params[:, :, :-1])))
    l2 = jnp.mean(jnp.sqrt(jnp.sum(jnp.square(params - 0.5), axis=(1, 2, 3))))
    loss = settings.main * ce + settings.bn * bn + settings.tv_l2 * tv + settings.l2 * l2
    if student is not None and settings.adi:
        s_logits = student.apply(student_vars, x)
        loss = loss + settings.adi * jnp.mean(1.0 - jnp.clip(js_divergence(logits, s_logits), 0.0, 1.0))
    return loss


_ADAM = optax.scale_by_adam(b1=0.5, b2=0.9, eps=1e-8)


def learning_rate(step, steps, settings: Settings):
    """Linear warm-up to ``settings.lr``, then cosine decay to 0 at ``steps``."""
    step = jnp.asarray(step).astype(jnp.result_type(float))
    warm = jnp.minimum(settings.warmup, jnp.maximum(steps - 1, 1))
    rise = settings.lr * (step + 1) / warm
    fall = 0.5 * settings.lr * (1 + jnp.cos(jnp.pi * (step - warm) / jnp.maximum(steps - warm, 1)))
    return jnp.where(step < warm, rise, fall)


@functools.partial(jax.jit, static_argnames=("model", "student", "settings"))
def _run(variables, student_vars, targets, params, opt_state, key, start, stop, steps, *, model, student, settings):
    low_res_until = jnp.floor(settings.low_res_fraction * steps).astype(jnp.int32)
    loss_fn = functools.partial(_loss, model=model, student=student, settings=settings)

    def step(i, carry):
        p, s, _ = carry
        loss, g = jax.value_and_grad(loss_fn)(p, jax.random.fold_in(key, i), i, low_res_until, variables, targets,
                                              student_vars)
        updates, s = _ADAM.update(g, s, p)
        p = jnp.clip(p - learning_rate(i, steps, settings) * updates, 0.0, 1.0)
        return p.astype(params.dtype), s, loss.astype(params.dtype)

    return jax.lax.fori_loop(start, stop, step, (params, opt_state, jnp.zeros((), params.dtype)))


def deepinversion(key: jax.Array, model, variables, targets: Sequence[int] | jax.Array, *, size: int | None = None,
                  steps: int = 2000, settings: Settings = Settings(), student=None, student_variables=None,
                  mesh: jax.sharding.Mesh | None = None, chunk: int = 50, progress: bool | None = None) -> Result:
    """Synthesizes one image per target class from the network alone.

    Args:
        key: PRNG key (initial noise, per-step jitter and flips).
        model, variables: a jaxviz model with BatchNorm layers, and its weights.
        targets: (B,) class indices, one per image.
        size: image side (default: the model's input size; even).
        steps: optimizer steps (the first ``low_res_fraction`` at half resolution).
        settings: the loss weights and schedule (:class:`Settings`).
        student, student_variables: a second model for Adaptive DeepInversion's
            competition term (weight ``settings.adi``).
        mesh: optional 1-axis ``jax.sharding.Mesh``; the batch is sharded over it
            (B divisible by its size) and BN statistics reduce across devices.
        chunk: steps per compiled call between progress updates.

    Returns:
        A :class:`Result` with images (B, H, W, 3) in [0, 1].
    """
    if "batch_stats" not in variables:
        raise ValueError(f"{model.name} has no BatchNorm statistics to invert")
    targets = jnp.asarray(targets, jnp.int32).reshape(-1)
    if targets.size == 0 or int(targets.min()) < 0 or int(targets.max()) >= model.num_classes:
        raise ValueError(f"targets must be class indices in [0, {model.num_classes})")
    if settings.adi and student is None:
        raise ValueError("settings.adi > 0 needs a student model (Adaptive DeepInversion)")
    size = size or model.input_size
    b = targets.shape[0]
    k_init, k_loop = jax.random.split(key)
    params = jnp.clip(0.5 + 0.2 * jax.random.normal(k_init, (b, size, size, 3)), 0.0, 1.0)
    if mesh is not None:
        if len(mesh.axis_names) != 1 or b % mesh.size:
            raise ValueError(f"need a 1-axis mesh whose size divides the batch ({b}); got {mesh.shape}")
        batch = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(mesh.axis_names[0]))
        params, targets = jax.device_put(params, batch), jax.device_put(targets, batch)
    opt_state = _ADAM.init(params)
    history, start = [], 0
    with progress_bar(steps, "deepinversion", progress) as bar:
        for stop in [*range(chunk, steps, chunk), steps]:
            params, opt_state, loss = _run(variables, student_variables, targets, params, opt_state, k_loop, start,
                                           stop, steps, model=model, student=student, settings=settings)
            history.append((stop, float(loss)))
            bar.update(stop - start)
            bar.set_postfix(loss=f"{history[-1][1]:.4g}")
            start = stop
    return Result(params, history)
