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
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["Pixel", "Fourier", "COLOR_CORRELATION_SQRT"]

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
        b, h, w, _ = _check_shape(shape)
        if image is not None:
            raise ValueError("the Fourier parameterization starts from noise; use Pixel() to start from an image")
        return self.std * jax.random.normal(key, (b, 3, h, w // 2 + 1, 2))

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
