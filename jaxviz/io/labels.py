"""Class labels and top-k predictions (labels need no JAX: the command line checks them before it loads)."""

from __future__ import annotations

import functools
from importlib import resources

import numpy as np

__all__ = ["imagenet_labels", "labels_for", "top_k"]


@functools.cache
def imagenet_labels() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class names, index-aligned with the logits."""
    text = resources.files("jaxviz.io").joinpath("data/imagenet_classes.txt").read_text()
    return tuple(line for line in text.splitlines() if line)


def labels_for(model) -> tuple[str, ...]:
    if model.labels == "imagenet":
        return imagenet_labels()
    return tuple(str(i) for i in range(model.num_classes))


def top_k(model, logits, k: int = 5) -> list[list[dict]]:
    """Best ``k`` classes per image: ``[[{"class", "label", "prob"}, ...], ...]``, best first."""
    import jax
    import jax.numpy as jnp

    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    probs = np.asarray(jax.nn.softmax(jnp.asarray(logits, jnp.float32), axis=-1))
    names = labels_for(model)
    order = np.argsort(-probs, axis=-1)[:, :k]
    return [[{"class": int(c), "label": names[c], "prob": float(p[c])} for c in row]
            for p, row in zip(probs, order, strict=True)]
