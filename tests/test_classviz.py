"""Class-model visualizations read as their class to an independent network, and look like photos.

Rendered on the embedded default (EfficientNet-Lite0) with the CLI's default settings (MACO, 128 steps, 224 px);
judged by EfficientNet-Lite1 with its own real ImageNet weights (a separately trained network, 240 px native
input, which never saw the optimization) on the images resized to its input size; the noise statistics of
:mod:`jaxviz.synthesis.quality` against the bundled photos at the same size.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxviz import models
from jaxviz.core import forward
from jaxviz.synthesis import classviz, quality

#: Ten fixed classes: goldfish, ostrich, flamingo, Egyptian cat, bee, balloon, basketball, pickup, strawberry, volcano.
CLASSES = quality.TEN_CLASSES
#: Lite1 must put at least this many of the ten first, and in its top 5; Lite0 itself first.
MIN_TOP1, MIN_TOP5, MIN_OWN_TOP1 = 6, 9, 9
#: the pictures' noise statistics may exceed the bundled photos' by at most this factor
MAX_NOISE_RATIO = 1.5
#: the corners (an eighth of the side) may be at most this much brighter, on average, than the whole picture
MAX_CORNER_EXCESS = 0.05


def test_ten_class_visualizations_are_recognized_by_an_independent_network_and_look_natural(lite0):
    model, variables = lite0
    out = classviz.class_visualization(jax.random.key(0), model, variables, CLASSES, progress=False)
    images = out.images[:, 0]
    assert images.shape == (10, 224, 224, 3) and out.importance.shape == (10, 1, 224, 224)
    judge, judge_vars = models.load("efficientnet_lite1")
    seen = quality.recognition(judge, judge_vars, images, CLASSES)
    assert seen.top1.sum() >= MIN_TOP1 and seen.top5.sum() >= MIN_TOP5, f"Lite1 ranks: {seen.rank.tolist()}"
    assert quality.recognition(model, variables, images, CLASSES).top1.sum() >= MIN_OWN_TOP1
    ratios = quality.noise_ratios(images, model.input_size)
    assert max(ratios) <= MAX_NOISE_RATIO, ratios
    # no pale glows in the corners (MACO's hidden margin): without it the corners' mean brightness was 0.65
    # against the pictures' 0.50
    luma = np.asarray(images) @ np.array([0.299, 0.587, 0.114])
    c = images.shape[1] // 8
    corners = np.concatenate([luma[:, :c, :c], luma[:, :c, -c:], luma[:, -c:, :c], luma[:, -c:, -c:]], axis=1)
    assert corners.mean() < luma.mean() + MAX_CORNER_EXCESS, (corners.mean(), luma.mean())


def test_pixel_method_with_yosinski_regularizers_raises_the_logit(lite0):
    model, variables = lite0
    out = classviz.class_visualization(jax.random.key(0), model, variables, 9, method="pixel", size=64, steps=20,
                                       progress=False)
    grey = jnp.full((1, 64, 64, 3), 0.5)
    start, end = (forward.logits(model, variables, x)[0, 9] for x in (grey, out.images[0]))  # compiled
    assert float(end) > float(start) + 3.0
    assert out.history[-1][1] > out.history[0][1] - 1e-3


def test_regularizers_blur_decay_and_clip():
    r = classviz.Regularizers(decay=0.5, blur_every=2, blur_sigma=1.0, norm_pct=50.0, contrib_pct=0.0)
    x = jax.random.uniform(jax.random.key(0), (1, 16, 16, 3))
    on, off = r(x, jnp.ones_like(x), 0), r(x, jnp.ones_like(x), 1)
    centred = np.abs(np.asarray(off) - 0.5)
    assert np.mean(centred == 0) >= 0.45  # half the pixels (small norm) set to grey
    assert np.abs(np.asarray(off) - 0.5).max() <= 0.25 + 1e-6  # decayed by half
    assert np.abs(np.diff(np.asarray(on), axis=1)).mean() < np.abs(np.diff(np.asarray(off), axis=1)).mean()


def test_unknown_method_and_class(lite0):
    model, variables = lite0
    with pytest.raises(ValueError, match="valid: maco, fourier, pixel"):
        classviz.class_visualization(jax.random.key(0), model, variables, 1, method="magic")
    with pytest.raises(ValueError, match="outside"):
        classviz.class_visualization(jax.random.key(0), model, variables, 1000)
