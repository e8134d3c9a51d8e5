"""Image parameterizations: what the render loop optimizes, and how it becomes an image.

A parameterization is a frozen, hashable config (a static argument of the
render loop) with three pure functions:

* ``init(key, shape, image=None) -> params`` for images of ``shape`` (B, H, W, 3);
* ``to_image(params, shape) -> images`` in [0, 1];
* ``project(params) -> params``, applied after every optimizer step.

:class:`Pixel` optimizes the pixels themselves (clipped to [0, 1]);
:class:`Fourier` optimizes a scaled Fourier spectrum in a decorrelated colour
space and squashes it with a sigmoid (Olah et al., "Feature Visualization",
Distill 2017): high frequencies are damped, so the optimizer finds structure
before noise.
:class:`Maco` optimizes the Fourier phase only, with the magnitude fixed to the
mean spectrum of natural photos (Fel et al., "Unlocking Feature Visualization for
Deeper Networks with MAgnitude Constrained Optimization", NeurIPS 2023): the image
keeps a natural image's energy at every frequency, so the optimizer can place
structure but cannot add pixel noise, which is what makes the Lucid recipe fail
on modern networks (depthwise convolutions, strided stems).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["Pixel", "Fourier", "Maco", "natural_magnitude", "COLOR_CORRELATION_SQRT"]

#: Square root of ImageNet's RGB colour covariance, as published with Lucid.
COLOR_CORRELATION_SQRT = np.array([[0.26, 0.09, 0.02],
                                   [0.27, 0.00, -0.05],
                                   [0.27, -0.09, 0.03]], np.float32)
_COLOR = COLOR_CORRELATION_SQRT / np.max(np.linalg.norm(COLOR_CORRELATION_SQRT, axis=0))


def _check_shape(shape) -> tuple[int, int, int, int]:
    shape = tuple(int(s) for s in shape)
    if len(shape) != 4 or shape[-1] != 3 or min(shape) < 1:
        raise ValueError(f"image shape must be (B, H, W, 3), got {shape}")
    return shape


@dataclasses.dataclass(frozen=True)
class Pixel:
    """Pixels in [0, 1], projected back into range after every step.

    Attributes:
        noise: standard deviation of the random start around grey.
    """

    noise: float = 0.01

    def init(self, key: jax.Array, shape, image: jax.Array | None = None) -> jax.Array:
        shape = _check_shape(shape)
        if image is not None:
            return jnp.broadcast_to(jnp.asarray(image, jnp.float32), shape)
        return jnp.clip(0.5 + self.noise * jax.random.normal(key, shape), 0.0, 1.0)

    def to_image(self, params: jax.Array, shape=None) -> jax.Array:
        return params

    def project(self, params: jax.Array) -> jax.Array:
        return jnp.clip(params, 0.0, 1.0)


@dataclasses.dataclass(frozen=True)
class Fourier:
    """A 1/f-scaled real FFT spectrum, optionally in decorrelated colour space.

    Attributes:
        decay: spectrum scale is ``1 / f**decay`` (Lucid's ``decay_power``).
        std: standard deviation of the random spectrum at the start.
        decorrelate: map through :data:`COLOR_CORRELATION_SQRT` before the sigmoid.
    """

    decay: float = 1.0
    std: float = 0.01
    decorrelate: bool = True

    def init(self, key: jax.Array, shape, image: jax.Array | None = None) -> jax.Array:
        """Random spectra, or with ``image`` ((H, W, 3) or (B, H, W, 3) in [0, 1]) the spectra whose
        :meth:`to_image` is that image (pixels at 0 or 1 are taken at 0.001 or 0.999: the sigmoid never
        reaches them)."""
        b, h, w, _ = _check_shape(shape)
        if image is None:
            return self.std * jax.random.normal(key, (b, 3, h, w // 2 + 1, 2))
        x = jnp.broadcast_to(jnp.asarray(image, jnp.float32), (b, h, w, 3))
        x = jax.scipy.special.logit(jnp.clip(x, 1e-3, 1 - 1e-3))
        if self.decorrelate:
            x = x @ jnp.asarray(np.linalg.inv(_COLOR.T))
        spectrum = jnp.fft.rfft2(jnp.moveaxis(x, -1, 1) / (np.sqrt(h * w) / 4.0)) / self._scale(h, w)
        return jnp.stack([spectrum.real, spectrum.imag], axis=-1)

    def _scale(self, h: int, w: int) -> np.ndarray:
        fy = np.fft.fftfreq(h)[:, None]
        fx = np.fft.rfftfreq(w)[None, :]
        freqs = np.sqrt(fy * fy + fx * fx)
        return (1.0 / np.maximum(freqs, 1.0 / max(h, w)) ** self.decay).astype(np.float32)

    def to_image(self, params: jax.Array, shape) -> jax.Array:
        _, h, w, _ = _check_shape(shape)
        spectrum = jax.lax.complex(params[..., 0], params[..., 1]) * self._scale(h, w)
        x = jnp.fft.irfft2(spectrum, s=(h, w)) * (np.sqrt(h * w) / 4.0)  # unit-ish variance per pixel
        x = jnp.moveaxis(x, 1, -1)
        if self.decorrelate:
            x = x @ jnp.asarray(_COLOR.T)
        return jax.nn.sigmoid(x)

    def project(self, params: jax.Array) -> jax.Array:
        return params


def natural_magnitude(h: int, w: int, decorrelate: bool = True, canvas: tuple[int, int] | None = None) -> np.ndarray:
    """(3, h, w // 2 + 1) float32: the mean Fourier magnitude of natural photos at h x w.

    scikit-image's photos (:data:`jaxviz.io.image.SAMPLES`), each as its centre crop and four corner crops
    of 70% of its short side, resized to h x w, mean-removed and Hann-windowed (a photo's borders do not
    wrap around; unwindowed, their jumps put a bright cross on the frequency axes, which comes back as
    horizontal and vertical streaks), in :class:`Fourier`'s decorrelated colours when ``decorrelate`` (so
    that recorrelating gives natural colours); each channel's ``|rfft2|`` averaged, rescaled so that the
    window's loss of energy is undone.

    With ``canvas`` (ch, cw), at least (h, w), the photos are zero-padded to it before the FFT: the result,
    (3, ch, cw // 2 + 1), is the same spectrum sampled on the larger canvas's frequencies, so that an image
    of the canvas's size has, pixel for pixel, the texture of photos shown at h x w.
    """
    ch, cw = canvas or (h, w)
    if ch < h or cw < w:
        raise ValueError(f"the canvas {(ch, cw)} is smaller than the picture {(h, w)}")
    return _natural_magnitude(int(h), int(w), bool(decorrelate), int(ch), int(cw))


@functools.lru_cache(maxsize=8)
def _natural_magnitude(h: int, w: int, decorrelate: bool, ch: int, cw: int) -> np.ndarray:
    """:func:`natural_magnitude`, cached under one key per spectrum (``canvas=None`` and ``canvas=(h, w)`` alike)."""
    from jaxviz.io import image

    pictures = []
    for name in image.SAMPLES:
        photo = image.sample(name)
        ph, pw = photo.shape[:2]
        side = min(ph, pw)
        crops = [((ph - side) // 2, (pw - side) // 2, side)]
        small = int(0.7 * side)
        crops += [(top, left, small) for top in (0, ph - small) for left in (0, pw - small)]
        pictures += [image.resize(photo[t:t + c, x:x + c], h, w) for t, x, c in crops]
    x = np.stack(pictures).astype(np.float64)
    x = x - x.mean(axis=(1, 2), keepdims=True)
    window = np.hanning(h)[:, None] * np.hanning(w)[None, :]
    x = x * window[None, :, :, None] / np.sqrt(np.mean(window ** 2))
    if decorrelate:
        x = x @ np.linalg.inv(_COLOR.T.astype(np.float64))
    magnitude = np.abs(np.fft.rfft2(np.moveaxis(x, -1, 1), s=(ch, cw), axes=(2, 3))).mean(axis=0)
    return magnitude.astype(np.float32)


def _standardize(x: jax.Array, axes) -> jax.Array:
    x = x - jnp.mean(x, axis=axes, keepdims=True)
    return x / (jnp.std(x, axis=axes, keepdims=True) + 1e-5)


@dataclasses.dataclass(frozen=True)
class Maco:
    """Phase-only Fourier parameterization; the magnitude is :func:`natural_magnitude`'s (MACO).

    The parameters are the phases, (B, 3, H', W' // 2 + 1) for the canvas H' x W' (the picture's H x W
    plus ``margin`` on every edge). The image is the inverse FFT of
    ``magnitude * exp(i * phase)`` (phases standardized per image), standardized per image,
    recorrelated to RGB and squashed by a sigmoid: every image has natural-image energy at every
    frequency whatever the phases, and the optimizer only moves where that energy goes.

    The inverse FFT is periodic: left alone, the energy that no objective wants gathers at the wrap-around
    corner (presumably because the random crops, kept inside the picture, see it least), as four pale glows
    in the picture's corners. With ``margin``
    the periodic canvas is larger than the picture by that fraction of its side on each edge (its spectrum
    is the photos' at the picture's size, sampled on the canvas's frequencies), standardized as a whole,
    and the picture is its centre: the unwanted energy goes to the margin, which is never shown. On Lite0's
    ten-class visualizations (224 px, 128 steps) the corners' mean brightness was 0.65 against the pictures'
    0.50 without a margin, 0.49 against 0.49 with 0.25 (README, "synthesis").

    Attributes:
        std: standard deviation of the random phases at the start.
        decorrelate: the magnitude is taken, and the image built, in :class:`Fourier`'s decorrelated colours.
        margin: the hidden border of the periodic canvas, as a fraction of the picture's side per edge.
    """

    std: float = 1.0
    decorrelate: bool = True
    margin: float = 0.25

    def __post_init__(self):
        if not 0 <= self.margin <= 1:
            raise ValueError(f"Maco margin must be in [0, 1], got {self.margin}")

    def _canvas(self, h: int, w: int) -> tuple[int, int, int, int]:
        """The canvas's side and the picture's offset in it."""
        mh, mw = round(self.margin * h), round(self.margin * w)
        return h + 2 * mh, w + 2 * mw, mh, mw

    def init(self, key: jax.Array, shape, image: jax.Array | None = None) -> jax.Array:
        b, h, w, _ = _check_shape(shape)
        if image is not None:
            raise ValueError("the MACO parameterization starts from random phases; use Pixel() to start from an "
                             "image")
        ch, cw, _, _ = self._canvas(h, w)
        return self.std * jax.random.normal(key, (b, 3, ch, cw // 2 + 1))

    def to_image(self, params: jax.Array, shape) -> jax.Array:
        _, h, w, _ = _check_shape(shape)
        ch, cw, top, left = self._canvas(h, w)
        magnitude = jnp.asarray(natural_magnitude(h, w, self.decorrelate, (ch, cw)))
        phase = _standardize(params, (1, 2, 3))
        x = jnp.fft.irfft2(magnitude * jnp.exp(1j * phase), s=(ch, cw))
        x = _standardize(jnp.moveaxis(x, 1, -1), (1, 2, 3))[:, top:top + h, left:left + w]
        if self.decorrelate:
            x = x @ jnp.asarray(_COLOR.T)
        return jax.nn.sigmoid(x)

    def project(self, params: jax.Array) -> jax.Array:
        return params
