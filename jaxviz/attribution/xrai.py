"""XRAI: attributions summed over image regions, the regions ranked greedily by their gain (Kapishnikov et al., 2019).

Pixel attributions are noisy; people look at regions. XRAI over-segments the image, then grows a saliency map one
region at a time, each time adding the region whose *new* pixels (those not yet covered) have the highest mean
attribution, and gives those pixels that mean. What no region covers at the end gets the mean of its own
attributions. The definition and the defaults are those of PAIR's ``saliency`` package (``XRAI``,
``XRAIParameters``):

* the base attribution is integrated gradients from two baselines, the constant images at the image's minimum and
  its maximum (black and white for an image spanning [0, 1]), averaged, then the maximum over channels. PAIR's IG
  takes ``steps`` (100) points ``linspace(0, 1, steps)`` with equal weights ``1 / steps``; here that rule is
  jaxviz's own jitted :func:`~jaxviz.attribution.gradients.integrated_gradients` (``riemann_left`` on the first
  ``steps - 1`` points) plus the gradient at the image, so the batch and both baselines run as one program;
* the regions are scikit-image's Felzenszwalb segmentations of the image rescaled to [-1, 1] and resized to
  224 x 224 (cubic, anti-aliased), at scales 50, 100, 150, 250, 500 and 1200 (``sigma=0.8``, ``min_size=150``),
  resized back (nearest) and every segment dilated by a disk of radius 5, so regions overlap and nest across
  scales;
* the ranking: ``"full"`` (default) recomputes every remaining region's gain against the covered area at each
  step, dropping regions that would add fewer than ``min_pixel_diff`` (50) pixels, until the covered share of the
  image passes ``area_threshold`` (1.0: until no region is left); ``"fast"`` sorts the regions once by their own
  mean and adds them in that order.

Only the integrated gradients run on the accelerator (jitted here, with the model static: it must be hashable, as
jaxviz's models are); the segmentation and the greedy ranking are host-side NumPy / scikit-image, image by image,
so :func:`xrai` does not jit and returns a NumPy array. :func:`xrai_integrated_gradients` is the jittable half.
Precomputed ``base_attribution`` and ``segments`` can be passed, as in PAIR.

Reference:
    Kapishnikov, Bolukbasi, Viégas, Terry, "XRAI: Better Attributions Through Regions", ICCV 2019.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxviz.attribution.gradients import integrated_gradients, saliency
from jaxviz.core.batching import tile_target
from jaxviz.core.objectives import Target

__all__ = ["xrai", "xrai_integrated_gradients", "felzenszwalb_regions", "xrai_rank", "ALGORITHMS",
           "FELZENSZWALB_SCALES"]

#: the rankings :func:`xrai_rank` knows.
ALGORITHMS = ("full", "fast")
#: PAIR's Felzenszwalb scales, applied to the image at :data:`SEGMENTATION_SIZE`.
FELZENSZWALB_SCALES = (50, 100, 150, 250, 500, 1200)
FELZENSZWALB_SIGMA = 0.8
FELZENSZWALB_MIN_SIZE = 150
SEGMENTATION_SIZE = (224, 224)


def _pair_ig(model, variables, images, baselines, target, end_grad, steps: int, batch_size: int | None):
    """IG on ``linspace(0, 1, steps)`` with weights ``1 / steps`` (PAIR's rule), for stacked image/baseline pairs;
    ``end_grad`` is the gradient at the images (the last point)."""
    delta = images - baselines
    if steps == 1:
        return delta * saliency(model, variables, baselines, target)
    head = steps - 1  # the points k / (steps - 1), k < steps - 1: a left Riemann rule on steps - 1 intervals
    if head == 1:
        left = delta * saliency(model, variables, baselines, target)
    else:
        left = head * integrated_gradients(model, variables, images, target, baseline=baselines, steps=head,
                                           method="riemann_left", batch_size=batch_size)
    return (left + delta * end_grad) / steps


def xrai_integrated_gradients(model, variables, images: jax.Array, target: Target, *, baselines=None,
                              steps: int = 100, method: str = "pair", batch_size: int | None = None) -> jax.Array:
    """XRAI's base attribution: integrated gradients averaged over baselines, (B, H, W, 3). Jittable.

    Args:
        baselines: a sequence of baselines, each a scalar, an (H, W, 3) image or a (B, H, W, 3) batch; by
            default PAIR's two, each image's minimum and maximum as constant images.
        steps: points on each straight path (PAIR's XRAI default 100).
        method: ``"pair"``: PAIR's rule (``linspace(0, 1, steps)``, equal weights); or any quadrature of
            :func:`~jaxviz.attribution.gradients.ig_quadrature`.
        batch_size: images per forward pass.
    """
    if not (isinstance(steps, int | np.integer) and steps >= 1):
        raise ValueError(f"XRAI's integrated gradients need an integer steps >= 1, got {steps!r}")
    b = images.shape[0]
    if baselines is None:
        lo = jnp.min(images, axis=(1, 2, 3), keepdims=True)
        hi = jnp.max(images, axis=(1, 2, 3), keepdims=True)
        stacked = [jnp.broadcast_to(lo, images.shape), jnp.broadcast_to(hi, images.shape)]
    else:
        if len(baselines) == 0:
            raise ValueError("baselines must hold at least one baseline (or be None for PAIR's two)")
        stacked = []
        for base in baselines:
            base = jnp.asarray(base, images.dtype)
            try:
                stacked.append(jnp.broadcast_to(base, images.shape))
            except ValueError:
                raise ValueError(f"a baseline of shape {base.shape} does not broadcast to the images' "
                                 f"{images.shape}") from None
    reps = len(stacked)
    tiled = jnp.concatenate([images] * reps)
    bases = jnp.concatenate(stacked)
    targets = tile_target(target, reps, b)
    if method == "pair":
        end_grad = jnp.concatenate([saliency(model, variables, images, target)] * reps) if steps > 1 else None
        maps = _pair_ig(model, variables, tiled, bases, targets, end_grad, steps, batch_size)
    else:
        maps = integrated_gradients(model, variables, tiled, targets, baseline=bases, steps=steps, method=method,
                                    batch_size=batch_size)
    return jnp.mean(maps.reshape(reps, *images.shape), axis=0)


_ig_jit = jax.jit(xrai_integrated_gradients, static_argnums=0, static_argnames=("steps", "method", "batch_size"))


def felzenszwalb_regions(image, *, resize: bool = True, dilation_radius: int = 5,
                         scales: Sequence[float] = FELZENSZWALB_SCALES) -> list[np.ndarray]:
    """PAIR's XRAI regions for one (H, W, C) image: a list of (H, W) boolean masks (see the module docstring).

    Masks come scale by scale, label by label (a label that the resize back dropped gives an empty mask).
    """
    from skimage.morphology import dilation, disk
    from skimage.segmentation import felzenszwalb
    from skimage.transform import resize as sk_resize

    im = np.asarray(image)
    if im.ndim != 3:
        raise ValueError(f"felzenszwalb_regions needs one (H, W, C) image, got shape {im.shape}")
    size = im.shape[:2]
    lo, hi = im.min(), im.max()
    im = (im - lo) / (hi - lo) if hi > lo else np.zeros_like(im)
    im = im * 2.0 - 1.0
    if resize:
        im = sk_resize(im, SEGMENTATION_SIZE, order=3, mode="constant", preserve_range=True, anti_aliasing=True)
    masks = []
    for scale in scales:
        labels = felzenszwalb(im, scale=scale, sigma=FELZENSZWALB_SIGMA, min_size=FELZENSZWALB_MIN_SIZE)
        if resize:
            labels = sk_resize(labels, size, order=0, preserve_range=True, mode="constant",
                               anti_aliasing=False).astype(int)
        ids = np.arange(labels.min(), labels.max() + 1)
        masks.extend(labels[None] == ids[:, None, None])
    if dilation_radius and masks:
        # one dilation of the (M, H, W) stack by a (1, r, r) disk: each mask dilated on its own
        masks = list(dilation(np.stack(masks), footprint=disk(dilation_radius)[None]))
    return masks


def _mean_over(attr: np.ndarray, mask: np.ndarray) -> float:
    return attr[mask].mean() if mask.any() else -np.inf


def _rank_full(attr, masks, area_threshold, min_pixel_diff, out):
    """The greedy ranking with gains against the covered area; per-region sums and counts updated as it grows."""
    counts = masks.sum(axis=1)
    sums = np.array([attr[m].sum() for m in masks])
    alive = np.ones(len(masks), bool)
    covered = np.zeros(attr.shape, bool)
    area = 0.0
    while area <= area_threshold:
        alive &= counts >= min_pixel_diff
        if not alive.any():
            break
        gains = np.where(alive, sums / np.maximum(counts, 1), -np.inf)
        best = int(np.argmax(gains))
        new = np.flatnonzero(masks[best] & ~covered)
        out[new] = attr[new].mean()
        hit = masks[:, new]
        sums -= hit @ attr[new]
        counts -= hit.sum(axis=1)
        covered[new] = True
        area = covered.mean()
        alive[best] = False


def _rank_fast(attr, masks, min_pixel_diff, out):
    """Regions in the order of their own mean attribution, each giving its new pixels their mean."""
    gains = np.array([_mean_over(attr, m) for m in masks])
    covered = np.zeros(attr.shape, bool)
    for i in np.argsort(-gains, kind="stable"):
        new = masks[i] & ~covered
        if new.sum() < min_pixel_diff:
            continue
        out[new] = attr[new].mean()
        covered |= masks[i]


def xrai_rank(attribution, regions, *, algorithm: str = "full", area_threshold: float = 1.0,
              min_pixel_diff: int = 50) -> np.ndarray:
    """The XRAI map of one image: (H, W) float64 from an (H, W) attribution and its regions (host-side NumPy).

    Args:
        attribution: (H, W), or (H, W, C) reduced by its maximum over channels (PAIR's).
        regions: (H, W) boolean masks, a list or an (M, H, W) array (see :func:`felzenszwalb_regions`).
        algorithm: ``"full"`` or ``"fast"`` (see the module docstring).
        area_threshold: in [0, 1], ``"full"`` stops once this share of the image is covered (``"fast"`` ignores
            it, as PAIR's does); the rest shares one value.
        min_pixel_diff: at least 1; regions adding fewer new pixels are dropped.
    """
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS)}, got {algorithm!r}")
    if not 0 <= area_threshold <= 1:
        raise ValueError(f"area_threshold must be in [0, 1], got {area_threshold}")
    if not (isinstance(min_pixel_diff, int | np.integer) and min_pixel_diff >= 1):
        raise ValueError(f"min_pixel_diff must be an integer >= 1, got {min_pixel_diff!r}")
    attr = np.asarray(attribution, np.float64)
    if attr.ndim == 3:
        attr = attr.max(axis=-1)
    if attr.ndim != 2:
        raise ValueError(f"the attribution must be (H, W) or (H, W, C), got shape {attr.shape}")
    masks = np.asarray(regions, bool) if len(regions) else np.zeros((0, *attr.shape), bool)
    if masks.ndim != 3 or masks.shape[1:] != attr.shape:
        raise ValueError(f"regions must be (H, W) = {attr.shape} boolean masks, got shape {masks.shape}")
    flat, masks = attr.ravel(), masks.reshape(len(masks), -1)
    out = np.full(flat.shape, -np.inf)
    if algorithm == "full":
        _rank_full(flat, masks, area_threshold, min_pixel_diff, out)
    else:
        _rank_fast(flat, masks, min_pixel_diff, out)
    rest = out == -np.inf
    if rest.any():
        out[rest] = flat[rest].mean()
    return out.reshape(attr.shape)


def xrai(model, variables, images, target: Target, *, baselines=None, steps: int = 100, method: str = "pair",
         segments=None, base_attribution=None, algorithm: str = "full", area_threshold: float = 1.0,
         min_pixel_diff: int = 50, batch_size: int | None = None) -> np.ndarray:
    """XRAI (see the module docstring): (B, H, W) NumPy maps, as PAIR's ``XRAI().GetMask`` per image. Not jittable.

    Example:
        >>> maps = xrai(model, variables, x, jnp.array([285, 967]))  # doctest: +SKIP

    Args:
        baselines, steps, method, batch_size: the integrated gradients' (see :func:`xrai_integrated_gradients`),
            unused when ``base_attribution`` is given.
        segments: precomputed regions, one entry per image, each a list of (H, W) boolean masks or an (M, H, W)
            array; by default :func:`felzenszwalb_regions` of each image.
        base_attribution: a precomputed (B, H, W, C) or (B, H, W) attribution to rank instead of IG's.
        algorithm, area_threshold, min_pixel_diff: the ranking's (see :func:`xrai_rank`).
    """
    images = jnp.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"images must be (B, H, W, C), got shape {images.shape}")
    if algorithm not in ALGORITHMS:  # before the gradients, not after
        raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS)}, got {algorithm!r}")
    b = images.shape[0]
    if segments is not None and len(segments) != b:
        raise ValueError(f"segments must hold one list of masks per image ({b}), got {len(segments)}")
    if base_attribution is None:
        attr = np.asarray(_ig_jit(model, variables, images, target, baselines=baselines, steps=steps,
                                  method=method, batch_size=batch_size))
    else:
        attr = np.asarray(base_attribution)
        if attr.shape not in (images.shape, images.shape[:3]):
            raise ValueError(f"base_attribution must be {images.shape} or {images.shape[:3]}, got {attr.shape}")
    pixels = np.asarray(images)
    maps = [xrai_rank(attr[i], felzenszwalb_regions(pixels[i]) if segments is None else segments[i],
                      algorithm=algorithm, area_threshold=area_threshold, min_pixel_diff=min_pixel_diff)
            for i in range(b)]
    return np.stack(maps).astype(np.result_type(images.dtype, np.float32))
