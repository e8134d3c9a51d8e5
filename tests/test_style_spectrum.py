"""The spectrum constraint (jaxviz.style.spectrum) against what it promises: Moisan's periodic component,
the source's power at any output size, and a projection that keeps phase and mean."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxviz.core import loop
from jaxviz.io import image
from jaxviz.style import fast, spectrum, texture

from conftest import tiny_model


def _waves(h, w, fy, fx):
    """A grey image of one plane wave, fy and fx cycles per pixel (integers of cycles over the image)."""
    y, x = np.mgrid[:h, :w]
    g = 0.5 + 0.25 * np.cos(2 * np.pi * (fy * y + fx * x))
    return np.repeat(g[..., None], 3, axis=-1)


def test_periodic_component_removes_the_smooth_part_that_moisan_defines():
    flat = np.full((8, 8, 3), 0.3)
    np.testing.assert_allclose(spectrum.periodic_component(flat), flat, atol=1e-12)
    ramp = np.random.default_rng(0).uniform(size=(32, 48, 1)) + np.linspace(0, 3, 48)[None, :, None]
    smooth = ramp - spectrum.periodic_component(ramp)
    # Moisan: the smooth part's periodic Laplacian is the boundary image (the jumps across opposite borders,
    # nothing inside) and it has no mean
    lap = (np.roll(smooth, 1, 0) + np.roll(smooth, -1, 0) + np.roll(smooth, 1, 1) + np.roll(smooth, -1, 1)
           - 4 * smooth)
    boundary = np.zeros_like(ramp)
    boundary[0] += ramp[-1] - ramp[0]
    boundary[-1] += ramp[0] - ramp[-1]
    boundary[:, 0] += ramp[:, -1] - ramp[:, 0]
    boundary[:, -1] += ramp[:, 0] - ramp[:, -1]
    np.testing.assert_allclose(lap, boundary, atol=1e-10)
    assert abs(smooth.mean()) < 1e-12
    # the periodic part has smaller jumps across the borders than the ramp (3 from left to right)
    p = spectrum.periodic_component(ramp)
    assert np.abs(p[:, 0] - p[:, -1]).mean() < 0.5 * np.abs(ramp[:, 0] - ramp[:, -1]).mean()


def test_targets_put_a_waves_power_at_its_frequency_at_any_size():
    source = _waves(64, 64, 1 / 8, 0)
    same = spectrum.spectrum_targets(source, (64, 64))
    power = np.asarray(same["modulus"]) ** 2
    luma = source @ image.LUMA
    # the orthonormal FFT's power: all of the wave's variance, at +-8 cycles over 64 px
    # (within 1%: the periodic component takes a small smooth part off even a periodic wave)
    np.testing.assert_allclose(power.sum(), luma.var() * 64 * 64, rtol=0.01)
    assert sorted(np.argsort(power.ravel())[-2:].tolist()) == [8 * 64, 56 * 64]
    bigger = np.asarray(spectrum.spectrum_targets(source, (96, 80))["modulus"]) ** 2
    peaks = sorted(np.unravel_index(i, bigger.shape) for i in np.argsort(bigger.ravel())[-2:])
    assert peaks == [(12, 0), (84, 0)]  # 1/8 cycle per pixel is 12 cycles over 96 px
    # a power spectral density: the variance per pixel is the source's whatever the size
    np.testing.assert_allclose(bigger.sum() / (96 * 80), luma.var(), rtol=0.02)
    free = np.asarray(spectrum.spectrum_targets(source, (64, 64), max_frequency=0.2)["free"])
    assert free[0, 0] and not free[8, 0] and free[16, 0] and free[0, 16]


def test_a_smaller_or_odd_output_keeps_the_peak_and_a_symmetric_spectrum():
    # 5 cycles over 128 px: at 64 px the frequency falls between bins 2 and 3, which must share the peak's power
    noise = np.random.default_rng(2).normal(scale=0.02, size=(128, 128, 1))
    source = np.clip(_waves(128, 128, 5 / 128, 0) + noise, 0, 1)
    for shape, bins in (((64, 64), [2, 3]), ((63, 77), [2, 3])):
        power = np.asarray(spectrum.spectrum_targets(source, shape)["modulus"]) ** 2
        near = sum(power[b, x] + power[-b, x] for b in bins for x in (-1, 0, 1))  # the box blurs across too
        assert near > 0.8 * power.sum(), (shape, near / power.sum())
        # Hermitian: the power at f is the power at -f, so a projection's inverse FFT is real
        mirrored = np.roll(power[::-1, ::-1], 1, axis=(0, 1))
        np.testing.assert_allclose(power, mirrored, rtol=1e-5, atol=1e-12)


def test_projection_keeps_phase_and_mean_and_the_loss_is_zero_on_its_own_spectrum():
    rng = np.random.default_rng(1)
    source = rng.uniform(size=(32, 32, 3))
    target = spectrum.spectrum_targets(source, (32, 32))
    x = jnp.asarray(rng.uniform(size=(2, 32, 32, 3)), jnp.float32)
    projected = np.asarray(spectrum.project(x, target))
    luma = np.asarray(spectrum.luminance(x))
    np.testing.assert_allclose(projected.mean(axis=(1, 2)), luma.mean(axis=(1, 2)), atol=1e-5)
    f, g = np.fft.fft2(projected), np.fft.fft2(luma)
    constrained = ~np.asarray(target["free"])
    assert constrained.sum() == 32 * 32 - 1  # all but the mean, with no max_frequency
    np.testing.assert_allclose(np.abs(np.fft.fft2(projected, norm="ortho"))[:, constrained],
                               np.broadcast_to(np.asarray(target["modulus"])[constrained], (2, 1023)), atol=1e-4)
    cos = np.real(f * np.conj(g))[:, constrained] / (np.abs(f) * np.abs(g))[:, constrained]
    assert cos.min() > 0.999  # the same phases
    assert float(spectrum.spectrum_loss(x, target).min()) > 1e-3
    projected_rgb = jnp.repeat(jnp.asarray(projected)[..., None], 3, axis=-1)  # luma of grey = the grey value
    np.testing.assert_allclose(spectrum.spectrum_loss(projected_rgb, target), 0.0, atol=1e-8)


def test_bad_settings_are_refused_before_any_work():
    model, variables = tiny_model()
    source = np.zeros((32, 32, 3), np.float32)
    with pytest.raises(ValueError, match="spectrum_weight must be >= 0"):
        texture.synthesize(jax.random.key(0), model, variables, source, spectrum_weight=-1.0)
    for bad in (float("nan"), None):
        with pytest.raises(ValueError, match="spectrum_weight must be >= 0"):
            texture.synthesize(jax.random.key(0), model, variables, source, spectrum_weight=bad)
    with pytest.raises(ValueError, match="spectrum_max_frequency positive"):
        texture.synthesize(jax.random.key(0), model, variables, source, spectrum_max_frequency=0.0)
    with pytest.raises(ValueError, match="spectrum_weight"):
        fast.train(jax.random.key(0), model, variables, source, np.zeros((1, 32, 32, 3), np.float32), size=32,
                   steps=1, spectrum_weight=1.0)


def test_a_second_texture_of_the_same_shapes_compiles_nothing():
    model, variables = tiny_model()
    source = np.random.default_rng(3).uniform(size=(32, 32, 3)).astype(np.float32)
    texture.synthesize(jax.random.key(0), model, variables, source, steps=3, progress=False)
    before = loop.compiled_programs()
    again = texture.synthesize(jax.random.key(1), model, variables, source * 0.5, steps=3, progress=False)
    assert loop.compiled_programs() == before
    assert np.isfinite(np.asarray(again.images)).all()
