"""Faithfulness: does removing what the map calls relevant change the score the most?

Every function here is ``f(model, variables, images, target, maps, **options)`` and returns one value per image
(or a curve per image where ``curve=True``), as one ``jit``-able program; perturbed copies are scored
``batch_size`` images per forward pass (:func:`._common.variant_scores`).

* :func:`deletion` / :func:`insertion` (Petsiuk et al., RISE, BMVC 2018): remove (insert) pixels from the most
  relevant down, ``pixels_per_step`` at a time; the area under the target's probability curve over the removed
  fraction in [0, 1]. Lower deletion and higher insertion are better.
* :func:`pixel_flipping` (Bach et al. 2015, as Quantus's ``PixelFlipping``): the probability after each step, the
  first point already perturbed; ``auc=True`` integrates it with unit spacing as Quantus does.
* :func:`region_perturbation` (Samek et al. 2017, Quantus's ``RegionPerturbation``): whole ``patch`` x ``patch``
  regions in the order of their summed relevance; the curve is the drop from the unperturbed score.
* :func:`faithfulness_correlation` (Bhatt et al. 2020, Quantus's ``FaithfulnessCorrelation``) and
  :func:`mu_fidelity` (Xplique's ``MuFidelity``, grid cells instead of pixels): the Pearson correlation, over
  random subsets, between the relevance the subset holds and the logit drop when it is removed.

Quantus ranks and perturbs channel elements of a map copied to every channel; here a pixel is one feature (its
three channels move together). The two agree when Quantus's ``features_in_step`` is three times
``pixels_per_step`` (and for subsets, when Quantus's subset is a subset of whole pixels): the parity tests
check exactly that.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxviz.metrics._common import baseline as baseline_value  # the metrics' option is called baseline
from jaxviz.metrics._common import (
    check_inputs,
    class_indices,
    ranks,
    target_scores,
    trapezoid,
    variant_scores,
)

__all__ = ["deletion", "insertion", "pixel_flipping", "region_perturbation", "faithfulness_correlation",
           "mu_fidelity", "random_subsets", "grid_subsets"]


def _switch_curve(model, variables, images, target, rank, counts, start, end, batch_size, output):
    """(B, len(counts)): the score after switching the pixels of rank < counts[k] from ``start`` to ``end``."""
    counts = jnp.asarray(counts)

    def variant(k):
        mask = (rank < counts[k])[..., None]
        return jnp.where(mask, end, start)

    return variant_scores(model, variables, target, variant, len(counts), images.shape[0], batch_size=batch_size,
                          output=output)


def _steps(h: int, w: int, pixels_per_step: int | None) -> tuple[int, int]:
    step = w if pixels_per_step is None else int(pixels_per_step)
    if not 1 <= step <= h * w:
        raise ValueError(f"pixels_per_step must be in [1, {h * w}] (the pixels of an image), got {pixels_per_step}")
    return step, -(-h * w // step)


def _rise_curve(model, variables, images, target, maps, *, insert, pixels_per_step, baseline_, blur_sigma, key,
                batch_size, curve):
    images, maps = check_inputs(images, maps)
    b, h, w, _ = images.shape
    target = class_indices(target, b)
    step, n = _steps(h, w, pixels_per_step)
    base = jnp.broadcast_to(baseline_value(images, baseline_, key, blur_sigma), images.shape)
    start, end = (base, images) if insert else (images, base)
    counts = jnp.minimum(jnp.arange(n + 1) * step, h * w)
    scores = _switch_curve(model, variables, images, target, ranks(maps), counts, start, end, batch_size,
                           "probability")
    return scores if curve else trapezoid(scores, 1.0 / n)


def deletion(model, variables, images, target, maps, *, pixels_per_step: int | None = None, baseline="zeros",
             blur_sigma: float = 10.0, key: jax.Array | None = None, batch_size: int | None = None,
             curve: bool = False) -> jax.Array:
    """RISE's deletion score: (B,) area under the probability as the most relevant pixels are removed.

    Args:
        maps: (B, H, W) relevance (or with a channel axis, averaged).
        pixels_per_step: pixels removed per step (default: one image row's worth, as RISE's 224 at 224 px).
        baseline: what removed pixels become: ``"zeros"`` (RISE), ``"blur"``, ``"mean"``, ``"black"``,
            ``"uniform"`` (needs ``key``) or a number (see :func:`._common.baseline`).
        curve: return the (B, n + 1) probabilities instead, from the intact image to the fully removed one.
    """
    return _rise_curve(model, variables, images, target, maps, insert=False, pixels_per_step=pixels_per_step,
                       baseline_=baseline, blur_sigma=blur_sigma, key=key, batch_size=batch_size, curve=curve)


def insertion(model, variables, images, target, maps, *, pixels_per_step: int | None = None, baseline="blur",
              blur_sigma: float = 10.0, key: jax.Array | None = None, batch_size: int | None = None,
              curve: bool = False) -> jax.Array:
    """RISE's insertion score: (B,) area under the probability as the most relevant pixels are put back onto
    ``baseline`` (default a blurred copy, as RISE). Options as :func:`deletion`."""
    return _rise_curve(model, variables, images, target, maps, insert=True, pixels_per_step=pixels_per_step,
                       baseline_=baseline, blur_sigma=blur_sigma, key=key, batch_size=batch_size, curve=curve)


def pixel_flipping(model, variables, images, target, maps, *, pixels_per_step: int = 1, baseline="black",
                   key: jax.Array | None = None, batch_size: int | None = None, auc: bool = False) -> jax.Array:
    """Quantus's pixel flipping: (B, T) the probability after each of ``T = ceil(H W / pixels_per_step)`` cumulative
    removals, most relevant first (the unperturbed score is not a point); ``auc=True``: (B,) their unit-spacing
    trapezoid area (Quantus's ``return_auc_per_sample``). Quantus's ``features_in_step`` is ``3 * pixels_per_step``.
    """
    images, maps = check_inputs(images, maps)
    b, h, w, _ = images.shape
    target = class_indices(target, b)
    step, n = _steps(h, w, pixels_per_step)
    base = jnp.broadcast_to(baseline_value(images, baseline, key), images.shape)
    counts = jnp.minimum(jnp.arange(1, n + 1) * step, h * w)
    scores = _switch_curve(model, variables, images, target, ranks(maps), counts, images, base, batch_size,
                           "probability")
    return trapezoid(scores) if auc else scores


def _patch_ids(h: int, w: int, patch: int) -> tuple[jax.Array, int]:
    """(H, W) the region index of each pixel on Quantus's grid (padded to a multiple of ``patch``, the padding
    split floor/ceil around the image), and the number of regions."""
    pad_h, pad_w = (-h) % patch, (-w) % patch
    rows = (jnp.arange(h) + pad_h // 2) // patch
    cols = (jnp.arange(w) + pad_w // 2) // patch
    n_cols = (w + pad_w) // patch
    return rows[:, None] * n_cols + cols[None, :], ((h + pad_h) // patch) * n_cols


def region_perturbation(model, variables, images, target, maps, *, patch: int = 8, order: str = "morf",
                        regions: int = 100, baseline="black", key: jax.Array | None = None,
                        batch_size: int | None = None) -> jax.Array:
    """Quantus's region perturbation: (B, R) the probability drop from the intact image after each of the first
    ``R = min(regions, number of regions)`` cumulative removals of a ``patch`` x ``patch`` region, in order of
    summed relevance, ``"morf"`` (most relevant first) or ``"lerf"`` (least relevant first)."""
    images, maps = check_inputs(images, maps)
    b, h, w, _ = images.shape
    target = class_indices(target, b)
    if not 1 <= patch <= min(h, w):
        raise ValueError(f"patch must be in [1, {min(h, w)}], got {patch}")
    if order not in ("morf", "lerf"):
        raise ValueError(f'order must be "morf" or "lerf", got {order!r}')
    ids, n_regions = _patch_ids(h, w, patch)
    sums = jax.vmap(lambda m: jnp.zeros(n_regions, m.dtype).at[ids.ravel()].add(m.ravel()))(maps)  # (B, regions)
    region_rank = ranks(sums[:, None, :], descending=order == "morf")[:, 0, :]
    pixel_rank = jnp.take_along_axis(region_rank, jnp.broadcast_to(ids.ravel(), (b, h * w)), axis=1)
    count = min(int(regions), n_regions)
    if count < 1:
        raise ValueError(f"regions must be >= 1, got {regions}")
    base = jnp.broadcast_to(baseline_value(images, baseline, key), images.shape)
    before = target_scores(model, variables, images, target)
    after = _switch_curve(model, variables, images, target, pixel_rank.reshape(b, h, w), jnp.arange(1, count + 1),
                          images, base, batch_size, "probability")
    return before[:, None] - after


def random_subsets(key: jax.Array, batch: int, h: int, w: int, runs: int, subset_size: int) -> jax.Array:
    """(runs, B, H, W) bool: ``subset_size`` pixels drawn without replacement, per run and image."""
    if not 1 <= subset_size < h * w:
        raise ValueError(f"subset_size must be in [1, {h * w}), got {subset_size}")
    u = jax.random.uniform(key, (runs, batch, h * w))
    chosen = jax.lax.top_k(-u, subset_size)[1]  # the smallest draws: the set argsort would pick, 40x faster on CPU
    mask = jnp.zeros((runs, batch, h * w), bool)
    mask = jax.vmap(jax.vmap(lambda m, c: m.at[c].set(True)))(mask, chosen)
    return mask.reshape(runs, batch, h, w)


def grid_subsets(key: jax.Array, batch: int, h: int, w: int, runs: int, grid: int = 9,
                 fraction: float = 0.2) -> jax.Array:
    """(runs, B, H, W) bool: a random ``fraction`` of the cells of a ``grid`` x ``grid`` partition (Xplique's
    MuFidelity), per run and image."""
    if not 1 <= grid <= min(h, w):
        raise ValueError(f"grid must be in [1, {min(h, w)}], got {grid}")
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    cells = random_subsets(key, batch, grid, grid, runs, max(1, int(round(fraction * grid * grid))))
    rows, cols = (jnp.arange(h) * grid) // h, (jnp.arange(w) * grid) // w
    return cells[:, :, rows[:, None], cols[None, :]]


def _pearson(a: jax.Array, b: jax.Array) -> jax.Array:
    a, b = a - a.mean(-1, keepdims=True), b - b.mean(-1, keepdims=True)
    return jnp.sum(a * b, -1) / jnp.sqrt(jnp.sum(a * a, -1) * jnp.sum(b * b, -1))


def faithfulness_correlation(model, variables, images, target, maps, *, runs: int = 100, subset_size: int = 224,
                             baseline="black", key: jax.Array | None = None, subsets: jax.Array | None = None,
                             batch_size: int | None = None, output: str = "logit") -> jax.Array:
    """(B,) Pearson correlation over ``runs`` random pixel subsets between the relevance each subset holds and the
    drop in the target's logit when the subset alone is set to ``baseline`` (Quantus's defaults: 100 runs of 224,
    black, logits). ``subsets``: (runs, B, H, W) bool masks instead of drawing them from ``key``."""
    images, maps = check_inputs(images, maps)
    b, h, w, _ = images.shape
    target = class_indices(target, b)
    if subsets is None:
        if key is None:
            raise ValueError("faithfulness_correlation draws random subsets: pass key= (or subsets=)")
        subsets = random_subsets(key, b, h, w, runs, subset_size)
    subsets = jnp.asarray(subsets, bool)
    if subsets.ndim != 4 or subsets.shape[1:] != (b, h, w):
        raise ValueError(f"subsets must be (runs, B, H, W) = (runs, {b}, {h}, {w}), got {subsets.shape}")
    base = jnp.broadcast_to(baseline_value(images, baseline, key), images.shape)
    before = target_scores(model, variables, images, target, output)
    after = variant_scores(model, variables, target, lambda r: jnp.where(subsets[r][..., None], base, images),
                           subsets.shape[0], b, batch_size=batch_size, output=output)
    held = jnp.einsum("rbhw,bhw->br", subsets.astype(maps.dtype), maps)
    return _pearson(held, before[:, None] - after)


def mu_fidelity(model, variables, images, target, maps, *, runs: int = 200, grid: int = 9, fraction: float = 0.2,
                baseline="zeros", key: jax.Array | None = None, batch_size: int | None = None,
                output: str = "logit") -> jax.Array:
    """Xplique's MuFidelity: :func:`faithfulness_correlation` over random ``fraction``s of a ``grid`` x ``grid``
    partition of the image (200 runs, 9 x 9, 20 %, zeros by default)."""
    if key is None:
        raise ValueError("mu_fidelity draws random subsets: pass key=")
    images = jnp.asarray(images)
    b, h, w = images.shape[:3]
    subsets = grid_subsets(key, b, h, w, runs, grid, fraction)
    return faithfulness_correlation(model, variables, images, target, maps, subsets=subsets, baseline=baseline,
                                    key=key, batch_size=batch_size, output=output)
