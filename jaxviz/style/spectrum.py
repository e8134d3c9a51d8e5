"""The spectrum constraint of texture synthesis (Liu, Gousseau & Xia, ICPR 2016).

Gram matrices average over positions, so they keep what a texture is made of but
lose long-range order: a brick wall comes back as short staggered bricks without
courses. The Fourier modulus keeps exactly that order (rows of bricks are peaks at
the courses' frequency), and the loss here asks for it:

- :func:`periodic_component`: Moisan's periodic + smooth decomposition (J. Math.
  Imaging Vis. 2011), so the source's borders do not put a false cross into its
  spectrum;
- :func:`spectrum_targets`: the power spectrum of the source's luminance
  (orthonormal FFT, mean removed), read at the output's frequencies, so the
  output may have another size than the source;
- :func:`spectrum_loss`: the squared distance from each image's luminance to its
  projection on the set of images with that modulus (the image's own phase, the
  target's modulus, the image's own mean), as Liu et al. do (they project the
  colour channels with one common phase shift; the luminance alone keeps colour
  fringes out and leaves colour to the colour loss); the projection is held
  fixed, so the gradient pulls the image toward it.

Example:
    >>> target = spectrum_targets(image.sample("brick", 128), (160, 160))   # doctest: +SKIP
    >>> spectrum_loss(images, target)                                        # doctest: +SKIP
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from scipy import ndimage

from jaxviz.io.image import LUMA

__all__ = ["periodic_component", "luminance", "spectrum_targets", "project", "spectrum_loss"]


def periodic_component(image: np.ndarray) -> np.ndarray:
    """(H, W, C) -> (H, W, C): ``image`` less its smooth component, the periodic image nearest to it (Moisan)."""
    u = np.asarray(image, np.float64)
    h, w = u.shape[:2]
    v = np.zeros_like(u)  # the jumps across opposite borders, as Moisan's boundary image
    v[0] += u[-1] - u[0]
    v[-1] -= u[-1] - u[0]
    v[:, 0] += u[:, -1] - u[:, 0]
    v[:, -1] -= u[:, -1] - u[:, 0]
    q = np.cos(2 * np.pi * np.arange(h) / h)[:, None]
    r = np.cos(2 * np.pi * np.arange(w) / w)[None, :]
    denom = 2 * q + 2 * r - 4
    denom[0, 0] = 1.0  # the mean: the smooth component has none
    smooth_hat = np.fft.fft2(v, axes=(0, 1)) / denom[..., None]
    smooth_hat[0, 0] = 0.0
    return u - np.real(np.fft.ifft2(smooth_hat, axes=(0, 1)))


def luminance(images: jax.Array) -> jax.Array:
    """(..., 3) RGB -> (...) luma (Rec. 601). The constraint acts on the luminance, where a texture's order lives:
    per-channel phases drift apart and paint colour fringes, and the colour distribution is the colour loss's."""
    return images @ jnp.asarray(LUMA, images.dtype)


def spectrum_targets(source, shape: tuple[int, int], max_frequency: float | None = None) -> dict[str, jax.Array]:
    """The Fourier modulus, (h, w), that the luminance of an (h, w) image of ``source``'s texture ((H, W, 3) or
    (1, H, W, 3)) should have: the power of the orthonormal FFT of the periodic component of ``source``'s
    luminance (mean removed), read by linear interpolation at the (h, w) grid's frequencies (cycles per pixel),
    scaled to keep the source's variance, then the square root (an orthonormal FFT's power is a power spectral
    density, the same at any size). ``free``: the frequencies left to the image (the mean, and those above
    ``max_frequency`` cycles per pixel, radially; None: none). On an axis where the output is smaller than the
    source, the power is first averaged over the source frequencies between two of the output's."""
    src = np.asarray(source, np.float64)
    src = src[0] if src.ndim == 4 else src
    if src.ndim != 3 or src.shape[-1] != 3:
        raise ValueError(f"source: expected an (H, W, 3) RGB image, got shape {src.shape}")
    p = periodic_component((src @ LUMA)[..., None])[..., 0]
    p = p - p.mean()
    big_h, big_w = p.shape
    power = np.fft.fftshift(np.abs(np.fft.fft2(p, norm="ortho")) ** 2)
    h, w = shape
    # an axis the output samples more coarsely than the source: sum the power between its frequencies (a box
    # over N / n bins, odd so that it stays centred and the spectrum symmetric), so a peak between two of them is
    # not missed
    for axis, (n, big) in enumerate(((h, big_h), (w, big_w))):
        if n < big:
            width = int(np.ceil(big / n)) // 2 * 2 + 1
            power = ndimage.uniform_filter1d(power, size=width, axis=axis, mode="wrap")
    # an output frequency f (cycles per pixel) sits at f * N + N // 2 in the source's shifted spectrum
    fy = np.fft.fftfreq(h)[:, None] * big_h + big_h // 2
    fx = np.fft.fftfreq(w)[None, :] * big_w + big_w // 2
    out = ndimage.map_coordinates(power, np.stack(np.broadcast_arrays(fy, fx)), order=1, mode="grid-wrap")
    out[0, 0] = 0.0
    # interpolation spreads a sharp peak over neighbouring frequencies: rescale to the source's variance per pixel
    out *= (power.sum() / (big_h * big_w)) * (h * w) / max(out.sum(), 1e-30)
    radius = np.hypot(np.fft.fftfreq(h)[:, None], np.fft.fftfreq(w)[None, :])
    # the mean is the image's own (the colour loss matches it)
    free = (radius == 0) if max_frequency is None else (radius > max_frequency) | (radius == 0)
    return {"modulus": jnp.asarray(np.sqrt(out), jnp.float32), "free": jnp.asarray(free)}


def project(images: jax.Array, target: dict[str, jax.Array]) -> jax.Array:
    """The luminance of ``images`` (B, h, w, 3) with its Fourier modulus replaced by ``target``'s (h, w) where
    it is not ``free``, its phase and mean kept: (B, h, w)."""
    f = jnp.fft.fft2(luminance(images), norm="ortho")
    out = jnp.where(target["free"], f, target["modulus"] * f / jnp.maximum(jnp.abs(f), 1e-12))
    return jnp.real(jnp.fft.ifft2(out, norm="ortho"))


def spectrum_loss(images: jax.Array, target: dict[str, jax.Array]) -> jax.Array:
    """Mean squared distance from each image's luminance (B, h, w, 3) to :func:`project` of it (held fixed),
    per image (B,)."""
    projected = jax.lax.stop_gradient(project(images, target))
    return jnp.mean(jnp.square(luminance(images) - projected), axis=(1, 2))
