"""ROAD: remove and debias (Rong et al., ICML 2022), as pytorch-grad-cam's ``ROADMostRelevantFirst`` and
``ROADLeastRelevantFirst`` define it, or as Quantus's ``ROAD``.

Removed pixels are not set to a constant (which a network can detect by its edges) but imputed: each becomes the
weighted mean of its 8 neighbours (weight 1/6 for the 4 direct ones, 1/12 for the diagonals), all removed pixels
solved for at once, plus Gaussian ``noise``. The linear system is the same for every channel, symmetric and
diagonally dominant; it is solved here matrix-free by conjugate gradients on the pixel grid (the references build
a sparse matrix and call SciPy), so imputation runs inside ``jit`` and ``vmap``.

pytorch-grad-cam's score (the default) is the target's change, imputed minus original (negative: the score
fell), for a removal threshold at the ``percentile`` of the map: MoRF removes pixels at or above it (percentile
80 removes about the top 20 %), LeRF removes those at or below the ``100 - percentile`` one (percentile 20
removes about the least relevant 80 %). Several percentiles give their mean, as pytorch-grad-cam's
``ROAD*Average``.

Quantus's curve: ``percentages=`` (its default ``range(1, 100, 2)``) removes exactly the ``int(H * W * p / 100)``
most relevant pixels (ties by raster order), ``output="accuracy"`` scores whether the imputed image is still
classified as the target, and ``curve=True`` keeps one score per percentage; Quantus reports their mean over the
images. Its metric (0.6) indexes pixels by the positions of the map broadcast to every channel, which fails
(an IndexError in its imputation) on images of more than one channel: compare on grayscale images.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxviz.metrics._common import check_inputs, class_indices, ranks, target_scores, variant_scores

__all__ = ["road", "impute", "NEIGHBOURS"]

#: (row offset, column offset, weight) of the imputation's neighbours.
NEIGHBOURS = ((-1, -1, 1 / 12), (-1, 1, 1 / 12), (1, -1, 1 / 12), (1, 1, 1 / 12),
              (0, -1, 1 / 6), (0, 1, 1 / 6), (-1, 0, 1 / 6), (1, 0, 1 / 6))


def _shift(x: jax.Array, dr: int, dc: int) -> jax.Array:
    """``out[r, c] = x[r + dr, c + dc]``, zero outside the image (x: (H, W, ...))."""
    h, w = x.shape[:2]
    pad = [(max(-dr, 0), max(dr, 0)), (max(-dc, 0), max(dc, 0))] + [(0, 0)] * (x.ndim - 2)
    return jnp.pad(x, pad)[max(dr, 0):max(dr, 0) + h, max(dc, 0):max(dc, 0) + w]


def impute(image: jax.Array, removed: jax.Array, *, tol: float = 1e-7, maxiter: int = 5000) -> jax.Array:
    """``image`` (H, W, C) with the ``removed`` (H, W) pixels replaced by the solution of the neighbour-mean system
    (no noise). Each removed pixel v_i solves ``S_i v_i - sum_{removed j} w_j v_j = sum_{kept j} w_j x_j`` over its
    in-image neighbours j, S_i the sum of their weights."""
    removed = removed.astype(image.dtype)
    kept = 1.0 - removed
    inside = jnp.ones(removed.shape, image.dtype)
    total = sum(w * _shift(inside, dr, dc) for dr, dc, w in NEIGHBOURS)  # S_i

    def operator(v):  # identity on kept pixels, the system on removed ones
        v = v * removed[..., None]
        mixed = sum(w * _shift(v, dr, dc) for dr, dc, w in NEIGHBOURS)
        return removed[..., None] * (total[..., None] * v - mixed) + kept[..., None] * v

    rhs = removed[..., None] * sum(w * _shift(image * kept[..., None], dr, dc) for dr, dc, w in NEIGHBOURS)
    precondition = 1.0 / jnp.where(removed > 0, total, 1.0)[..., None]
    solution, _ = jax.scipy.sparse.linalg.cg(operator, rhs, x0=image * removed[..., None], tol=tol, maxiter=maxiter,
                                             M=lambda r: precondition * r)
    return jnp.where(removed[..., None] > 0, solution, image)


def _removed(cam: jax.Array, percentile: float, order: str) -> jax.Array:
    if order == "morf":
        return cam >= jnp.percentile(cam, percentile)
    inverted = 1.0 - cam  # pytorch-grad-cam ranks 1 - cam, literally (rounding at ties matters)
    return inverted >= jnp.percentile(inverted, percentile)


def _levels(values, what: str) -> np.ndarray:
    levels = np.atleast_1d(np.asarray(values, np.float64))
    if levels.ndim != 1 or not levels.size or not np.all((levels >= 0) & (levels <= 100)):
        raise ValueError(f"{what} must be in [0, 100], got {values!r}")
    return levels


def road(model, variables, images, target, maps, *, percentiles: float | Sequence[float] | None = None,
         order: str = "morf", noise: float = 0.01, key: jax.Array | None = None, batch_size: int | None = None,
         output: str = "logit", percentages: float | Sequence[float] | None = None,
         curve: bool = False) -> jax.Array:
    """(B,) the target's change (imputed minus original) when ROAD removes the pixels the map ranks first
    (``order="morf"``) or last (``"lerf"``), averaged over ``percentiles`` (or ``percentages``).

    Args:
        maps: (B, H, W) relevance (pytorch-grad-cam passes CAMs in [0, 1]).
        percentiles: the removal threshold(s) in [0, 100] (defaults: pytorch-grad-cam's 80 for MoRF; pass 20 for
            its LeRF default, or ``range(10, 100, 10)`` for its averages).
        percentages: instead of ``percentiles``, Quantus's removal: the ``int(H * W * p / 100)`` pixels ranked
            first (MoRF) or last (LeRF), for each ``p`` in [0, 100].
        noise: standard deviation of the Gaussian noise added to imputed pixels (needs ``key`` when > 0).
        output: the score: ``"logit"`` (pytorch-grad-cam's ``ClassifierOutputTarget``), ``"probability"``, or
            ``"accuracy"`` (Quantus's: 1.0 where the imputed image's top class is the target; this one is the
            score itself, not a change).
        curve: return (B, P), one score per percentile or percentage, instead of their mean.

    Example (Quantus's ROAD curve, averaged over the images as it reports it)::

        road(model, variables, x, y, maps, percentages=range(1, 100, 2), output="accuracy", curve=True,
             key=key).mean(axis=0)
    """
    images, maps = check_inputs(images, maps)
    b, h, w = maps.shape
    target = class_indices(target, b)
    if order not in ("morf", "lerf"):
        raise ValueError(f'order must be "morf" or "lerf", got {order!r}')
    if percentiles is not None and percentages is not None:
        raise ValueError("pass percentiles (pytorch-grad-cam's thresholds) or percentages (Quantus's counts), "
                         "not both")
    if percentages is None:
        levels = jnp.asarray(_levels(80.0 if percentiles is None else percentiles, "percentiles"), maps.dtype)
        count = len(levels)

        def removed_at(k):
            return jax.vmap(lambda m: _removed(m, levels[k], order))(maps)
    else:
        fractions = _levels(percentages, "percentages")
        counts = jnp.asarray([int(h * w * p / 100) for p in fractions.tolist()])  # as Quantus rounds them
        rank = ranks(maps, descending=order == "morf")
        count = len(fractions)

        def removed_at(k):
            return rank < counts[k]
    if noise < 0 or (noise > 0 and key is None):
        raise ValueError("noise must be >= 0, and noise > 0 needs a key")
    keys = jax.random.split(jax.random.key(0) if key is None else key, count)

    def variant(k):
        removed = removed_at(k)
        filled = jax.vmap(impute)(images, removed)
        jitter = noise * jax.random.normal(keys[k], images.shape, images.dtype) if noise else 0.0
        return jnp.where(removed[..., None], filled + jitter, images)

    after = variant_scores(model, variables, target, variant, count, b, batch_size=batch_size, output=output)
    if output != "accuracy":
        after = after - target_scores(model, variables, images, target, output)[:, None]
    return after if curve else jnp.mean(after, axis=1)
