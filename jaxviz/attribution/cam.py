"""Class activation maps: CAM and Grad-CAM, plus the upsampling and scaling they use.

Both return (B, H, W) maps at the input's resolution, bilinearly upsampled
(half-pixel centres, edges clamped: OpenCV's ``INTER_LINEAR``, as
pytorch-grad-cam resizes) and *not* min-max normalized: :func:`normalize`
does that, per image, for display.

References:
    Zhou et al., "Learning Deep Features for Discriminative Localization", CVPR 2016.
    Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via
    Gradient-based Localization", ICCV 2017.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxviz.core.objectives import Target, score_and_acts
from jaxviz.models import check_names

__all__ = ["cam", "grad_cam", "check_spatial", "layer_gradient", "spatial_layer", "resize", "normalize"]


def resize(maps: jax.Array, height: int, width: int) -> jax.Array:
    """(B, h, w) -> (B, height, width), bilinear with half-pixel centres."""
    return jax.image.resize(maps, (maps.shape[0], height, width), "linear")


def normalize(maps: jax.Array, eps: float = 1e-7) -> jax.Array:
    """Per-map min-max scaling to [0, 1] (pytorch-grad-cam's ``scale_cam_image``)."""
    axes = tuple(range(1, maps.ndim))
    low = jnp.min(maps, axis=axes, keepdims=True)
    high = jnp.max(maps - low, axis=axes, keepdims=True)
    return (maps - low) / (high + eps)


def spatial_layer(model, layer: str | None) -> str:
    """``layer``, or the model's ``cam_layer``, checked against its layers (for every CAM method)."""
    layer = layer or model.cam_layer
    if layer is None:
        raise ValueError(f"{model.name} has no default CAM layer; pass layer=, one of: {', '.join(model.layers)}")
    return check_names(layer, model.layers)[0]


def check_spatial(shape, layer: str, what: str) -> None:
    """A CAM reads a (B, h, w, C) layer: a clear error for any other shape."""
    if len(shape) != 4:
        raise ValueError(f"{what} needs a spatial layer; {layer!r} has shape {tuple(shape)}")


def layer_gradient(model, variables, images: jax.Array, target: Target, layer: str,
                   what: str = "grad_cam") -> tuple[jax.Array, jax.Array]:
    """(gradient of the scores w.r.t. a spatial layer, the layer's activation), both (B, h, w, C)."""
    probe = jax.eval_shape(lambda x: model.apply(variables, x, capture=[layer])[1][layer], images)
    check_spatial(probe.shape, layer, what)

    def total(delta):
        scores, acts = score_and_acts(model, variables, images, target, capture=(layer,), perturb={layer: delta})
        return jnp.sum(scores), acts[layer]

    return jax.grad(total, has_aux=True)(jnp.zeros(probe.shape, probe.dtype))


def grad_cam(model, variables, images: jax.Array, target: Target, *, layer: str | None = None,
             upsample: bool = True) -> jax.Array:
    """Grad-CAM: ReLU of the activation maps weighted by their mean gradient.

    Args:
        layer: any named spatial layer (default ``model.cam_layer``).
        upsample: resize to the images' resolution (else the layer's).

    Returns:
        (B, H, W) maps, >= 0, not normalized.
    """
    grads, acts = layer_gradient(model, variables, images, target, spatial_layer(model, layer))
    weights = jnp.mean(grads, axis=(1, 2), keepdims=True)
    maps = jax.nn.relu(jnp.sum(weights * acts, axis=-1))
    return resize(maps, images.shape[1], images.shape[2]) if upsample else maps


def cam(model, variables, images: jax.Array, target, *, upsample: bool = True) -> jax.Array:
    """CAM for networks that globally average-pool into their classifier.

    ``sum_k w[k, target] * A_k`` over the channels of ``model.cam_layer``,
    upsampled; not ReLU'd (negative evidence is kept), not normalized. The
    classifier weights are read off the gradient: where ``cam_layer`` reaches the
    logits through a global average pool and one linear layer (CAM's setting),
    ``d logit / d A_k(y, x) = w[k, target] / (h w)``, so no parameter path is needed
    and any adapted model works.

    Args:
        target: an int or one int per image (a class, since CAM reads the
            classifier's weights).
        upsample: resize to the images' resolution (else ``cam_layer``'s).
    """
    if model.cam_layer is None:
        raise ValueError(f"CAM needs a global-average-pooled network; {model.name} has no cam_layer")
    if callable(target):
        raise TypeError("cam explains a class: pass an int or one int per image")
    grads, feats = layer_gradient(model, variables, images, target, model.cam_layer, "cam")
    h, w = feats.shape[1:3]
    maps = jnp.sum(grads * feats, axis=-1) * (h * w)
    return resize(maps, images.shape[1], images.shape[2]) if upsample else maps
