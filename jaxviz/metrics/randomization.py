"""Sanity checks (Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS 2018): does the map depend on what
the network learned, and on the class it explains?

* :func:`model_parameter_randomization`: re-draw the network's parameter groups from the output down
  (``cascading``, each step keeping the earlier re-draws) or one at a time (``independent``), explain again, and
  compare with the original map. A method that explains the *model* decorrelates as its top layers go; one that
  mostly reconstructs the *image* (the paper's finding for guided backprop) stays similar.
* :func:`random_logit` (Quantus's ``RandomLogit``): explain a random other class and compare.

Works on any model: the parameter groups are the top-level entries of ``variables["params"]`` (or of
``variables`` when it has no ``"params"``), in the order the forward pass first reads them
(:func:`jaxviz.models.interpret.first_uses`). A re-drawn array keeps its shape, mean and standard deviation:
``mean + std * truncated_normal(-2, 2)``, a fresh draw from the layer's own scale (the paper re-initializes
with the architecture's truncated-normal initializer); BatchNorm statistics are kept.

Similarities (per image, on the flattened (H, W) maps): ``"spearman"`` (average ranks for ties, as SciPy),
``"pearson"``, ``"ssim"`` (scikit-image's ``structural_similarity`` on the 2-D maps: 7 x 7 uniform window,
sample covariance, ``data_range`` = the pair's range, the border cropped) and ``"abs_spearman"`` (the paper's
absolute-value rank correlation, on ``|map|``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxviz.metrics._common import check_inputs, class_indices, pixel_maps

__all__ = ["model_parameter_randomization", "random_logit", "parameter_groups", "randomize", "similarity",
           "SIMILARITIES"]

SIMILARITIES = ("spearman", "abs_spearman", "pearson", "ssim")

Method = Callable[..., jax.Array]


def _params(variables) -> tuple[dict, str | None]:
    if isinstance(variables, dict) and "params" in variables:
        return variables["params"], "params"
    return variables, None


def parameter_groups(model, variables, images) -> list[str]:
    """The top-level parameter groups, in the order ``model``'s forward pass first reads them (tracing only)."""
    from jaxviz.models import interpret

    params, where = _params(variables)
    if not isinstance(params, dict) or not params:
        raise ValueError("model_parameter_randomization needs variables whose parameters are a dict of groups")

    def forward(p, x):
        return model.apply({**variables, where: p} if where else p, x)

    firsts = interpret.first_uses(forward, params, images[:1])
    names = list(params)
    # each leaf's group, in jax.tree.leaves order (dicts flatten by sorted key, whatever their insertion order)
    leaf_group = [path[0].key for path, _ in jax.tree_util.tree_flatten_with_path(params)[0]]
    first = {name: min((f for f, g in zip(firsts, leaf_group, strict=True) if g == name), default=len(firsts))
             for name in names}
    return sorted((n for n in names if jax.tree.leaves(params[n])), key=lambda n: first[n])


def randomize(key: jax.Array, variables, groups: Sequence[str]):
    """``variables`` with every array of the named parameter ``groups`` re-drawn at its own mean and scale."""
    params, where = _params(variables)
    unknown = [g for g in groups if g not in params]
    if unknown:
        raise ValueError(f"unknown parameter group(s) {', '.join(map(repr, unknown))}; the groups are "
                         f"{', '.join(params)}")
    params = dict(params)
    for i, name in enumerate(groups):
        leaves, tree = jax.tree.flatten(params[name])
        keys = jax.random.split(jax.random.fold_in(key, i), max(1, len(leaves)))
        fresh = [jnp.mean(x) + jnp.std(x) * jax.random.truncated_normal(k, -2.0, 2.0, x.shape, x.dtype)
                 for k, x in zip(keys, leaves, strict=False)]
        params[name] = jax.tree.unflatten(tree, fresh)
    return {**variables, where: params} if where else params


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


def similarity(a, b, how: str = "spearman") -> jax.Array:
    """(B,) similarity of two (B, H, W) map batches, image by image (see the module's list)."""
    a, b = jnp.asarray(a), jnp.asarray(b)
    if a.shape != b.shape or a.ndim != 3:
        raise ValueError(f"similarity compares two (B, H, W) batches, got {a.shape} and {b.shape}")
    if how == "spearman":
        return jax.vmap(lambda x, y: _pearson(_average_ranks(x.ravel()), _average_ranks(y.ravel())))(a, b)
    if how == "abs_spearman":
        return similarity(jnp.abs(a), jnp.abs(b), "spearman")
    if how == "pearson":
        return jax.vmap(lambda x, y: _pearson(x.ravel(), y.ravel()))(a, b)
    if how == "ssim":
        if min(a.shape[1:]) < 7:
            raise ValueError(f"ssim needs maps of at least 7 x 7, got {a.shape[1:]}")
        return jax.vmap(_ssim)(a, b)
    raise ValueError(f"unknown similarity {how!r}; use one of {', '.join(SIMILARITIES)}")


def _explain(method, model, variables, images, target):
    maps = method(model, variables, images, target)
    return pixel_maps(maps, images.shape[:3])


def model_parameter_randomization(method: Method, model, variables, images, target, *, key: jax.Array,
                                  groups: Sequence[str] | None = None, cascading: bool = True,
                                  measure: str = "spearman", maps=None) -> dict[str, jax.Array]:
    """``{group: (B,) similarity}`` between the original map and the map after re-drawing ``group``: with
    ``cascading`` also every group above it (the dict's order: from the output down), else that group alone.

    Args:
        method: ``method(model, variables, images, target)`` -> maps (B, H, W) or with a channel axis (averaged).
        groups: parameter groups, from the output down (default: all, in reverse forward order).
        measure: the similarity, one of :data:`SIMILARITIES`.
        maps: the original maps, if already computed.
    """
    images, _ = check_inputs(images)
    target = class_indices(target, images.shape[0])
    groups = list(reversed(parameter_groups(model, variables, images))) if groups is None else list(groups)
    original = _explain(method, model, variables, images, target) if maps is None else pixel_maps(
        maps, images.shape[:3])
    explain = jax.jit(lambda v: _explain(method, model, v, images, target))
    out = {}
    for depth, name in enumerate(groups):
        chosen = groups[:depth + 1] if cascading else [name]
        randomized = randomize(key, variables, chosen)  # group i always gets the same draw (fold_in(key, i))
        out[name] = similarity(original, explain(randomized), measure)
    return out


def random_logit(method: Method, model, variables, images, target, *, key: jax.Array | None = None,
                 other=None, measure: str = "ssim", maps=None) -> jax.Array:
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
    original = (_explain(method, model, variables, images, target) if maps is None
                else pixel_maps(maps, images.shape[:3]))
    return similarity(original, _explain(method, model, variables, images, other), measure)
