"""Transforms of any CAM method: several layers at once, and test-time augmentation (``aug_smooth``).

Each takes a CAM function ``f(model, variables, images, target, *, layer=..., upsample=..., **options)`` (Grad-CAM,
any of :mod:`.cam_family` or :mod:`.cam_perturbation`) and returns one of the same signature, so they compose
with each other, with ``jit`` and with ``vmap``::

    smooth = cam_compose.aug_smooth(cam_compose.layers(jaxviz.grad_cam, ("blocks.11", "blocks.15")))
    maps = smooth(model, variables, images, 285)          # (B, H, W) in [0, 1]

Both return min-max normalized maps, as pytorch-grad-cam does (it scales every layer's map before averaging, and
every augmented map before the mean): a mean of unscaled maps would let one layer or one copy dominate.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax.numpy as jnp

from jaxviz.attribution.cam import normalize, resize

__all__ = ["layers", "aug_smooth", "AUG_FACTORS"]

#: the brightness factors of pytorch-grad-cam's default augmentation (times a horizontal flip: 6 copies).
AUG_FACTORS = (0.9, 1.0, 1.1)


def layers(cam_fn: Callable, names: Sequence[str]) -> Callable:
    """``cam_fn`` on every layer of ``names``: each map min-max scaled at its layer's resolution, upsampled to the
    image, averaged, and scaled again (pytorch-grad-cam's ``target_layers=[...]``). (B, H, W) in [0, 1]."""
    names = tuple(names)
    if not names:
        raise ValueError("layers needs at least one layer name")

    def several(model, variables, images, target, **options):
        if "layer" in options or "upsample" in options:
            raise TypeError("layers() sets layer= and upsample= itself")
        h, w = images.shape[1:3]
        maps = [resize(normalize(cam_fn(model, variables, images, target, layer=name, upsample=False, **options)),
                       h, w) for name in names]
        return normalize(jnp.mean(jnp.stack(maps), axis=0))  # each map is in [0, 1]: no ReLU needed

    return several


def aug_smooth(cam_fn: Callable, factors: Sequence[float] = AUG_FACTORS) -> Callable:
    """``cam_fn`` averaged over the images and their mirror images, each times every brightness factor; every
    copy's map min-max scaled and flipped back first (pytorch-grad-cam's ``aug_smooth=True``). (B, H, W)."""

    def smooth(model, variables, images, target, **options):
        maps = []
        for flip in (False, True):
            for factor in factors:
                x = images[:, :, ::-1] if flip else images
                m = normalize(cam_fn(model, variables, x * factor, target, **options))
                maps.append(m[:, :, ::-1] if flip else m)
        return jnp.mean(jnp.stack(maps), axis=0)

    return smooth
