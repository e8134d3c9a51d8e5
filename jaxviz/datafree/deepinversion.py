"""DeepInversion: synthesize images from a trained network's BatchNorm statistics.

Yin et al., "Dreaming to Distill: Data-free Knowledge Transfer via
DeepInversion" (CVPR 2020). Every BatchNorm layer remembers the mean and
variance of what it saw in training; images whose batch statistics match them
at every layer, and which the network classifies as chosen targets, look like
the training data (seed 000: "L2 loss of mean and variance in all BN layers").

The loss per step (images in [0, 1], one target class per image)::

    main * CE(target) + bn * sum_l w_l (||mu_l - mean_l||_2 + ||var_l - running_var_l||_2)
      + tv_l2 * TV(x') + l2 * ||x'||_2 [+ adi * (1 - JS(teacher || student))]

with ``w_0 = first_bn_weight`` and 1 elsewhere, ``x'`` the network's preprocessed
input and the priors defined as the reference code does (:func:`image_priors`),
random roll and flip each step,
Adam (betas 0.5, 0.9) with a warm-up then cosine learning rate (or any optax optimizer), and a multi-resolution schedule
(the network sees the images average-pooled by 2 for the first part of the
run). The BN inputs are reached with :func:`jaxviz.models.bn_inputs` (no model
edits). Adaptive DeepInversion adds the competition term with a student.

Scale-out: pass a ``mesh``; the image batch is sharded over its devices and the
batch statistics (means over the batch axis) become cross-device reductions
inside the compiled steps, so 8 devices give the images 1 device gives.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxviz.core import loop, sharding
from jaxviz.core.objectives import variation
from jaxviz.synthesis.param import Maco

__all__ = ["Settings", "recommended", "MACO", "bn_statistics_loss", "deepinversion", "js_divergence", "learning_rate",
           "image_priors", "Result"]

#: DeepInversion's MACO parameterization: without the hidden margin that class visualization uses against
#: corner glows. On Lite0 (ten classes, 300 steps, judged by Lite1), seeds 0, 1, 2: margin 0 put 8, 7, 5 first
#: and 10, 9, 7 in the top 5; margin 0.25 8, 8, 7 first and 8, 9, 7 in the top 5, without the glows (the
#: corners' mean brightness 0.47 against the pictures' 0.47, margin 0: 0.51 against 0.48). Neither is ahead
#: over three seeds; the margin misses the ten-class test's bar (9 in the top 5) on its seed, so it stays off.
MACO = Maco(margin=0.0)


@dataclasses.dataclass(frozen=True)
class Settings:
    """DeepInversion's hyperparameters (defaults: the paper's ImageNet setting, scaled to [0, 1] images).

    Attributes:
        lr: the default optimizer's peak learning rate (Adam, betas 0.5, 0.9, as the reference code).
        warmup: the default optimizer's steps of linear warm-up before the cosine decay.
        main: weight of the cross-entropy with the targets.
        bn: weight of the BN-statistic loss (``r_feature``).
        first_bn_weight: extra multiplier of the first BN layer.
        tv_l2: weight of the total variation (:func:`image_priors`).
        l2: weight of the L2 norm of the preprocessed batch.
        adi: weight of the Adaptive DeepInversion competition term (needs a student).
        jitter: maximum random roll in pixels.
        flip: random horizontal flips.
        low_res_fraction: fraction of the steps at half resolution.
        param: what is optimized: None for the pixels themselves (the paper's), or a parameterization of
            :mod:`jaxviz.synthesis.param` (``Fourier()``, ``Maco()``) whose images are scored.
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
    param: Any = None


def recommended(model) -> Settings:
    """The settings measured best for ``model``'s family at a few hundred steps (the CLI's budget).

    EfficientNet-Lite (depthwise convolutions, a strided stem): pixels are covered in colour noise (on Lite0,
    300 steps, ten classes: 9x and 29x the photos' neighbour difference and high-frequency share); the MACO
    parameterization (:class:`jaxviz.synthesis.param.Maco`) at lr 0.25 gives photo-like smoothness and is
    recognized more often by an independent network (benchmarks/README.md). Other networks: pixels, as the
    paper, at lr 0.1.
    """
    if model.name.startswith("efficientnet"):
        return Settings(lr=0.25, param=MACO)
    return Settings(lr=0.1)


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
    stats = model.batch_norm_stats(variables)
    total = 0.0
    for i, (name, x) in enumerate(inputs.items()):
        mean, var = stats[name]
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
    """Images (B, H, W, 3) in [0, 1]; ``history``: ``[(step, loss)]`` at chunk boundaries; ``resumed_from``:
    the step a checkpoint resumed from (0: a fresh start)."""

    images: jax.Array
    history: list[tuple[int, float]]
    resumed_from: int = 0


def image_priors(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(TV, L2) of a batch, as the reference code defines them (on the network's preprocessed input).

    TV is the sum of the L2 norms of the differences between neighbours in four
    directions (across, down, and both diagonals), each norm over the whole batch;
    L2 is the norm of the whole batch.
    """
    return variation(x, "deepinversion"), jnp.sqrt(jnp.sum(jnp.square(x)))


def _images(params, settings: Settings, shape):
    return params if settings.param is None else settings.param.to_image(params, shape)


def _loss(params, key, variables, targets, student_vars, *, model, student, settings, low_res, shape):
    images = _images(params, settings, shape)
    x = images
    k_roll, k_flip = jax.random.split(key)
    shift = jax.random.randint(k_roll, (2,), -settings.jitter, settings.jitter + 1)
    x = jnp.roll(x, (shift[0], shift[1]), axis=(1, 2))
    if settings.flip:
        x = jnp.where(jax.random.bernoulli(k_flip), x[:, :, ::-1], x)
    if low_res:  # the network sees the images average-pooled by 2
        b, h, w, c = x.shape
        x = x[:, : h // 2 * 2, : w // 2 * 2].reshape(b, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))
    bn, logits = bn_statistics_loss(model, variables, x, settings.first_bn_weight)
    ce = -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), targets[:, None], axis=1))
    tv, l2 = image_priors(model.preprocessing(images))
    loss = settings.main * ce + settings.bn * bn + settings.tv_l2 * tv + settings.l2 * l2
    if student is not None and settings.adi:
        s_logits = student.apply(student_vars, x)
        loss = loss + settings.adi * jnp.mean(1.0 - jnp.clip(js_divergence(logits, s_logits), 0.0, 1.0))
    return loss


_ADAM = optax.scale_by_adam(b1=0.5, b2=0.9, eps=1e-8)


def learning_rate(step, steps, settings: Settings):
    """The default optimizer's learning rate: linear warm-up to ``settings.lr``, then cosine decay to 0 at
    ``steps`` (``steps`` is dynamic: a new step count compiles nothing)."""
    step = jnp.asarray(step).astype(jnp.result_type(float))
    warm = jnp.minimum(settings.warmup, jnp.maximum(steps - 1, 1))
    rise = settings.lr * (step + 1) / warm
    fall = 0.5 * settings.lr * (1 + jnp.cos(jnp.pi * (step - warm) / jnp.maximum(steps - warm, 1)))
    return jnp.where(step < warm, rise, fall)


@dataclasses.dataclass(frozen=True)
class _Step:
    """One Adam step on the images (static: the networks, the settings and the resolution phase)."""

    model: Any
    student: Any
    settings: Settings
    low_res: bool
    optimizer: optax.GradientTransformation | None  # None: the reference's Adam and schedule
    shape: tuple[int, ...]

    def __call__(self, carry, i, data):
        params, opt_state = carry
        loss, g = jax.value_and_grad(_loss)(params, jax.random.fold_in(data["key"], i), data["variables"],
                                            data["targets"], data["student_variables"], model=self.model,
                                            student=self.student, settings=self.settings, low_res=self.low_res,
                                            shape=self.shape)
        if self.optimizer is None:
            updates, opt_state = _ADAM.update(g, opt_state, params)
            updates = -learning_rate(i, data["steps"], self.settings) * updates
        else:
            updates, opt_state = self.optimizer.update(g, opt_state, params)
        params = params + updates
        params = jnp.clip(params, 0.0, 1.0) if self.settings.param is None else self.settings.param.project(params)
        return (params.astype(g.dtype), opt_state), loss


def deepinversion(key: jax.Array, model, variables, targets: Sequence[int] | jax.Array, *, size: int | None = None,
                  steps: int = 2000, settings: Settings = Settings(),
                  optimizer: optax.GradientTransformation | None = None, student: tuple | None = None,
                  mesh: jax.sharding.Mesh | None = None, chunk: int = 50, progress: bool | None = None,
                  checkpoint: str | os.PathLike | None = None,
                  callback: Callable[[int, float], None] | None = None) -> Result:
    """Synthesizes one image per target class from the network alone.

    Args:
        key: PRNG key (initial noise, per-step jitter and flips).
        model, variables: a jaxviz model with BatchNorm layers, and its weights.
        targets: (B,) class indices, one per image.
        size: image side (default: the model's input size; even).
        steps: optimizer steps (the first ``low_res_fraction`` at half resolution).
        settings: the loss weights and schedule (:class:`Settings`).
        optimizer: an optax optimizer on the images (clipped to [0, 1] after each step); default the
            reference's: Adam (betas 0.5, 0.9) with ``settings.lr``, ``settings.warmup`` and a cosine decay.
        student: ``(model, variables)`` of a second network for Adaptive DeepInversion's competition term
            (weight ``settings.adi``).
        mesh: optional 1-axis ``jax.sharding.Mesh``; the batch is sharded over it
            (B divisible by its size) and BN statistics reduce across devices.
        chunk: steps per compiled chunk (between progress updates and checkpoints).
        checkpoint: an orbax checkpoint directory: every ``chunk`` steps the
            images, Adam's moments and the step are written there atomically, and
            a run that finds one made by the same call (key, targets, size, steps,
            settings) resumes from it, giving the images the uninterrupted run gives.
        callback: ``callback(step, loss)`` for every step (an exception stops the run).

    Returns:
        A :class:`Result` with images (B, H, W, 3) in [0, 1].
    """
    model.batch_norm_stats(variables)  # raises a clear error for a network without BatchNorm
    targets = jnp.asarray(targets, jnp.int32).reshape(-1)
    if targets.size == 0 or int(targets.min()) < 0 or int(targets.max()) >= model.num_classes:
        raise ValueError(f"targets must be class indices in [0, {model.num_classes})")
    if settings.adi and student is None:
        raise ValueError("settings.adi > 0 needs a student=(model, variables) (Adaptive DeepInversion)")
    student, student_variables = (None, None) if student is None else student
    size = size or model.input_size
    b = targets.shape[0]
    k_init, k_loop = jax.random.split(key)
    dtype = next((x.dtype for x in jax.tree.leaves(variables) if jnp.issubdtype(x.dtype, jnp.floating)),
                 jnp.float32)  # bfloat16 weights: bfloat16 images and steps
    shape = (b, size, size, 3)
    if settings.param is None:
        params = jnp.clip(0.5 + 0.2 * jax.random.normal(k_init, shape, dtype), 0.0, 1.0)
    else:
        params = settings.param.init(k_init, shape)
    if mesh is not None:
        params, targets = sharding.shard_batch((params, targets), mesh)
    opt_state = (_ADAM if optimizer is None else optimizer).init(params)
    fingerprint = repr((np.asarray(jax.random.key_data(key)).tolist(), np.asarray(targets).tolist(), size, steps,
                        settings, model.name, None if optimizer is None else str(jax.tree.structure(opt_state))))
    low_res_until = int(settings.low_res_fraction * steps)
    phases = [(low_res_until, _Step(model, student, settings, True, optimizer, shape))] if low_res_until else []
    phases.append((steps, _Step(model, student, settings, False, optimizer, shape)))
    data = {"variables": variables, "student_variables": student_variables, "targets": targets, "key": k_loop,
            "steps": jnp.int32(steps)}
    out = loop.run(phases, (params, opt_state), data, steps=steps, chunk=chunk, desc="deepinversion",
                   kind="deepinversion", progress=progress, checkpoint=checkpoint, fingerprint=fingerprint,
                   callback=callback)
    return Result(_images(out.carry[0], settings, shape), out.history, out.resumed_from)
