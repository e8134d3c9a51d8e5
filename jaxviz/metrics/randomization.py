"""Sanity checks (Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS 2018): does the map depend on what
the network learned, and on the class it explains?

* :func:`model_parameter_randomization`: re-draw the network's parameter groups from the output down
  (``cascading``, each step keeping the earlier re-draws) or one at a time (``independent``), explain again, and
  compare with the original map. A method that explains the *model* decorrelates as its top layers go; one that
  mostly reconstructs the *image* (the paper's finding for guided backprop) stays similar.
* :func:`random_logit` (Quantus's ``RandomLogit``): explain a random other class and compare.

Works on any model: the parameter groups are the top-level entries of ``variables["params"]`` (or of
``variables`` when it has no ``"params"``), or with ``layers=True`` every innermost dict that holds arrays (one
convolution, one BatchNorm: ``"blocks.0/bn1"``), in the order the forward pass first reads them
(:func:`jaxviz.models.interpret.first_uses`). A re-drawn array keeps its shape, mean and standard deviation:
``mean + std * truncated_normal(-2, 2)``, a fresh draw from the layer's own scale (the paper re-initializes
with the architecture's truncated-normal initializer); BatchNorm statistics are kept. ``redraw=`` plugs in
another re-initialization.

Similarities (per image): ``"spearman"`` (on the flattened maps, average ranks for ties, as SciPy),
``"pearson"``, ``"ssim"`` (scikit-image's ``structural_similarity`` on the 2-D maps: 7 x 7 uniform window,
sample covariance, ``data_range`` = the pair's range, the border cropped), ``"abs_spearman"`` (the paper's
absolute-value rank correlation, on ``|map|``), ``"hog"`` (the paper's Pearson correlation of the maps'
histograms of oriented gradients, :func:`hog_descriptors`, each map first scaled to [0, 1] as the authors'
notebook does) and ``"hog_spearman"`` (the rank correlation of the same descriptors, what that notebook
computes).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxviz.metrics._common import check_inputs, class_indices, pixel_maps

__all__ = ["model_parameter_randomization", "random_logit", "parameter_groups", "randomize", "similarity",
           "hog_descriptors", "SIMILARITIES", "HOG_NORMS"]

SIMILARITIES = ("spearman", "abs_spearman", "pearson", "ssim", "hog", "hog_spearman")
#: scikit-image's block normalizations.
HOG_NORMS = ("L1", "L1-sqrt", "L2", "L2-Hys")

Method = Callable[..., jax.Array]
#: ``measure(a, b) -> (B,)`` for two (B, H, W) map batches, or the name of one of :data:`SIMILARITIES`.
Measure = str | Callable[[jax.Array, jax.Array], jax.Array]


def _params(variables) -> tuple[dict, str | None]:
    if isinstance(variables, dict) and "params" in variables:
        return variables["params"], "params"
    return variables, None


def _group_of(path, layers: bool) -> str:
    keys = [str(getattr(k, "key", getattr(k, "idx", k))) for k in path]
    return "/".join(keys[:-1]) if layers and len(keys) > 1 else keys[0]


def parameter_groups(model, variables, images, *, layers: bool = False) -> list[str]:
    """The parameter groups, in the order ``model``'s forward pass first reads them (tracing only): the
    top-level entries, or with ``layers`` every innermost dict that holds arrays, as ``"/"``-joined paths
    (one group per convolution, dense or normalization layer, as Quantus's torch layers)."""
    from jaxviz.models import interpret

    params, where = _params(variables)
    if not isinstance(params, dict) or not params:
        raise ValueError("model_parameter_randomization needs variables whose parameters are a dict of groups")

    def forward(p, x):
        return model.apply({**variables, where: p} if where else p, x)

    firsts = interpret.first_uses(forward, params, images[:1])
    # each leaf's group, in jax.tree.leaves order (dicts flatten by sorted key, whatever their insertion order)
    leaf_group = [_group_of(path, layers) for path, _ in jax.tree_util.tree_flatten_with_path(params)[0]]
    first: dict[str, int] = {}
    for f, g in zip(firsts, leaf_group, strict=True):
        first[g] = min(f, first.get(g, f))
    return sorted(first, key=lambda g: first[g])


def _subtree(params: dict, name: str) -> tuple[list[str], object] | None:
    keys = [name] if name in params else name.split("/")
    node = params
    for k in keys:
        if not isinstance(node, dict) or k not in node:
            return None
        node = node[k]
    return keys, node


def _replaced(tree: dict, keys: list[str], value) -> dict:
    return {**tree, keys[0]: value if len(keys) == 1 else _replaced(tree[keys[0]], keys[1:], value)}


def randomize(key: jax.Array, variables, groups: Sequence[str]):
    """``variables`` with every array of the named parameter ``groups`` (top-level names or ``"/"``-joined
    paths, as :func:`parameter_groups` gives them) re-drawn at its own mean and scale; the i-th group's draw
    comes from ``fold_in(key, i)``."""
    params, where = _params(variables)
    found = {g: _subtree(params, g) for g in groups}
    unknown = [g for g, f in found.items() if f is None]
    if unknown:
        raise ValueError(f"unknown parameter group(s) {', '.join(map(repr, unknown))}; the groups are "
                         f"{', '.join(params)} (or their '/'-joined sub-paths)")
    for i, name in enumerate(groups):
        keys, group = found[name]
        leaves, tree = jax.tree.flatten(group)
        draws = jax.random.split(jax.random.fold_in(key, i), max(1, len(leaves)))
        fresh = [_redrawn(k, x) for k, x in zip(draws, leaves, strict=False)]
        params = _replaced(params, keys, jax.tree.unflatten(tree, fresh))
    return {**variables, where: params} if where else params


@jax.jit  # one program per weight shape; unjitted, each of its operations compiles on its own
def _redrawn(key: jax.Array, x: jax.Array) -> jax.Array:
    return jnp.mean(x) + jnp.std(x) * jax.random.truncated_normal(key, -2.0, 2.0, x.shape, x.dtype)


def _average_ranks(x: jax.Array) -> jax.Array:
    order = jnp.sort(x)
    lo = jnp.searchsorted(order, x, side="left")
    hi = jnp.searchsorted(order, x, side="right")
    return (lo + hi - 1) / 2.0


def _pearson(a: jax.Array, b: jax.Array) -> jax.Array:
    a, b = a - a.mean(), b - b.mean()
    return jnp.sum(a * b) / jnp.sqrt(jnp.sum(a * a) * jnp.sum(b * b))


def _ssim(a: jax.Array, b: jax.Array, win: int = 7) -> jax.Array:
    data_range = jnp.maximum(jnp.max(a), jnp.max(b)) - jnp.minimum(jnp.min(a), jnp.min(b))
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    kernel = jnp.ones((win, win), a.dtype) / (win * win)

    def mean(x):  # the window's mean at every position where it fits (scikit-image crops the rest)
        return jax.scipy.signal.convolve2d(x, kernel, mode="valid")

    n = win * win
    cov = n / (n - 1)
    ma, mb = mean(a), mean(b)
    va, vb = cov * (mean(a * a) - ma * ma), cov * (mean(b * b) - mb * mb)
    vab = cov * (mean(a * b) - ma * mb)
    s = ((2 * ma * mb + c1) * (2 * vab + c2)) / ((ma * ma + mb * mb + c1) * (va + vb + c2))
    return jnp.mean(s)


def _pair(x, what: str) -> tuple[int, int]:
    r, c = (x, x) if isinstance(x, int) else tuple(x)
    if int(r) < 1 or int(c) < 1:
        raise ValueError(f"{what} must be positive, got {x!r}")
    return int(r), int(c)


def hog_descriptors(maps, *, orientations: int = 9, pixels_per_cell: int | tuple[int, int] = (16, 16),
                    cells_per_block: int | tuple[int, int] = (3, 3), block_norm: str = "L2-Hys") -> jax.Array:
    """(B, D) histograms of oriented gradients of (B, H, W) maps, as scikit-image's ``skimage.feature.hog``
    computes them for a 2-D image (``feature_vector=True``, no ``transform_sqrt``), vectorized over the batch.

    Central-difference gradients (zero on the border rows and columns); each pixel votes its gradient magnitude
    into one of ``orientations`` unsigned bins over [0, 180) degrees (no interpolation); a cell's histogram is
    the mean vote over its pixels (the cells tile the map from the top left, a remainder is dropped); every
    position of a block of ``cells_per_block`` cells is normalized (``block_norm``, one of :data:`HOG_NORMS`,
    eps 1e-5; ``"L2-Hys"``: L2, clipped at 0.2, L2 again) and the blocks are concatenated in row-major order,
    D = blocks_rows x blocks_cols x cells_per_block x orientations.

    The defaults are Adebayo et al.'s (their notebooks call ``hog(mask, pixels_per_cell=(16, 16))`` with
    scikit-image's other defaults; scikit-image before 0.15 defaulted to ``block_norm="L1"``). scikit-image sums
    each cell in C ``float`` (single precision): its descriptors differ from these by about 1e-7, relatively.

    Example:
        >>> hog_descriptors(jnp.zeros((2, 64, 64))).shape  # 4 x 4 cells, 2 x 2 blocks of 3 x 3 cells
        (2, 324)
    """
    maps = jnp.asarray(maps)
    if maps.ndim != 3:
        raise ValueError(f"hog_descriptors takes (B, H, W) maps, got shape {maps.shape}")
    if block_norm not in HOG_NORMS:
        raise ValueError(f"unknown block_norm {block_norm!r}; use one of {', '.join(HOG_NORMS)}")
    if int(orientations) < 1:
        raise ValueError(f"orientations must be positive, got {orientations!r}")
    (ch, cw), (bh, bw) = _pair(pixels_per_cell, "pixels_per_cell"), _pair(cells_per_block, "cells_per_block")
    b, h, w = maps.shape
    rows, cols = h // ch, w // cw
    if rows < bh or cols < bw:
        raise ValueError(f"maps of {h} x {w} are too small for HOG blocks of {bh} x {bw} cells of {ch} x {cw} "
                         f"pixels: they need at least {bh * ch} x {bw * cw}")
    x = maps.astype(jnp.result_type(maps.dtype, jnp.float32))
    g_row = jnp.pad(x[:, 2:] - x[:, :-2], ((0, 0), (1, 1), (0, 0)))
    g_col = jnp.pad(x[:, :, 2:] - x[:, :, :-2], ((0, 0), (0, 0), (1, 1)))
    magnitude = jnp.hypot(g_col, g_row)
    angle = jnp.rad2deg(jnp.arctan2(g_row, g_col)) % 180
    # bin k holds edge_k <= angle < edge_{k+1}, edges 180 / n * k as scikit-image multiplies them (float64)
    upper = jnp.asarray(180.0 / orientations * np.arange(1, orientations + 1), x.dtype)
    bins = jnp.sum(angle[..., None] >= upper, axis=-1)  # == orientations (no bin) only if rounding gives 180
    votes = magnitude[..., None] * (bins[..., None] == jnp.arange(orientations))
    votes = votes[:, :rows * ch, :cols * cw].reshape(b, rows, ch, cols, cw, orientations)
    cells = votes.sum(axis=(2, 4)) / (ch * cw)
    nr, nc = rows - bh + 1, cols - bw + 1
    blocks = jnp.stack([jnp.stack([cells[:, i:i + nr, j:j + nc] for j in range(bw)], axis=3)
                        for i in range(bh)], axis=3)  # (B, nr, nc, bh, bw, orientations)
    eps, axes = 1e-5, (3, 4, 5)
    if block_norm in ("L1", "L1-sqrt"):
        blocks = blocks / (jnp.sum(jnp.abs(blocks), axis=axes, keepdims=True) + eps)
        blocks = jnp.sqrt(blocks) if block_norm == "L1-sqrt" else blocks
    else:
        blocks = blocks / jnp.sqrt(jnp.sum(blocks * blocks, axis=axes, keepdims=True) + eps ** 2)
        if block_norm == "L2-Hys":
            blocks = jnp.minimum(blocks, 0.2)
            blocks = blocks / jnp.sqrt(jnp.sum(blocks * blocks, axis=axes, keepdims=True) + eps ** 2)
    return blocks.reshape(b, -1)


def _unit_range(maps: jax.Array) -> jax.Array:
    """Each map scaled to [0, 1] (a constant map to 0)."""
    lo = jnp.min(maps, axis=(1, 2), keepdims=True)
    span = jnp.max(maps, axis=(1, 2), keepdims=True) - lo
    return (maps - lo) / jnp.where(span > 0, span, 1.0)


def _spearman(x: jax.Array, y: jax.Array) -> jax.Array:
    return _pearson(_average_ranks(x.ravel()), _average_ranks(y.ravel()))


def similarity(a, b, how: str = "spearman", *, hog: Mapping | None = None) -> jax.Array:
    """(B,) similarity of two (B, H, W) map batches, image by image (see the module's list).

    Args:
        how: one of :data:`SIMILARITIES`.
        hog: options of :func:`hog_descriptors` for ``"hog"`` and ``"hog_spearman"`` (default: Adebayo et al.'s
            16 x 16-pixel cells in blocks of 3 x 3 cells, which needs maps of at least 48 x 48).

    Example:
        >>> x = jax.random.normal(jax.random.key(0), (2, 64, 64))
        >>> similarity(x, 2 * x + 1, "hog").round(6).tolist()  # HOG reads the maps scaled to [0, 1]
        [1.0, 1.0]
    """
    a, b = jnp.asarray(a), jnp.asarray(b)
    if a.shape != b.shape or a.ndim != 3:
        raise ValueError(f"similarity compares two (B, H, W) batches, got {a.shape} and {b.shape}")
    if hog is not None and how not in ("hog", "hog_spearman"):
        raise ValueError(f'hog= options apply to how="hog" or "hog_spearman", not {how!r}')
    if how == "spearman":
        return jax.vmap(_spearman)(a, b)
    if how == "abs_spearman":
        return similarity(jnp.abs(a), jnp.abs(b), "spearman")
    if how == "pearson":
        return jax.vmap(lambda x, y: _pearson(x.ravel(), y.ravel()))(a, b)
    if how == "ssim":
        if min(a.shape[1:]) < 7:
            raise ValueError(f"ssim needs maps of at least 7 x 7, got {a.shape[1:]}")
        return jax.vmap(_ssim)(a, b)
    if how in ("hog", "hog_spearman"):
        da, db = (hog_descriptors(_unit_range(m), **dict(hog or {})) for m in (a, b))
        return jax.vmap(_pearson if how == "hog" else _spearman)(da, db)
    raise ValueError(f"unknown similarity {how!r}; use one of {', '.join(SIMILARITIES)}")


def _measure(measure: Measure) -> Callable[[jax.Array, jax.Array], jax.Array]:
    if callable(measure):
        return measure
    if measure not in SIMILARITIES:
        raise ValueError(f"unknown similarity {measure!r}; use one of {', '.join(SIMILARITIES)} or a function")
    return lambda a, b: similarity(a, b, measure)


def _explain(method, model, variables, images, target):
    maps = method(model, variables, images, target)
    return pixel_maps(maps, images.shape[:3])


def model_parameter_randomization(method: Method, model, variables, images, target, *, key: jax.Array,
                                  groups: Sequence[str] | None = None, cascading: bool = True,
                                  measure: Measure = "spearman", maps=None, layers: bool = False,
                                  redraw: Callable | None = None) -> dict[str, jax.Array]:
    """``{group: (B,) similarity}`` between the original map and the map after re-drawing ``group``: with
    ``cascading`` also every group above it (the dict's order: from the output down), else that group alone.

    Args:
        method: ``method(model, variables, images, target)`` -> maps (B, H, W) or with a channel axis (averaged).
        groups: parameter groups, from the output down (default: all, in reverse forward order).
        measure: the similarity, one of :data:`SIMILARITIES`, or ``measure(a, b) -> (B,)`` for (B, H, W) maps
            (e.g. ``functools.partial(similarity, how="hog", hog={"pixels_per_cell": 8})``).
        maps: the original maps, if already computed.
        layers: the default groups are every layer (innermost parameter dict), not the top-level entries.
        redraw: ``redraw(key, variables, chosen) -> variables`` with the ``chosen`` groups re-initialized
            (default :func:`randomize`); it is called with the groups re-drawn at each step, in order.

    Quantus 0.6's ``MPRT`` is this with ``layers=True``-like groups and these differences (its scores equal
    ours on the same re-drawn weights, tests/test_metrics.py): it re-draws every torch module that has
    ``reset_parameters`` (also BatchNorm, whose weights it resets to 1 and 0 and statistics to 0 and 1) with
    ``torch.manual_seed(seed + 1)`` before each and the module's default initializer, in registration order
    (``layer_order="top_down"`` reversed; ``"independent"`` is ``cascading=False``), where we re-draw at the
    array's own scale, in forward order; its default ``abs=True`` is ``measure="abs_spearman"`` (its
    ``normalise_by_max``, one positive factor per batch, changes no rank); and it adds an ``"original"``
    entry, the original model's map against ``a_batch`` (1 when the method is deterministic). Its similarity
    functions see flattened maps (its SSIM is a 1-D SSIM); ours see (B, H, W).
    """
    images, _ = check_inputs(images)
    target = class_indices(target, images.shape[0])
    if groups is None:
        groups = list(reversed(parameter_groups(model, variables, images, layers=layers)))
    groups, redraw, compare = list(groups), redraw or randomize, _measure(measure)
    explain = jax.jit(lambda v: _explain(method, model, v, images, target))  # one program for every draw
    original = explain(variables) if maps is None else pixel_maps(maps, images.shape[:3])
    out = {}
    for depth, name in enumerate(groups):
        chosen = groups[:depth + 1] if cascading else [name]
        randomized = redraw(key, variables, chosen)  # randomize: group i always gets fold_in(key, i)
        out[name] = compare(original, explain(randomized))
    return out


def random_logit(method: Method, model, variables, images, target, *, key: jax.Array | None = None,
                 other=None, measure: Measure = "ssim", maps=None) -> jax.Array:
    """(B,) similarity between the map of ``target`` and that of another class (Quantus's default: SSIM), drawn
    uniformly from the other classes with ``key``, or given as ``other`` ((B,) ints)."""
    images, _ = check_inputs(images)
    b = images.shape[0]
    target = class_indices(target, b)
    if other is None:
        if key is None:
            raise ValueError("random_logit draws the other class: pass key= (or other=)")
        classes = int(getattr(model, "num_classes", 0) or model.apply(variables, images[:1]).shape[-1])
        r = jax.random.randint(key, (b,), 0, classes - 1)
        other = jnp.where(r < target, r, r + 1)
    other = class_indices(other, b)
    concrete = not any(isinstance(t, jax.core.Tracer) for t in (other, target))
    if concrete and bool(np.any(np.asarray(other) == np.asarray(target))):
        raise ValueError("other must differ from target for every image")
    explain = jax.jit(lambda t: _explain(method, model, variables, images, t))  # one program for both classes
    original = explain(target) if maps is None else pixel_maps(maps, images.shape[:3])
    return _measure(measure)(original, explain(other))
