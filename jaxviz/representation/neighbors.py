"""Nearest neighbours in feature space vs pixel space.

The seeds' point: a trained network's penultimate features put images of one
class close together, where raw pixels do not (a digit moved by a few pixels
is far from itself in pixel space). :func:`knn` finds the k nearest rows of a
database for each query (Euclidean, batched, jitted); :func:`label_agreement`
is the fraction of those neighbours that share the query's label.

:func:`jaxviz.experiments.digits_neighbors.run` is the offline demonstration
on scikit-learn's digits.

Example:
    >>> idx, dist = knn(query_features, database_features, k=5)   # doctest: +SKIP
    >>> label_agreement(idx, query_labels, database_labels)        # doctest: +SKIP
    0.97
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["knn", "label_agreement", "features"]


@functools.partial(jax.jit, static_argnames="k")
def _knn_block(queries, database, *, k):
    d2 = (jnp.sum(queries ** 2, axis=1, keepdims=True) - 2 * queries @ database.T
          + jnp.sum(database ** 2, axis=1)[None])
    neg, idx = jax.lax.top_k(-d2, k)
    return idx, jnp.sqrt(jnp.maximum(-neg, 0.0))


def knn(queries, database, k: int = 5, block: int = 1024, exclude_self: bool = False):
    """Indices (Q, k) and Euclidean distances (Q, k) of each query's k nearest database rows, nearest first.

    Inputs are flattened to (N, D). ``exclude_self``: queries are the database (same order) and each row's
    own index is skipped.
    """
    q = jnp.asarray(queries, jnp.float32).reshape(len(queries), -1)
    db = jnp.asarray(database, jnp.float32).reshape(len(database), -1)
    if q.shape[1] != db.shape[1]:
        raise ValueError(f"queries have {q.shape[1]} features, the database {db.shape[1]}")
    if not 1 <= k + exclude_self <= len(db):
        raise ValueError(f"k must be in [1, {len(db) - exclude_self}], got {k}")
    idx, dist = [], []
    for start in range(0, len(q), block):
        i, d = _knn_block(q[start:start + block], db, k=k + exclude_self)
        idx.append(np.asarray(i))
        dist.append(np.asarray(d))
    idx, dist = np.concatenate(idx), np.concatenate(dist)
    if exclude_self:
        own = idx == np.arange(len(idx))[:, None]
        keep = ~own
        keep[own.sum(1) == 0, -1] = False  # self not among the k+1: drop the farthest
        idx, dist = idx[keep].reshape(len(idx), k), dist[keep].reshape(len(idx), k)
    return idx, dist


def label_agreement(indices, query_labels, database_labels) -> float:
    """The fraction of neighbours (all queries, all k) whose label is the query's."""
    indices = np.asarray(indices)
    return float(np.mean(np.asarray(database_labels)[indices] == np.asarray(query_labels)[:, None]))


def features(model, variables, images, layer: str, batch_size: int = 256) -> np.ndarray:
    """(N, D) activations of ``layer`` for (N, H, W, 3) images (:func:`.features.extract`, unpooled)."""
    from jaxviz.representation import features as data_features

    out = data_features.extract(model, variables, data_features.Arrays(images), layer, batch_size=batch_size,
                                shard=max(batch_size, len(images)), pool=False, progress=False)
    return out.features
