"""Heat-map rendering and saliency-to-mask segmentation."""

from __future__ import annotations

import numpy as np
import pytest

from jaxviz.attribution.mask import saliency_to_mask
from jaxviz.io import plot

MASK_MIN_IOU = 0.8


def _disk_scene(size=96, radius=24, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    disk = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 < radius ** 2
    img = np.clip(np.stack([0.2 + 0.1 * rng.random((size, size)), 0.6 + 0.1 * rng.random((size, size)),
                            0.2 * np.ones((size, size))], -1), 0, 1)
    img[disk] = [0.9, 0.1, 0.1]
    sal = disk * 1.0 + 0.3 * rng.random((size, size))
    sal[disk & (rng.random((size, size)) < 0.5)] *= 0.2  # a patchy map, as real saliency is
    return img.astype(np.float32), sal, disk


def test_grabcut_recovers_the_object_from_a_patchy_map():
    img, sal, disk = _disk_scene()
    mask = saliency_to_mask(img, sal)
    iou = (mask & disk).sum() / (mask | disk).sum()
    assert iou >= MASK_MIN_IOU, iou


def test_mask_rejects_bad_input():
    img, sal, _ = _disk_scene()
    with pytest.raises(ValueError, match="need an"):
        saliency_to_mask(img, sal[:10])
    with pytest.raises(ValueError, match="NaN"):
        saliency_to_mask(img, np.full(sal.shape, np.nan))
    with pytest.raises(ValueError, match="background < foreground"):
        saliency_to_mask(img, sal, foreground=0.2, background=0.5)


def test_colorize_is_ordered_and_in_range():
    ramp = np.tile(np.linspace(0, 1, 64), (4, 1))
    rgb = plot.colorize(ramp, percentile=100)
    assert rgb.shape == (4, 64, 3) and rgb.min() >= 0 and rgb.max() <= 1
    brightness = rgb[0].sum(-1)
    assert np.all(np.diff(brightness) >= -1e-6)  # darker is lower


def test_overlay_and_signed_shapes():
    img = np.full((16, 20, 3), 0.5, np.float32)
    assert plot.overlay(img, np.random.rand(16, 20)).shape == (16, 20, 3)
    assert np.allclose(plot.signed(np.zeros((16, 20, 3)))[..., 0], 0.5)
    with pytest.raises(ValueError, match="does not match"):
        plot.overlay(img, np.zeros((3, 3)))
    assert plot.panel(img, {"a": np.random.rand(16, 20)}).ndim == 3
