"""Random image transforms for robust synthesis, each a pure ``t(key, images)``.

Feature visualizations optimized through small random jitters, zooms and
rotations show structure the network sees at any offset rather than
high-frequency patterns that exploit one exact pixel grid (Mordvintsev et al.
2015; Olah et al. 2017). Every transform here is a frozen, hashable config
(static under ``jit``) applied with an explicit key; one draw is shared by the
whole (B, H, W, 3) batch.

Example:
    >>> t = compose(Pad(12), Jitter(8), Scale(0.9, 1.1), Rotate(10.0), Jitter(4))
    >>> out = t(jax.random.key(0), images)  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

__all__ = ["Roll", "Jitter", "Pad", "Scale", "Rotate", "Flip", "Crops", "Compose", "compose", "copies", "standard",
           "identity"]


@dataclasses.dataclass(frozen=True)
class Roll:
    """Circular shift by up to ``max_shift`` pixels in each direction (DeepDream's jitter)."""

    max_shift: int

    def __call__(self, key, images):
        shift = jax.random.randint(key, (2,), -self.max_shift, self.max_shift + 1)
        return jnp.roll(images, (shift[0], shift[1]), axis=(1, 2))


@dataclasses.dataclass(frozen=True)
class Jitter:
    """A random crop ``pixels`` smaller in height and width (Lucid's jitter)."""

    pixels: int

    def __call__(self, key, images):
        b, h, w, c = images.shape
        if self.pixels >= min(h, w):
            raise ValueError(f"Jitter({self.pixels}) needs images larger than {self.pixels} px, got {h}x{w}")
        oy, ox = jax.random.randint(key, (2,), 0, self.pixels + 1)
        return jax.lax.dynamic_slice(images, (0, oy, ox, 0), (b, h - self.pixels, w - self.pixels, c))


@dataclasses.dataclass(frozen=True)
class Pad:
    """Pads every side by ``pixels`` with a constant (grey by default) or by reflection."""

    pixels: int
    mode: str = "constant"
    value: float = 0.5

    def __call__(self, key, images):
        widths = ((0, 0), (self.pixels, self.pixels), (self.pixels, self.pixels), (0, 0))
        if self.mode == "constant":
            return jnp.pad(images, widths, constant_values=self.value)
        return jnp.pad(images, widths, mode=self.mode)


def _bilinear(images, y, x):
    """(B, N, C): ``images`` (B, H, W, C) read at the N points (y, x), bilinearly; edges repeat the nearest pixel."""
    b, h, w, c = images.shape
    y, x = jnp.clip(y, 0, h - 1), jnp.clip(x, 0, w - 1)
    y0, x0 = jnp.floor(y), jnp.floor(x)
    wy, wx = (y - y0)[:, None], (x - x0)[:, None]
    y0, x0 = y0.astype(jnp.int32), x0.astype(jnp.int32)
    y1, x1 = jnp.minimum(y0 + 1, h - 1), jnp.minimum(x0 + 1, w - 1)
    flat = images.reshape(b, h * w, c)

    def at(yy, xx):
        return flat[:, yy * w + xx]

    return (at(y0, x0) * ((1 - wy) * (1 - wx)) + at(y0, x1) * ((1 - wy) * wx)
            + at(y1, x0) * (wy * (1 - wx)) + at(y1, x1) * (wy * wx))


def _affine(images, matrix2):
    """Bilinear resampling about the centre: output pixel p reads input ``c + matrix2 @ (p - c)``.

    Edges repeat the nearest pixel. Written here rather than with
    ``dm_pix.affine_transform``: that interpolates over the channel axis too and,
    vmapped over objectives, ran 160x slower on CPU (0.32 s vs 2 ms per batch of
    ten 248 px images); the two agree to 3e-5.
    """
    b, h, w, c = images.shape
    ys, xs = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32), jnp.arange(w, dtype=jnp.float32), indexing="ij")
    center = jnp.array([(h - 1) / 2, (w - 1) / 2])[:, None]
    y, x = matrix2 @ (jnp.stack([ys.ravel(), xs.ravel()]) - center) + center
    return _bilinear(images, y, x).reshape(b, h, w, c)


@dataclasses.dataclass(frozen=True)
class Scale:
    """Zooms by a factor drawn uniformly from [low, high], keeping the image size."""

    low: float = 0.95
    high: float = 1.05

    def __call__(self, key, images):
        s = jax.random.uniform(key, (), minval=self.low, maxval=self.high)
        return _affine(images, jnp.eye(2) / s)


@dataclasses.dataclass(frozen=True)
class Rotate:
    """Rotates by an angle drawn uniformly from [-degrees, degrees]."""

    degrees: float = 10.0

    def __call__(self, key, images):
        a = jax.random.uniform(key, (), minval=-self.degrees, maxval=self.degrees) * (math.pi / 180)
        cos, sin = jnp.cos(a), jnp.sin(a)
        return _affine(images, jnp.array([[cos, -sin], [sin, cos]]))


@dataclasses.dataclass(frozen=True)
class Flip:
    """Mirrors left-right with probability ``p``."""

    p: float = 0.5

    def __call__(self, key, images):
        return jnp.where(jax.random.bernoulli(key, self.p), images[:, :, ::-1], images)


@dataclasses.dataclass(frozen=True)
class Crops:
    """``count`` random square crops of the batch, each resized to ``size`` px, plus noise (MACO's transform).

    Fel et al. (2023) score every step on many random crops of one image, each resized to the network's
    input and with Gaussian and uniform noise added, and average: the image must work at many zooms and
    positions. The output is (count * B, size, size, C), crop-major (rows ``k * B ... k * B + B - 1`` are
    crop ``k`` of every image); the render loop averages the scores of the :attr:`copies` back to one per
    image.

    Attributes:
        count: crops per step.
        low, high: the crop's side as a fraction of the image's, drawn uniformly per crop.
        spread: standard deviation of the crop's centre around the image's (fraction of the side); crops are
            kept inside the image.
        noise: standard deviation of the Gaussian noise added (and half-width of the uniform noise).
        size: output side in pixels (None: ``scale`` times the image's).
        scale: the output side as a fraction of the image's, when ``size`` is None.
    """

    count: int = 8
    low: float = 0.5
    high: float = 1.0
    spread: float = 0.15
    noise: float = 0.05
    size: int | None = None
    scale: float = 1.0

    def __post_init__(self):
        if self.count < 1 or not 0 < self.low <= self.high <= 1 or not 0 < self.scale <= 4:
            raise ValueError(f"Crops needs count >= 1, 0 < low <= high <= 1 and 0 < scale <= 4, got {self}")

    @property
    def copies(self) -> int:
        return self.count

    def __call__(self, key, images):
        b, h, w, c = images.shape
        s = self.size or max(1, round(self.scale * h))
        k_side, k_centre, k_gauss, k_unif = jax.random.split(key, 4)
        side = jax.random.uniform(k_side, (self.count, 1), minval=self.low, maxval=self.high)
        centre = jnp.clip(0.5 + self.spread * jax.random.normal(k_centre, (self.count, 2)), side / 2, 1 - side / 2)
        grid = (jnp.arange(s, dtype=jnp.float32) + 0.5) / s - 0.5  # output pixel centres, in crop sides

        def crop(cy, cx, sd):
            y = (cy + sd * grid) * h - 0.5
            x = (cx + sd * grid) * w - 0.5
            yy, xx = jnp.meshgrid(y, x, indexing="ij")
            return _bilinear(images, yy.ravel(), xx.ravel()).reshape(b, s, s, c)

        out = jax.vmap(crop)(centre[:, 0], centre[:, 1], side[:, 0]).reshape(self.count * b, s, s, c)
        if self.noise:
            out = out + self.noise * jax.random.normal(k_gauss, out.shape)
            out = out + jax.random.uniform(k_unif, out.shape, minval=-self.noise / 2, maxval=self.noise / 2)
        return out


@dataclasses.dataclass(frozen=True)
class Compose:
    """Applies ``transforms`` in order, each with its own key folded from the one given."""

    transforms: tuple = ()

    @property
    def copies(self) -> int:
        """How many transformed copies of each image the output holds (:class:`Crops` makes several)."""
        return math.prod(copies(t) for t in self.transforms)

    def __call__(self, key, images):
        for i, t in enumerate(self.transforms):
            images = t(jax.random.fold_in(key, i), images)
        return images


def copies(transform) -> int:
    """How many copies of each image ``transform`` returns, crop-major (1 for every transform but
    :class:`Crops` and compositions holding it)."""
    return int(getattr(transform, "copies", 1))


def compose(*transforms) -> Compose:
    """``Compose(transforms)``: the one random transform a render loop takes."""
    return Compose(tuple(transforms))


def identity() -> Compose:
    """No transform."""
    return Compose(())


def standard(scale: float = 1.0) -> Compose:
    """Lucid's standard robustness transforms, sized for ~224 px images (``scale`` multiplies the pixel counts)."""
    px = lambda n: max(1, round(n * scale))  # noqa: E731
    return compose(Pad(px(12)), Jitter(px(8)), Scale(0.9, 1.1), Rotate(10.0), Jitter(px(4)))
