"""scikit-learn's digits as RGB images, and a small CNN trained on them in seconds.

The data set ships inside scikit-learn (1,797 grey 8x8 digits, no download), so
experiments that need a network trained end to end (data-free distillation,
feature-space neighbours) run anywhere. :func:`load` upsamples the digits to
32x32 (bilinear), scales them to [0, 1] and repeats the grey channel;
:func:`teacher` trains the small CNN of :mod:`jaxviz.models.digits` on them
(:func:`jaxviz.datafree.training.fit`).

Example:
    >>> data = digits.load()                                               # doctest: +SKIP
    >>> model, variables = digits.teacher(jax.random.key(0), data)         # doctest: +SKIP
    >>> digits.accuracy(model, variables, data.test_images, data.test_labels)  # doctest: +SKIP
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxviz.datafree import training
from jaxviz.models import digits_cnn as digits_model

__all__ = ["Digits", "load", "teacher", "accuracy", "predict", "one_hot", "TEACHER_STEPS"]

#: Adam steps of the teacher (batch 64): about 22 passes over the training digits.
TEACHER_STEPS = 500


class Digits(NamedTuple):
    """Train and held-out test split: images (N, S, S, 3) float32 in [0, 1], labels (N,) int32."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray


def load(size: int = digits_model.INPUT_SIZE, test_fraction: float = 0.2, seed: int = 0) -> Digits:
    """The digits, upsampled to ``size`` px, split per class with a fixed shuffle (``seed``)."""
    from sklearn.datasets import load_digits

    raw = load_digits()
    grey = raw.images.astype(np.float32) / 16.0
    up = np.asarray(jax.image.resize(jnp.asarray(grey), (grey.shape[0], size, size), "bilinear"))
    images = np.repeat(np.clip(up, 0.0, 1.0)[..., None], 3, axis=-1)
    labels = raw.target.astype(np.int32)
    rng = np.random.default_rng(seed)
    test = np.zeros(len(labels), bool)
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        test[idx[: round(test_fraction * len(idx))]] = True
    return Digits(images[~test], labels[~test], images[test], labels[test])


def one_hot(labels, num_classes: int = 10) -> jax.Array:
    return jax.nn.one_hot(jnp.asarray(labels), num_classes)


@functools.partial(jax.jit, static_argnames=("model",))
def _logits(variables, images, *, model):
    return model.apply(variables, images)


def predict(model, variables, images, batch: int = 512) -> np.ndarray:
    """Logits of ``images`` in batches (inference mode)."""
    images = jnp.asarray(images, jnp.float32)
    return np.concatenate([np.asarray(_logits(variables, images[i:i + batch], model=model))
                           for i in range(0, images.shape[0], batch)])


def accuracy(model, variables, images, labels) -> float:
    """Top-1 accuracy on ``images``."""
    return float(np.mean(predict(model, variables, images).argmax(-1) == np.asarray(labels)))


def teacher(key: jax.Array, data: Digits | None = None, steps: int = TEACHER_STEPS, max_shift: int = 2):
    """The digits CNN trained on the training split: ``(model, variables)``."""
    data = data if data is not None else load()
    model = digits_model.build()
    variables, _ = training.fit(key, model, data.train_images, one_hot(data.train_labels), steps=steps,
                                max_shift=max_shift)
    return model, variables
