"""RISE: randomized input sampling for explanation (Petsiuk et al., BMVC 2018).

The map is the expectation of the class's probability over randomly masked copies of the image, each pixel
weighted by how visible it was::

    S(p) = 1 / (N keep) * sum_i f(x * M_i) M_i(p)

Each mask ``M_i`` is a ``cells x cells`` grid of independent Bernoulli(``keep``) cells, bilinearly upsampled to
``(cells + 1) * ceil(H / cells)`` pixels and cropped at a random shift below one cell (so the cells' edges fall
anywhere, not on a fixed grid), exactly the paper's recipe. Mask ``i`` is :func:`rise_masks` ``(key, i, ...)``:
the same key gives the same masks, in any batch size, and every image of a batch sees the same masks.

The masked copies are scored ``batch_size`` images per forward pass in a ``lax.scan``, so memory does not grow
with ``masks``. The paper uses 4000 masks of 7 x 7 cells at 224 px for ResNet-50; fewer give a noisier map (the
error of a mean of N draws).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from jaxviz.core.batching import chunked_sum, per_pass, tile_target
from jaxviz.core.objectives import Objective, Target, class_scores, score

__all__ = ["rise", "rise_masks"]


def rise_masks(key: jax.Array, index: jax.Array, height: int, width: int, cells: int = 7,
               keep: float = 0.5, dtype=jnp.float32) -> jax.Array:
    """Mask ``index`` of the sequence ``key`` draws: (height, width) in [0, 1]."""
    k_grid, k_shift = jax.random.split(jax.random.fold_in(key, index))
    cell_h, cell_w = math.ceil(height / cells), math.ceil(width / cells)
    grid = jax.random.bernoulli(k_grid, keep, (cells, cells)).astype(dtype)
    up = jax.image.resize(grid, ((cells + 1) * cell_h, (cells + 1) * cell_w), "linear")
    dy = jax.random.randint(k_shift, (), 0, cell_h)
    dx = jax.random.randint(jax.random.fold_in(k_shift, 1), (), 0, cell_w)
    return jax.lax.dynamic_slice(up, (dy, dx), (height, width))


def rise(key: jax.Array, model, variables, images: jax.Array, target: Target, *, masks: int = 4000,
         cells: int = 7, keep: float = 0.5, probability: bool = True, batch_size: int | None = None) -> jax.Array:
    """RISE saliency: (B, H, W), the expected score of the masked images where each pixel was visible.

    Args:
        key: a PRNG key; mask ``i`` is :func:`rise_masks` ``(key, i, H, W, cells, keep)``.
        target: an int, one int per image, or an objective (then its value is the score).
        masks: number of random masks ``N``.
        cells: the masks' grid side (the paper's ``s``).
        keep: the probability that a cell is visible (the paper's ``p``).
        probability: score a class by its softmax probability (the paper's), else by its logit.
        batch_size: images per forward pass.
    """
    if masks < 1 or cells < 1 or not 0 < keep <= 1:
        raise ValueError(f"rise needs masks >= 1, cells >= 1 and 0 < keep <= 1; got {masks}, {cells}, {keep}")
    b, h, w = images.shape[:3]

    def scores_of(masked, reps):
        tiled = tile_target(target, reps, b)
        if isinstance(target, Objective) or not probability:
            return score(model, variables, masked, tiled)
        return jnp.exp(class_scores(jax.nn.log_softmax(model.apply(variables, masked)), tiled))

    def chunk(idx):
        m = jax.vmap(lambda i: rise_masks(key, i, h, w, cells, keep, images.dtype))(idx)  # (k, H, W)
        masked = (images[None] * m[:, None, :, :, None]).reshape(-1, *images.shape[1:])
        s = scores_of(masked, len(idx)).reshape(len(idx), b)
        return s[:, :, None, None] * m[:, None]  # (k, B, H, W)

    total = chunked_sum(chunk, masks, per_pass(batch_size, b), (b, h, w), images.dtype)
    return total / (masks * keep)

