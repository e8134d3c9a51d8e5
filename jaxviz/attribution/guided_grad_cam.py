"""Guided Grad-CAM: guided backprop's fine detail, masked by Grad-CAM's class localization.

``guided_backprop(x) * upsample(grad_cam(x))``, the Grad-CAM map broadcast over the colour channels, as Captum's
``GuidedGradCam`` defines it: the layer's Grad-CAM (ReLU'd) is upsampled to the image by nearest neighbour
(PyTorch's ``interpolate(mode="nearest")``: source index ``floor(i * h / H)``) unless ``interpolation="linear"``.

Reference:
    Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via Gradient-based Localization",
    ICCV 2017, section 3.1.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxviz.attribution.cam import grad_cam, resize
from jaxviz.attribution.guided import guided_backprop
from jaxviz.core.objectives import Target

__all__ = ["guided_grad_cam", "nearest"]


def nearest(maps: jax.Array, height: int, width: int) -> jax.Array:
    """(B, h, w) -> (B, height, width) by nearest neighbour, PyTorch's rule (no half-pixel offset)."""
    rows = (jnp.arange(height) * maps.shape[1]) // height
    cols = (jnp.arange(width) * maps.shape[2]) // width
    return maps[:, rows][:, :, cols]


def guided_grad_cam(model, variables, images: jax.Array, target: Target, *, layer: str | None = None,
                    interpolation: str = "nearest") -> jax.Array:
    """Guided backprop times the upsampled Grad-CAM of ``layer`` (default ``model.cam_layer``): (B, H, W, 3)."""
    if interpolation not in ("nearest", "linear"):
        raise ValueError(f"interpolation must be 'nearest' or 'linear', got {interpolation!r}")
    cams = grad_cam(model, variables, images, target, layer=layer, upsample=False)
    h, w = images.shape[1:3]
    upsampled = nearest(cams, h, w) if interpolation == "nearest" else resize(cams, h, w)
    return guided_backprop(model, variables, images, target) * upsampled[..., None]
