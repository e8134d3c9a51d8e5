"""The picture-quality measures (noise statistics, recognition) and MACO's parts: known answers on small inputs."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxviz.core import objectives as objs
from jaxviz.synthesis import param, quality, render
from jaxviz.synthesis import transforms as tfm

from conftest import CAT_CLASSES, tiny_model

#: uniform white noise: E|U1 - U2| = 1/3; the share of a flat spectrum beyond radius 1/4 of the unit square.
WHITE_DIFF, WHITE_HIGH = 1 / 3, 1 - np.pi / 16
#: tolerance of those expectations on one 128 px image
WHITE_TOL = 0.01


def test_noise_statistics_known_answers():
    rng = np.random.default_rng(0)
    white = quality.noise_statistics(rng.uniform(size=(2, 128, 128, 3)))
    np.testing.assert_allclose(white.neighbour_diff, WHITE_DIFF, atol=WHITE_TOL)
    np.testing.assert_allclose(white.high_freq_share, WHITE_HIGH, atol=WHITE_TOL)
    checker = (np.indices((64, 64)).sum(0) % 2)[None, ..., None].repeat(3, -1).astype(float)
    stats = quality.noise_statistics(checker)
    assert stats.neighbour_diff[0] == 1.0 and stats.high_freq_share[0] == pytest.approx(1.0)
    ramp = np.linspace(0, 1, 64)[None, :, None, None] * np.ones((1, 64, 64, 3))
    smooth = quality.noise_statistics(ramp)
    assert smooth.neighbour_diff[0] == pytest.approx(0.5 / 63)  # only horizontal steps of 1/63
    assert smooth.high_freq_share[0] < 0.05
    flat = quality.noise_statistics(np.full((8, 8, 3), 0.3))
    assert flat.neighbour_diff[0] == 0 and flat.high_freq_share[0] == 0
    with pytest.raises(ValueError, match="H, W >= 2"):
        quality.noise_statistics(np.zeros((1, 1, 8, 3)))


def test_natural_photos_are_far_from_white_noise():
    ref = quality.natural_reference(96)
    assert 0 < ref.neighbour_diff < WHITE_DIFF / 4 and 0 < ref.high_freq_share < WHITE_HIGH / 10


def test_recognition_of_a_photo(lite0, photos):
    model, variables = lite0
    r = quality.recognition(model, variables, photos[:1], [285])
    assert r.top5[0] and r.rank[0] < 5 and 0 < r.prob[0] <= 1 and r.judge == model.name
    wrong = quality.recognition(model, variables, photos[:1], [967])  # the cat is not an espresso
    assert not wrong.top1[0] and wrong.prob[0] < r.prob[0]
    assert 285 in CAT_CLASSES
    with pytest.raises(ValueError, match="one class per image"):
        quality.recognition(model, variables, photos, [285])


def test_maco_keeps_the_natural_spectrum_whatever_the_phase():
    p = param.Maco()
    shape = (2, 64, 64, 3)
    images = p.to_image(p.init(jax.random.key(0), shape), shape)
    assert images.shape == shape and float(images.min()) >= 0 and float(images.max()) <= 1
    # Before the sigmoid the image is magnitude * exp(i phase): two random phases, one power spectrum.
    magnitude = param.natural_magnitude(64, 64)
    for k in range(2):
        phase = jax.random.normal(jax.random.key(k), (3, 64, 33))
        x = np.fft.irfft2(magnitude * np.exp(1j * np.asarray(phase)), s=(64, 64))
        got = np.abs(np.fft.rfft2(x))[:, 1:-1, 1:-1]  # the Hermitian-constrained rows/columns aside
        np.testing.assert_allclose(got, magnitude[:, 1:-1, 1:-1], rtol=1e-4)
    # Its images are as smooth as photos, not the white noise Pixel starts near.
    ratio = quality.noise_statistics(images).high_freq_share / quality.natural_reference(64).high_freq_share
    assert np.all(ratio < 1.5), ratio
    with pytest.raises(ValueError, match="random phases"):
        p.init(jax.random.key(0), shape, jnp.zeros(shape))


def test_maco_margin_renders_a_larger_canvas_with_the_pictures_spectrum():
    # the canvas's spectrum is the picture's, sampled on finer frequencies: at twice the side every other
    # frequency is exactly the picture-size spectrum's
    small, canvas = param.natural_magnitude(32, 32), param.natural_magnitude(32, 32, canvas=(64, 64))
    assert canvas.shape == (3, 64, 33)
    np.testing.assert_allclose(canvas[:, ::2, ::2], small, rtol=1e-4, atol=1e-4 * float(small.max()))
    p, shape = param.Maco(margin=0.25), (2, 32, 32, 3)
    params = p.init(jax.random.key(0), shape)
    assert params.shape == (2, 3, 48, 25)  # 8 hidden pixels on every edge
    images = p.to_image(params, shape)
    assert images.shape == shape and 0 <= float(images.min()) and float(images.max()) <= 1
    with pytest.raises(ValueError, match="margin"):
        param.Maco(margin=-0.1)
    with pytest.raises(ValueError, match="smaller than the picture"):
        param.natural_magnitude(32, 32, canvas=(16, 32))


def test_identity_crop_is_the_image_and_crops_are_crop_major():
    x = jax.random.uniform(jax.random.key(1), (2, 16, 16, 3))
    same = tfm.Crops(count=1, low=1.0, high=1.0, spread=0.0, noise=0.0)(jax.random.key(0), x)
    np.testing.assert_allclose(np.asarray(same), np.asarray(x), atol=1e-6)
    crops = tfm.Crops(count=3, low=0.5, high=0.5, noise=0.0, size=8)
    out = crops(jax.random.key(0), x)
    assert out.shape == (6, 8, 8, 3) and tfm.copies(tfm.compose(crops, tfm.Flip())) == 3
    # rows k*B + b are crop k of image b: the two images' crops of one draw sit at the same place
    half = tfm.Crops(count=3, low=0.5, high=0.5, noise=0.0, size=8)(jax.random.key(0), jnp.stack([x[0], x[0]]))
    np.testing.assert_allclose(np.asarray(half[0::2]), np.asarray(half[1::2]))
    with pytest.raises(ValueError, match="count >= 1"):
        tfm.Crops(count=0)


def test_render_with_crops_and_importance():
    """After one step the importance map is |d objective / d pixel| summed over channels, over its maximum;
    Crops' copies score as one mean per image, in the vmapped render too."""
    model, variables = tiny_model(16)
    start = jax.random.uniform(jax.random.key(1), (2, 16, 16, 3))
    objective = objs.class_logit(3)
    out = render.render(jax.random.key(0), model, variables, objective, image=start, param=param.Pixel(),
                        transform=tfm.identity(), steps=1, importance=True, progress=False)
    grad = jax.grad(lambda x: objs.evaluate(objective, model, variables, x).sum())(start)
    expected = np.abs(np.asarray(grad)).sum(-1)
    assert expected.max() > 0
    np.testing.assert_allclose(np.asarray(out.importance), expected / expected.max(axis=(1, 2), keepdims=True),
                               atol=1e-5)
    many = render.render_many(jax.random.key(0), model, variables, [objs.channel("conv2", c) for c in (0, 1)],
                              size=16, param=param.Maco(), transform=tfm.Crops(count=2, size=16), steps=3,
                              importance=True, progress=False)
    assert many.images.shape == (2, 1, 16, 16, 3) and many.importance.shape == (2, 1, 16, 16)
    assert np.isfinite(many.history[-1][1]) and float(many.importance.max()) == pytest.approx(1.0)


def test_style_checks_known_answers():
    from jaxviz.io import image

    rng = np.random.default_rng(0)
    photo = image.sample("chelsea", 64)
    assert quality.luminance_ssim(photo, photo) == pytest.approx(1.0)
    assert quality.luminance_ssim(photo, np.clip(photo + rng.normal(0, 0.3, photo.shape), 0, 1)) < 0.5
    red, blue = np.zeros((8, 8, 3)), np.zeros((8, 8, 3))
    red[..., 0], blue[..., 2] = 1.0, 1.0
    assert quality.colour_distance(photo, photo) == 0 and quality.colour_distance(red, blue) == 1.0
    grey = np.full((100, 100, 3), 0.5)
    assert quality.largest_saturated_region(grey) == 0.0
    blob = grey.copy()
    blob[10:30, 10:30] = (0.1, 0.2, 0.95)  # a 20 x 20 saturated blue square: 4% of the image
    blob[60:70, 60:70] = (0.95, 0.1, 0.1)  # and a smaller red one
    assert quality.largest_saturated_region(blob) == pytest.approx(0.04)
    glow = grey.copy()
    glow[40:65, 40:60] = 1.0  # a 25 x 20 white glow: 5% of the image, invisible to the saturation test
    glow[::7, ::7] = 0.99  # and scattered highlights, no region
    assert quality.largest_saturated_region(glow) == 0.0
    assert quality.largest_clipped_region(glow) == pytest.approx(0.05)
    assert quality.largest_clipped_region(grey) == 0.0
