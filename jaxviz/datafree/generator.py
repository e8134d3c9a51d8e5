"""Generator-based synthesis with a meta-learned initialization (Fast-DFKD).

Fang et al., "Up to 100x Faster Data-free Knowledge Distillation" (AAAI 2022), in the line of DAFL (Chen et
al., ICCV 2019) and CMI (Fang et al., IJCAI 2021). DeepInversion optimizes every batch of pixels from scratch;
here a small conditional generator (noise and a class embedding to an image, :class:`Generator`) makes the
images, and each *synthesis round* starts it from a meta-learned initialization, so a few steps suffice:

* **inner steps** (``settings.inner_steps``; 2 by default, Fast-DFKD's "Fast-2"): from the meta-init, Adam on the
  generator's weights and on the round's noise, against the frozen teacher::

      main * CE(teacher(x), y) + bn * BN-statistic loss(x) - adv * JS(teacher(x) || student(x))

  (the BN-statistic loss is :func:`jaxviz.datafree.deepinversion.bn_statistics_loss`; the last, adversarial
  term asks for images on which the student still disagrees with the teacher);
* **meta step** (Reptile, Nichol et al. 2018): the meta-init moves toward the adapted weights,
  ``meta += meta_lr * (adapted - meta)``;
* **memory bank**: the round's images replace the oldest ones in a bank of ``len(targets)`` images (image
  ``i`` always of class ``targets[i]``); the **student** takes ``settings.student_steps`` distillation steps
  on the bank (it minimizes what the generator maximizes).

The bank is the result: images (N, H, W, 3) in [0, 1], one per target, as
:func:`~jaxviz.datafree.deepinversion.deepinversion` returns, so they go wherever DeepInversion's go
(:func:`jaxviz.datafree.distill.distill`, the gallery). The co-trained student and the meta-learned
initialization come with them. A round is one jitted step run by :func:`jaxviz.core.loop.run` (inner and
student steps unrolled inside it), so ``checkpoint=`` resumes an interrupted run to the same images.

Example:
    >>> out = generator.synthesize(key, teacher, teacher_vars, np.tile(np.arange(10), 40),  # doctest: +SKIP
    ...                            student=(student, student_vars), rounds=20)
    >>> student_vars = distill.distill(key, teacher, teacher_vars, student, out.images)     # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxviz.core import loop
from jaxviz.datafree import training
from jaxviz.datafree.deepinversion import bn_statistics_loss, js_divergence

__all__ = ["Settings", "Generator", "Result", "synthesize", "sample", "init_generator", "generator_loss", "reptile"]


@dataclasses.dataclass(frozen=True)
class Settings:
    """The generator, its losses and its schedule (defaults: tuned on the 32 px digits, see the README).

    Attributes:
        noise_dim: size of the noise vector (and of the class embedding concatenated to it).
        width: channels of the generator's last hidden block (the first two have 4x and 2x as many).
        batch_size: images synthesized per round.
        inner_steps: generator steps per round, from the meta-init (unrolled in the round's program).
        lr: Adam learning rate of the generator in the inner steps.
        lr_z: Adam learning rate of the round's noise (optimized with the generator, as CMI and Fast-DFKD do).
        meta_lr: Reptile's step toward the adapted weights (1: no meta-learning, the generator just goes on
            training; 0: every round starts from the same random generator).
        main: weight of the teacher's cross-entropy with the conditioning class.
        bn: weight of the BN-statistic loss.
        first_bn_weight: extra multiplier of the first BN layer.
        adv: weight of the adversarial term (needs a student).
        jitter: maximum random roll in pixels of the images the networks see.
        student_steps: distillation steps of the student per round, on batches from the bank.
        student_batch: images per student step.
        student_lr: the student's Adam learning rate (constant).
        temperature: the distillation temperature (the student's loss is scaled by its square).
    """

    noise_dim: int = 64
    width: int = 16
    batch_size: int = 100
    inner_steps: int = 2
    lr: float = 1e-2
    lr_z: float = 5e-2
    meta_lr: float = 0.5
    main: float = 5.0
    bn: float = 1.0
    first_bn_weight: float = 10.0
    adv: float = 1.0
    jitter: int = 2
    student_steps: int = 2
    student_batch: int = 64
    student_lr: float = 3e-3
    temperature: float = 4.0


class _BatchNorm(nn.Module):
    """Batch normalization with a learned scale and shift and no running statistics (the generator always
    normalizes with its batch's own statistics)."""

    @nn.compact
    def __call__(self, x):
        axes = tuple(range(x.ndim - 1))
        mean = jnp.mean(x, axis=axes)
        var = jnp.mean(jnp.square(x - mean), axis=axes)
        scale = self.param("scale", nn.initializers.ones, (x.shape[-1],))
        bias = self.param("bias", nn.initializers.zeros, (x.shape[-1],))
        return (x - mean) * jax.lax.rsqrt(var + 1e-5) * scale + bias


def _upsample(x):
    return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


class Generator(nn.Module):
    """Noise (B, noise_dim) and classes (B,) to images (B, size, size, 3) in [0, 1].

    A dense layer to a (size/8)^2 map, then three nearest-neighbour upsamplings each followed by a 3x3
    convolution (the first two with batch normalization and a leaky ReLU), and a sigmoid.
    """

    num_classes: int
    size: int = 32
    noise_dim: int = 64
    width: int = 16

    @nn.compact
    def __call__(self, z, labels):
        h = jnp.concatenate([z, nn.Embed(self.num_classes, self.noise_dim, name="embed")(labels)], axis=-1)
        s = self.size // 8
        h = nn.Dense(s * s * 4 * self.width, name="fc")(h).reshape(-1, s, s, 4 * self.width)
        h = _BatchNorm(name="bn0")(h)
        for i, width in enumerate((2 * self.width, self.width), start=1):
            h = nn.Conv(width, (3, 3), padding=1, name=f"conv{i}")(_upsample(h))
            h = nn.leaky_relu(_BatchNorm(name=f"bn{i}")(h), 0.2)
        return nn.sigmoid(nn.Conv(3, (3, 3), padding=1, name="out")(_upsample(h)))


def _module(num_classes: int, size: int, settings: Settings) -> Generator:
    if size % 8:
        raise ValueError(f"the generator needs an image side divisible by 8, got {size}")
    return Generator(num_classes, size, settings.noise_dim, settings.width)


def init_generator(key: jax.Array, num_classes: int, size: int, settings: Settings = Settings()):
    """A random generator's parameters (the first meta-init)."""
    return _init(_module(num_classes, size, settings), key)


@functools.partial(jax.jit, static_argnums=0)
def _init(module: Generator, key):
    # The initializers draw from a key of the RBG generator seeded by ``key``: one threefry call instead of one
    # per parameter, which XLA:CPU compiles in 1.8 s instead of 4.9 (the generator's first round waits for it).
    seeded = jax.random.wrap_key_data(jax.random.bits(key, (4,), jnp.uint32), impl="rbg")
    return module.init(seeded, jnp.zeros((1, module.noise_dim)), jnp.zeros((1,), jnp.int32))["params"]


def sample(key: jax.Array, params, targets, *, num_classes: int, size: int, settings: Settings = Settings()):
    """Images (B, size, size, 3) in [0, 1] of ``params``' generator for ``targets`` (B,), from fresh noise."""
    targets = jnp.asarray(targets, jnp.int32).reshape(-1)
    z = jax.random.normal(key, (targets.shape[0], settings.noise_dim))
    return _module(num_classes, size, settings).apply({"params": params}, z, targets)


def _roll(key, x, jitter):
    if not jitter:
        return x
    shift = jax.random.randint(key, (2,), -jitter, jitter + 1)
    return jnp.roll(x, (shift[0], shift[1]), axis=(1, 2))


def generator_loss(params, z, targets, key, teacher_variables, student_variables, *, module, teacher, student,
                   settings: Settings):
    """The generator's loss on one batch: ``main * CE + bn * BN-statistic loss - adv * JS(teacher, student)``.

    Args:
        params, z: the generator's parameters and its noise (B, noise_dim).
        targets: (B,) the conditioning classes.
        key: the batch's roll.
        teacher, teacher_variables: the frozen teacher (a jaxviz model with BatchNorm).
        student, student_variables: the student (None, None: no adversarial term).

    Returns:
        A scalar.
    """
    x = _roll(key, module.apply({"params": params}, z, targets), settings.jitter)
    bn, logits = bn_statistics_loss(teacher, teacher_variables, x, settings.first_bn_weight)
    ce = -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), targets[:, None], axis=1))
    loss = settings.main * ce + settings.bn * bn
    if student is not None and settings.adv:
        loss = loss - settings.adv * jnp.mean(js_divergence(logits, student.apply(student_variables, x)))
    return loss


_ADAM = optax.scale_by_adam()


def _adam_step(g, state, lr):
    updates, state = _ADAM.update(g, state)
    return jax.tree.map(lambda u: -lr * u, updates), state


def reptile(meta, adapted, lr):
    """Reptile's meta step: ``meta + lr * (adapted - meta)``, leaf by leaf."""
    return jax.tree.map(lambda m, a: m + lr * (a - m), meta, adapted)


def _round(carry, r, data, *, module, teacher, student, settings: Settings, batch: int):
    """One synthesis round: inner steps from the meta-init, the Reptile step, the bank, the student's steps."""
    meta, student_vars, student_opt, bank = carry
    n = bank.shape[0]
    key = jax.random.fold_in(data["key"], r)
    k_z, k_inner, k_student = jax.random.split(key, 3)
    slots = (r * batch + jnp.arange(batch)) % n
    targets = data["targets"][slots]
    params, z = meta, jax.random.normal(k_z, (batch, settings.noise_dim))
    p_state, z_state = _ADAM.init(params), _ADAM.init(z)
    loss = jnp.float32(0.0)
    grad = jax.value_and_grad(generator_loss, argnums=(0, 1))
    for j in range(settings.inner_steps):  # unrolled: a handful of steps, no while loop (XLA:CPU)
        loss, (g_p, g_z) = grad(params, z, targets, jax.random.fold_in(k_inner, j), data["teacher_variables"],
                                student_vars, module=module, teacher=teacher, student=student, settings=settings)
        u_p, p_state = _adam_step(g_p, p_state, settings.lr)
        u_z, z_state = _adam_step(g_z, z_state, settings.lr_z)
        params, z = optax.apply_updates(params, u_p), z + u_z
    meta = reptile(meta, params, settings.meta_lr)
    images = module.apply({"params": params}, z, targets)
    bank = bank.at[slots].set(images.astype(bank.dtype))
    if student is not None:
        filled = jnp.minimum((r + 1) * batch, n)
        tx = _student_optimizer(settings.student_lr)
        for j in range(settings.student_steps):
            k_idx, k_shift = jax.random.split(jax.random.fold_in(k_student, j))
            x = training.shift(k_shift, bank[jax.random.randint(k_idx, (settings.student_batch,), 0, filled)],
                               settings.jitter)
            t = jax.nn.softmax(teacher.apply(data["teacher_variables"], x) / settings.temperature)
            (_, stats), g = jax.value_and_grad(training.distillation_loss, has_aux=True)(
                student_vars["params"], student_vars["batch_stats"], x, t, model=student,
                temperature=settings.temperature)
            updates, student_opt = tx.update(g, student_opt, student_vars["params"])
            student_vars = {"params": optax.apply_updates(student_vars["params"], updates), "batch_stats": stats}
    return (meta, student_vars, student_opt, bank), loss


def _student_optimizer(lr: float) -> optax.GradientTransformation:
    return optax.adam(lr)


class Result(NamedTuple):
    """What :func:`synthesize` returns.

    Attributes:
        images: (N, H, W, 3) in [0, 1], ``images[i]`` synthesized for ``targets[i]`` (the bank after the
            last round).
        history: ``[(round, generator loss)]`` at chunk ends (the last inner step's loss).
        generator: the meta-learned initialization (the generator's parameters; :func:`sample` runs it).
        student: the co-trained student's variables (None without a student).
        resumed_from: the round a checkpoint resumed from (0: a fresh start).
    """

    images: jax.Array
    history: list[tuple[int, float]]
    generator: Any
    student: Any
    resumed_from: int = 0


def synthesize(key: jax.Array, model, variables, targets: Sequence[int] | jax.Array, *, rounds: int = 20,
               student: tuple | None = None, size: int | None = None, settings: Settings = Settings(),
               chunk: int = 10, progress: bool | None = None, checkpoint: str | os.PathLike | None = None,
               callback: Callable[[int, float], None] | None = None) -> Result:
    """One image per target class from the network alone, made by a meta-learned generator (Fast-DFKD).

    Args:
        key: PRNG key (the generator's initialization, each round's noise and rolls, the student's batches).
        model, variables: the frozen teacher, a jaxviz model with BatchNorm layers, and its weights.
        targets: (N,) class indices, one per image of the bank.
        rounds: synthesis rounds of ``settings.batch_size`` images each (``rounds * batch_size >= N`` fills
            the bank; more rounds refresh it with a better generator and train the student longer).
        student: ``(model, variables)`` of the student trained alongside (its module takes ``train=True``,
            as :func:`jaxviz.datafree.training.fit` needs), the adversary of the generator; required when
            ``settings.adv > 0``.
        size: image side (default: the model's input size; divisible by 8).
        settings: the generator, its losses and its schedule (:class:`Settings`).
        chunk: rounds per compiled chunk (between progress updates and checkpoints).
        checkpoint: an orbax checkpoint directory; a run that finds one made by the same call resumes there and
            ends with the uninterrupted run's images.
        callback: ``callback(round, loss)`` for every round.

    Returns:
        A :class:`Result`.
    """
    model.batch_norm_stats(variables)  # a clear error for a network without BatchNorm
    targets = jnp.asarray(targets, jnp.int32).reshape(-1)
    if targets.size == 0 or int(targets.min()) < 0 or int(targets.max()) >= model.num_classes:
        raise ValueError(f"targets must be class indices in [0, {model.num_classes})")
    if settings.adv and student is None:
        raise ValueError("settings.adv > 0 needs a student=(model, variables) (the generator's adversary); pass "
                         "one or set adv=0.0")
    for name in ("batch_size", "inner_steps"):
        if getattr(settings, name) < 1:
            raise ValueError(f"settings.{name} must be at least 1, got {getattr(settings, name)}")
    if student is not None and settings.student_batch < 1:
        raise ValueError(f"settings.student_batch must be at least 1, got {settings.student_batch}")
    size = size or model.input_size
    module = _module(model.num_classes, size, settings)
    student_model, student_vars = (None, None) if student is None else student
    n = targets.shape[0]
    batch = min(settings.batch_size, n)
    k_init, k_loop = jax.random.split(key)
    meta = init_generator(k_init, model.num_classes, size, settings)
    student_opt = None if student is None else _student_optimizer(settings.student_lr).init(student_vars["params"])
    bank = jnp.zeros((n, size, size, 3), jnp.float32)
    fingerprint = repr((np.asarray(jax.random.key_data(key)).tolist(), np.asarray(targets).tolist(), size, rounds,
                        settings, model.name, None if student is None else student_model.name))
    step = loop.step(_round, module=module, teacher=model, student=student_model, settings=settings, batch=batch)
    data = {"key": k_loop, "targets": targets, "teacher_variables": variables}
    out = loop.run(step, (meta, student_vars, student_opt, bank), data, steps=rounds, chunk=chunk,
                   desc="generator", kind="training", progress=progress, checkpoint=checkpoint,
                   fingerprint=fingerprint, callback=callback, what="generator run")
    meta, student_vars, _, bank = out.carry
    return Result(bank, out.history, meta, student_vars, out.resumed_from)
