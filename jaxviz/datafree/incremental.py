"""Data-free class-incremental learning: Always Be Dreaming's losses, and the baselines they are measured against.

Smith et al., "Always Be Dreaming: A New Approach for Data-Free Class-Incremental Learning" (ICCV 2021). Classes
arrive in tasks; after each task the model is frozen as the *previous model*, and its classes can be rehearsed
only from images synthesized from it (DeepInversion, :mod:`.deepinversion`, or a generator, :mod:`.generator`):
no real image of an old class is kept. :func:`learn_task` trains the model on one new task by one of
:data:`METHODS`:

* ``"finetune"``: cross-entropy over all classes seen so far on the new task's real images (the forgetting
  floor: nothing holds the old classes up);
* ``"replay"``: the same cross-entropy on the real images and on synthesized images of the old classes, labelled
  with the classes they were synthesized for (plain DeepInversion replay);
* ``"abd"``: the ABD recipe, three terms:

  - a *local* cross-entropy on the new task's real images over the new classes only
    (:func:`local_cross_entropy`), so learning them does not push the old classes' logits down against
    images that are not theirs;
  - the classifier head (alone: the features are held fixed, ``stop_gradient``) trained with the
    cross-entropy over all seen classes on real and synthesized images, which places the new classes against
    the old ones without letting the synthetic domain shape the features; both cross-entropies weighted so
    that every class counts the same (:func:`class_balance`);
  - importance-weighted feature distillation (:func:`feature_distillation`) against the frozen previous model
    on real and synthesized images: each feature weighted by how much the previous head relies on it
    (:func:`feature_importance`).

The features are the input of the head, a Dense module (``settings.head``), read with Flax's method
interception (the model is not edited). Every step draws ``batch_size`` real images and as many synthesized
ones, shifted at random, BatchNorm in training mode; the steps run on :func:`jaxviz.core.loop.run`.

Example:
    >>> first = incremental.learn_task(key, model, variables, x1, y1, new=[0, 1, 2, 3, 4])          # doctest: +SKIP
    >>> replay = deepinversion(key, model, first.variables, np.tile(np.arange(5), 20)).images       # doctest: +SKIP
    >>> second = incremental.learn_task(key, model, first.variables, x2, y2, new=[5, 6, 7, 8, 9],  # doctest: +SKIP
    ...                                 seen=range(10), previous=first.variables,
    ...                                 synthetic=(replay, np.tile(np.arange(5), 20)), method="abd")
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxviz.core import loop
from jaxviz.datafree import training

__all__ = ["METHODS", "Settings", "TaskResult", "learn_task", "local_cross_entropy", "feature_importance",
           "feature_distillation", "features_and_logits", "class_mask", "class_balance"]

METHODS = ("finetune", "replay", "abd")
_NEG = -1e9


@dataclasses.dataclass(frozen=True)
class Settings:
    """How one task is learned.

    Attributes:
        steps: optimizer steps per task.
        batch_size: real images per step (and as many synthesized ones, when there are).
        lr: Adam's learning rate, cosine-decayed to 0 over ``steps``.
        max_shift: random roll of every training image, in pixels.
        feature_weight: weight of ABD's importance-weighted feature distillation.
        head_weight: weight of ABD's head-only cross-entropy over all seen classes.
        head: name of the classifier, a Dense module whose input is the feature vector.
        class_balance: weight ABD's two cross-entropies per class (:func:`class_balance`): the old classes by
            their share of the seen ones, the new by theirs. Without it, 5 tasks of two digits kept 0.390 of
            all digits (seed 0) against 0.579 with it: the head favoured the new classes, which fill half of
            every batch.
    """

    steps: int = 500
    batch_size: int = 64
    lr: float = 3e-3
    max_shift: int = 2
    feature_weight: float = 1.0
    head_weight: float = 1.0
    head: str = "fc"
    class_balance: bool = True


class TaskResult(NamedTuple):
    """``variables`` after the task and ``history``: ``[(step, loss)]`` at chunk ends."""

    variables: Any
    history: list[tuple[int, float]]


def class_mask(classes: Iterable[int], num_classes: int) -> jax.Array:
    """(num_classes,) bool: True at ``classes``."""
    return jnp.zeros(num_classes, bool).at[jnp.asarray(list(classes), jnp.int32)].set(True)


def local_cross_entropy(logits: jax.Array, labels: jax.Array, mask: jax.Array) -> jax.Array:
    """(B,) cross-entropy over the classes where ``mask`` (C,) is True only (the others are left out of the
    softmax, so they get no gradient)."""
    log_p = jax.nn.log_softmax(jnp.where(mask, logits, _NEG))
    return -jnp.take_along_axis(log_p, labels[:, None], axis=1)[:, 0]


def class_balance(labels: jax.Array, old: jax.Array, seen: jax.Array) -> jax.Array:
    """(B,) weights of ABD's cross-entropies: ``n_old / n_seen`` for an image of an old class, ``n_new / n_seen``
    for one of a new class (masks (C,) of the old and the seen classes).

    A step draws as many real images of the few new classes as synthesized ones of the many old classes, so
    each new class has ``n_old / n_new`` times more images than each old class; these weights give every class
    the same total weight (the ABD authors' code does the same).
    """
    share = jnp.sum(old) / jnp.maximum(jnp.sum(seen), 1)
    return jnp.where(old[labels], share, 1.0 - share)


def feature_importance(kernel: jax.Array, old: jax.Array) -> jax.Array:
    """(F,) how much the previous head (kernel (F, C)) relies on each feature for the old classes (mask (C,)):
    the mean absolute weight over the old classes, scaled to mean 1."""
    w = jnp.sum(jnp.abs(kernel) * old, axis=1) / jnp.maximum(jnp.sum(old), 1)
    return w / jnp.maximum(jnp.mean(w), 1e-12)


def feature_distillation(features: jax.Array, previous: jax.Array, importance: jax.Array) -> jax.Array:
    """Scalar: the importance-weighted squared distance between (B, F) features and the previous model's, mean
    over the batch and the features."""
    return jnp.mean(importance * jnp.square(features - previous))


def features_and_logits(model, variables, images: jax.Array, *, head: str = "fc", train: bool = False):
    """The head's input features (B, F) and the logits (B, C) of a linen ``model`` on ``images`` in [0, 1].

    With ``train=True``, BatchNorm uses batch statistics and the third value is the new ``batch_stats``
    (None otherwise).
    """
    seen = {}

    def grab(next_fun, args, kwargs, context):
        if context.method_name == "__call__" and context.module.name == head and "features" not in seen:
            seen["features"] = args[0]
        return next_fun(*args, **kwargs)

    x = model.preprocessing(images)
    with nn.intercept_methods(grab):
        if train:
            logits, updates = model.module.apply(variables, x, train=True, mutable=["batch_stats"])
            stats = updates["batch_stats"]
        else:
            logits, stats = model.module.apply(variables, x), None
    if "features" not in seen:
        raise ValueError(f"{model.name} has no module named {head!r}: pass the name of its classifier (a Dense "
                         "layer) as settings.head")
    return seen["features"], logits, stats


def _loss(params, variables, x, y, xs, ys, data, *, model, method, settings):
    v = {"params": params, "batch_stats": variables["batch_stats"]}
    b = x.shape[0]
    both = x if xs is None else jnp.concatenate([x, xs])
    labels = y if ys is None else jnp.concatenate([y, ys])
    feats, logits, stats = features_and_logits(model, v, both, head=settings.head, train=True)
    if method != "abd":
        return jnp.mean(local_cross_entropy(logits, labels, data["seen"])), stats
    weights = (class_balance(labels, data["old"], data["seen"]) if settings.class_balance
               else jnp.ones(labels.shape[0]))
    local = jnp.mean(weights[:b] * local_cross_entropy(logits[:b], y, data["new"]))
    head = params[settings.head]
    head_logits = jax.lax.stop_gradient(feats) @ head["kernel"] + head["bias"]
    balanced = jnp.mean(weights * local_cross_entropy(head_logits, labels, data["seen"]))
    prev_feats, _, _ = features_and_logits(model, data["previous"], both, head=settings.head)
    prev_kernel = data["previous"]["params"][settings.head]["kernel"]
    fd = feature_distillation(feats, jax.lax.stop_gradient(prev_feats), feature_importance(prev_kernel, data["old"]))
    return local + settings.head_weight * balanced + settings.feature_weight * fd, stats


def _step(carry, i, data, *, model, tx, method, settings):
    variables, opt_state = carry
    k_real, k_syn, k_shift, k_shift_syn = jax.random.split(jax.random.fold_in(data["key"], i), 4)
    idx = jax.random.randint(k_real, (settings.batch_size,), 0, data["count"])
    x = training.shift(k_shift, data["images"][idx], settings.max_shift)
    y = data["labels"][idx]
    xs = ys = None
    if method != "finetune":
        j = jax.random.randint(k_syn, (settings.batch_size,), 0, data["synthetic_count"])
        xs = training.shift(k_shift_syn, data["synthetic"][j], settings.max_shift)
        ys = data["synthetic_labels"][j]
    (loss, stats), g = jax.value_and_grad(_loss, has_aux=True)(variables["params"], variables, x, y, xs, ys, data,
                                                               model=model, method=method, settings=settings)
    updates, opt_state = tx.update(g, opt_state, variables["params"])
    return ({"params": optax.apply_updates(variables["params"], updates), "batch_stats": stats}, opt_state), loss


def _padded(array, n: int):
    """``array`` padded with zeros to ``n`` rows (the steps draw only from the first rows: same shapes, one
    compiled step for tasks of different sizes)."""
    array = np.asarray(array)
    return np.concatenate([array, np.zeros((n - len(array), *array.shape[1:]), array.dtype)])


def _bucket(n: int) -> int:
    return max(256, 1 << (int(n) - 1).bit_length())


def learn_task(key: jax.Array, model, variables, images, labels, *, new: Iterable[int],
               seen: Iterable[int] | None = None, previous=None, synthetic: tuple | None = None,
               method: str = "finetune", settings: Settings = Settings(), progress: bool | None = False) -> TaskResult:
    """Trains ``model`` from ``variables`` on one task: its variables after the task.

    Args:
        key: PRNG key (batches, shifts).
        model, variables: a jaxviz linen model whose module takes ``train=True``, and where to start (the model
            after the previous task, or a fresh initialization for the first).
        images, labels: the new task's real images (N, H, W, 3) in [0, 1] and classes (N,).
        new: the new task's classes.
        seen: every class seen so far, the new ones included (default: ``new``, a first task).
        previous: the frozen previous model's variables (``"abd"``).
        synthetic: ``(images, labels)`` synthesized from the previous model for its classes (``"replay"``,
            ``"abd"``).
        method: one of :data:`METHODS`.
        settings: :class:`Settings`.

    Returns:
        A :class:`TaskResult`.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    new = sorted({int(c) for c in new})
    seen = sorted({int(c) for c in (new if seen is None else seen)})
    images, labels = np.asarray(images, np.float32), np.asarray(labels, np.int32).reshape(-1)
    if len(images) != len(labels) or not len(labels):
        raise ValueError(f"images and labels must be as many and not none, got {len(images)} and {len(labels)}")
    if not set(new) <= set(seen) or not set(labels.tolist()) <= set(new):
        raise ValueError("every label must be a new class, and every new class a seen one")
    if method != "finetune" and synthetic is None:
        raise ValueError(f"method {method!r} replays synthesized images of the old classes: pass "
                         "synthetic=(images, labels)")
    if method == "abd" and previous is None:
        raise ValueError("method 'abd' distills from the frozen previous model: pass previous=variables")
    if settings.batch_size < 1 or settings.steps < 0:
        raise ValueError(f"settings.batch_size must be >= 1 and settings.steps >= 0, got {settings.batch_size} and "
                         f"{settings.steps}")
    c = model.num_classes
    old = [k for k in seen if k not in new]
    n = _bucket(len(labels))
    data = {"key": key, "images": _padded(images, n), "labels": _padded(labels, n),
            "count": jnp.int32(len(labels)), "seen": class_mask(seen, c), "new": class_mask(new, c),
            "old": class_mask(old, c)}
    if method != "finetune":
        s_images, s_labels = np.asarray(synthetic[0], np.float32), np.asarray(synthetic[1], np.int32).reshape(-1)
        if len(s_images) != len(s_labels) or not len(s_labels):
            raise ValueError("synthetic images and labels must be as many and not none")
        n = _bucket(len(s_labels))
        data |= {"synthetic": _padded(s_images, n), "synthetic_labels": _padded(s_labels, n),
                 "synthetic_count": jnp.int32(len(s_labels))}
    if method == "abd":
        data["previous"] = previous
    tx = training.adam_cosine(settings.lr, settings.steps)
    step = loop.step(_step, model=model, tx=tx, method=method, settings=settings)
    out = loop.run(step, (variables, tx.init(variables["params"])), data, steps=settings.steps, chunk=50,
                   desc=f"task ({method})", kind="training", progress=progress)
    return TaskResult(out.carry[0], out.history)
