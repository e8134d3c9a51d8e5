"""Is a synthesized picture any good? Two measurable answers: natural-looking, and recognized.

A picture that only the optimized network believes in is an adversarial pattern; a picture that a
person would call noisy is not what the papers show. Both can be measured:

* :func:`noise_statistics`: how much of an image is pixel-scale noise. The mean absolute difference
  between neighbouring pixels, and the share of the spectral energy above half the Nyquist frequency
  (radial frequency > 1/4 cycle per pixel). Natural photos at the same size set the scale:
  :func:`natural_reference` measures the bundled ones.
* :func:`recognition`: whether an independent network (one that was not optimized against) puts the
  intended class in its top 1 and top 5.

And for stylized photos, whether the content survived and the style arrived without artefacts:
:func:`luminance_ssim` (structure kept), :func:`colour_distance` (whose colours it has), and
:func:`largest_saturated_region` (a saturated blob, the failure of a badly trained stylizer) and
:func:`largest_clipped_region` (a blown-out white glow, which the saturation test cannot see: white has no
saturation).

Example:
    >>> stats = noise_statistics(images)                               # doctest: +SKIP
    >>> ref = natural_reference(images.shape[1])                       # doctest: +SKIP
    >>> float(stats.neighbour_diff.mean() / ref.neighbour_diff)        # doctest: +SKIP
    1.2
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

__all__ = ["TEN_CLASSES", "NoiseStatistics", "noise_statistics", "natural_reference", "noise_ratios", "Recognition",
           "recognition", "luminance_ssim", "colour_distance", "largest_saturated_region", "largest_clipped_region"]


class NoiseStatistics(NamedTuple):
    """Per image (B,) (or one float for :func:`natural_reference`).

    Attributes:
        neighbour_diff: mean |x[i+1, j] - x[i, j]| and |x[i, j+1] - x[i, j]| over positions and channels,
            on [0, 1] pixels.
        high_freq_share: the share of the (mean-removed) image's spectral energy at radial frequencies
            above half the Nyquist frequency.
    """

    neighbour_diff: np.ndarray
    high_freq_share: np.ndarray


@functools.lru_cache(maxsize=16)
def _high_mask(h: int, w: int) -> np.ndarray:
    fy, fx = np.fft.fftfreq(h)[:, None], np.fft.fftfreq(w)[None, :]
    return np.sqrt(fy * fy + fx * fx) > 0.25


def noise_statistics(images) -> NoiseStatistics:
    """:class:`NoiseStatistics` of (B, H, W, 3) (or (H, W, 3)) images in [0, 1], computed in float64 NumPy."""
    x = np.asarray(images, np.float64)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[1] < 2 or x.shape[2] < 2:
        raise ValueError(f"images must be (B, H, W, C) with H, W >= 2, got shape {x.shape}")
    dy, dx = np.abs(np.diff(x, axis=1)), np.abs(np.diff(x, axis=2))
    diff = (dy.sum(axis=(1, 2, 3)) + dx.sum(axis=(1, 2, 3))) / (dy[0].size + dx[0].size)
    centred = x - x.mean(axis=(1, 2), keepdims=True)
    power = np.abs(np.fft.fft2(centred, axes=(1, 2))) ** 2
    total = power.sum(axis=(1, 2, 3))
    high = (power * _high_mask(*x.shape[1:3])[None, :, :, None]).sum(axis=(1, 2, 3))
    return NoiseStatistics(diff, high / np.maximum(total, 1e-30))


@functools.lru_cache(maxsize=8)
def natural_reference(size: int, names: Sequence[str] | None = None) -> NoiseStatistics:
    """The mean :func:`noise_statistics` of natural photos at ``size`` px (resized on the short side and
    centre-cropped, as every bundled sample): scikit-image's photos by default (:data:`jaxviz.io.image.SAMPLES`)."""
    from jaxviz.io import image

    photos = np.stack([image.sample(n, size) for n in (names or image.SAMPLES)])
    s = noise_statistics(photos)
    return NoiseStatistics(float(s.neighbour_diff.mean()), float(s.high_freq_share.mean()))


def noise_ratios(images, size: int | None = None) -> tuple[float, float]:
    """(neighbour difference, high-frequency share) of (B, H, W, 3) images, each averaged over the batch and
    divided by :func:`natural_reference` at ``size`` (default: the images' height): 1.0 is as smooth as a photo."""
    noise = noise_statistics(images)
    photos = natural_reference(size or np.shape(images)[-3])
    return (float(noise.neighbour_diff.mean() / photos.neighbour_diff),
            float(noise.high_freq_share.mean() / photos.high_freq_share))


#: the ten fixed ImageNet classes that class visualization and DeepInversion are judged on (goldfish, ostrich,
#: flamingo, Egyptian cat, bee, balloon, basketball, pickup, strawberry, volcano): the tests, the examples and
#: the demo.
TEN_CLASSES = (1, 9, 130, 285, 309, 417, 430, 717, 949, 980)


class Recognition(NamedTuple):
    """Per image (B,): ``top1`` (bool), ``top5`` (bool), ``rank`` (0 = the judge's first choice) and ``prob``
    (the judge's softmax probability of the intended class); ``judge``: the judging model's name."""

    top1: np.ndarray
    top5: np.ndarray
    rank: np.ndarray
    prob: np.ndarray
    judge: str


def recognition(judge, judge_variables, images, classes) -> Recognition:
    """Whether ``judge`` (a network that was not optimized against) sees ``classes`` in ``images``.

    Args:
        judge, judge_variables: any jaxviz model and its weights.
        images: (B, H, W, 3) in [0, 1]; resized (bilinear) to the judge's input size.
        classes: (B,) the intended class of each image.
    """
    import jax
    import jax.numpy as jnp

    x = jnp.asarray(images, jnp.float32)
    classes = np.asarray(classes, np.int64).reshape(-1)
    if x.ndim != 4 or x.shape[0] != classes.shape[0]:
        raise ValueError(f"images (B, H, W, 3) and one class per image expected, got {x.shape} and "
                         f"{classes.shape[0]} classes")
    size = judge.input_size
    x = jax.image.resize(x, (x.shape[0], size, size, 3), "bilinear")
    logits = np.asarray(jax.jit(judge.apply)(judge_variables, x), np.float64)
    rank = (logits > logits[np.arange(len(classes)), classes][:, None]).sum(axis=1)
    prob = np.exp(logits - logits.max(axis=1, keepdims=True))
    prob = prob[np.arange(len(classes)), classes] / prob.sum(axis=1)
    return Recognition(rank == 0, rank < 5, rank, prob, judge.name)


def _one(image, what: str) -> np.ndarray:
    x = np.asarray(image, np.float64)
    if x.ndim != 3 or x.shape[-1] != 3:
        raise ValueError(f"{what}: expected one (H, W, 3) image, got shape {x.shape}")
    return x


def luminance_ssim(a, b) -> float:
    """SSIM (scikit-image's, 7 px window) between the luminances (Rec. 601) of two (H, W, 3) images in [0, 1]."""
    from skimage.metrics import structural_similarity

    from jaxviz.io import image

    a, b = _one(a, "a"), _one(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} and {b.shape}")
    return float(structural_similarity(a @ image.LUMA, b @ image.LUMA, data_range=1.0))


def colour_distance(a, b, bins: int = 8) -> float:
    """Total-variation distance (0: same, 1: disjoint) between the RGB colour histograms (``bins`` per channel)
    of two images in [0, 1] (any sizes)."""

    def hist(x):
        h, _ = np.histogramdd(np.clip(x.reshape(-1, 3), 0, 1), bins=bins, range=[(0, 1)] * 3)
        return h.ravel() / h.sum()

    return float(0.5 * np.abs(hist(_one(a, "a")) - hist(_one(b, "b"))).sum())


def largest_saturated_region(image, saturation: float = 0.8, value: float = 0.25, hue_tolerance: float = 30.0
                             ) -> float:
    """The share of the image covered by its largest connected region of one saturated colour.

    A pixel is saturated when its HSV saturation exceeds ``saturation`` and its value exceeds ``value``;
    neighbouring saturated pixels belong to one region when their hues differ by at most ``hue_tolerance``
    degrees from the region's seed colour (hue quantized to that width).
    """
    from skimage.color import rgb2hsv

    hsv = rgb2hsv(np.clip(_one(image, "image"), 0, 1))
    hot = (hsv[..., 1] > saturation) & (hsv[..., 2] > value)
    if not hot.any():
        return 0.0
    hue_bin = np.floor(hsv[..., 0] * 360.0 / hue_tolerance).astype(int)
    return max(_largest_region(hot & (hue_bin == b)) for b in np.unique(hue_bin[hot]))


def largest_clipped_region(image, level: float = 0.97) -> float:
    """The share of the image covered by its largest connected region of blown-out highlights: pixels whose
    every channel is at least ``level`` (white, clipped)."""
    if not 0.0 < level <= 1.0:
        raise ValueError(f"level must be in (0, 1], got {level}")
    return _largest_region(_one(image, "image").min(axis=-1) >= level)


def _largest_region(mask: np.ndarray) -> float:
    """The share of ``mask`` covered by its largest connected (4-neighbour) region of True pixels."""
    from scipy import ndimage

    labels, count = ndimage.label(mask)
    return float(np.bincount(labels.ravel())[1:].max()) / mask.size if count else 0.0
