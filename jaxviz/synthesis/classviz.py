"""Class-model visualization: the image a network finds most typical of a class.

Simonyan, Vedaldi & Zisserman (2014) maximize a class logit over the input
with an L2 penalty. Yosinski et al. ("Understanding Neural Networks Through
Deep Visualization", 2015) add regularizers applied after every step
(:class:`Regularizers`): L2 decay, a Gaussian blur every few steps, and
zeroing pixels of small norm or small contribution. Both are ``method="pixel"``.

``method="maco"`` (the default) renders the same objective with MACO (Fel et
al., NeurIPS 2023): the Fourier phase is optimized with the magnitude fixed to
natural photos' spectrum, on random crops of the image with noise added
(:class:`~jaxviz.synthesis.param.Maco`, :class:`~jaxviz.synthesis.transforms.Crops`).
Its pictures have a photo's smoothness and read as the class to other networks;
``RenderResult.importance`` is MACO's transparency map.

``method="fourier"`` is Lucid's recipe: Fourier/decorrelated-colour
parameterization and random pad, jitter, scale and rotation (Olah et al. 2017).
On networks with depthwise convolutions and strided stems (EfficientNet) its
pictures are covered in high-frequency texture.

Example:
    >>> out = class_visualization(jax.random.key(0), model, variables, [9, 285])  # doctest: +SKIP
    >>> out.images.shape  # doctest: +SKIP
    (2, 1, 224, 224, 3)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import dm_pix
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxviz.core import objectives as objs
from jaxviz.synthesis import render
from jaxviz.synthesis import transforms as tfm
from jaxviz.synthesis.param import Fourier, Maco, Pixel

__all__ = ["class_visualization", "Regularizers", "METHODS", "DEFAULT_STEPS"]

METHODS = ("maco", "fourier", "pixel")
DEFAULT_STEPS = 128
_PIXEL_OPTIMIZER = optax.adam(0.03)
#: MACO's optimizer (Fel et al.: NAdam at 1.0 on the phases) and crops: they score 32 crops per step; on Lite0
#: (ten classes, 128 steps, judged by Lite1) 2 crops of 160 px from a 224 px image were recognized as often as 4
#: of 224 px (9 of 10 first either way) at a quarter of the cost, and as photo-smooth (README, "synthesis")
MACO_OPTIMIZER = optax.nadam(1.0)
MACO_CROPS = tfm.Crops(count=2, low=0.5, high=1.0, noise=0.05, scale=5 / 7)


def _percentile_mask(values: jax.Array, pct: float) -> jax.Array:
    """1 where ``values`` (B, H, W) reach the image's ``pct`` percentile, else 0."""
    threshold = jnp.percentile(values.reshape(values.shape[0], -1), pct, axis=1)
    return (values >= threshold[:, None, None]).astype(values.dtype)[..., None]


@dataclasses.dataclass(frozen=True)
class Regularizers:
    """Yosinski et al.'s post-step regularizers, on pixels centred at grey.

    Attributes:
        decay: L2 decay per step, ``x <- (1 - decay) * x``.
        blur_every: blur every this many steps (0: never).
        blur_sigma: the Gaussian's standard deviation in pixels.
        norm_pct: zero pixels whose RGB norm is below this percentile (0: off).
        contrib_pct: zero pixels whose contribution ``sum_c |x * grad|`` is
            below this percentile (0: off).
    """

    decay: float = 1e-3
    blur_every: int = 4
    blur_sigma: float = 0.5
    norm_pct: float = 5.0
    contrib_pct: float = 5.0

    def __call__(self, params: jax.Array, grads: jax.Array, step) -> jax.Array:
        x = (params - 0.5) * (1.0 - self.decay)
        if self.blur_every:
            blurred = dm_pix.gaussian_blur(x, self.blur_sigma, kernel_size=2 * round(3 * self.blur_sigma) + 1)
            x = jnp.where(step % self.blur_every == 0, blurred, x)
        if self.norm_pct:
            x = x * _percentile_mask(jnp.linalg.norm(x, axis=-1), self.norm_pct)
        if self.contrib_pct:
            x = x * _percentile_mask(jnp.sum(jnp.abs(x * grads), axis=-1), self.contrib_pct)
        return jnp.clip(x + 0.5, 0.0, 1.0)


def class_visualization(key: jax.Array, model, variables, targets: int | Sequence[int], *,
                        method: str = "maco", steps: int = DEFAULT_STEPS, size: int | None = None,
                        num_images: int = 1, l2_weight: float = 0.0, regularizers: Regularizers = Regularizers(),
                        optimizer: optax.GradientTransformation | None = None, thresholds: Sequence[int] = (),
                        progress: bool | None = None) -> render.RenderResult:
    """Renders images that maximize the logits of the ``targets`` classes, all in one vmapped loop.

    Args:
        key: PRNG key.
        model, variables: a jaxviz model and its weights.
        targets: one class index or several (each rendered ``num_images`` times).
        method: ``"maco"`` (MACO), ``"fourier"`` (Lucid-style) or ``"pixel"`` (Simonyan + Yosinski).
        steps: optimizer steps.
        size: image side (default: the model's input size).
        l2_weight: weight of an L2 penalty on the image (Simonyan et al.'s lambda).
        regularizers: the ``"pixel"`` method's post-step regularizers.
        optimizer: default NAdam 1.0 for MACO, Adam 0.05 for Fourier and 0.03 for pixels.
        thresholds: steps at which to keep snapshots.

    Returns:
        A :class:`~jaxviz.synthesis.render.RenderResult` with images (N, num_images, H, W, 3)
        (N = number of classes, 1 for an int).
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; valid: {', '.join(METHODS)}")
    classes = [int(targets)] if np.ndim(targets) == 0 else [int(c) for c in targets]
    bad = [c for c in classes if not 0 <= c < model.num_classes]
    if bad:
        raise ValueError(f"class {bad[0]} is outside [0, {model.num_classes})")
    size = size or model.input_size
    objectives = [objs.class_logit(c) - l2_weight * objs.l2() for c in classes]
    common = dict(size=size, num_images=num_images, steps=steps, thresholds=thresholds, progress=progress,
                  desc="classviz")
    if method == "maco":
        return render.render_many(key, model, variables, objectives, param=Maco(), transform=MACO_CROPS,
                                  optimizer=optimizer or MACO_OPTIMIZER, importance=True, **common)
    if method == "fourier":
        return render.render_many(key, model, variables, objectives, param=Fourier(), optimizer=optimizer, **common)
    return render.render_many(key, model, variables, objectives, param=Pixel(noise=0.1),
                              transform=tfm.Roll(max(1, size // 28)), optimizer=optimizer or _PIXEL_OPTIMIZER,
                              post=regularizers, **common)
