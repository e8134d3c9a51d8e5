"""The Grad-CAM family: Grad-CAM++, XGrad-CAM, HiResCAM, LayerCAM, Eigen-CAM and EigenGrad-CAM.

Each maps a spatial layer's activation ``A`` (B, h, w, C) and the gradient ``G`` of the target score with respect
to it to a (B, H, W) map, as pytorch-grad-cam defines them (which says how each differs from Grad-CAM):

===============  ==========================================================================================
Grad-CAM++       channel weights ``sum_ij relu(G) * a``, ``a = G^2 / (2 G^2 + sum_ij(A) G^3 + 1e-6)`` (0 where G=0)
XGrad-CAM        channel weights ``sum_ij G * A / (sum_ij A + 1e-7)``
HiResCAM         ``sum_c G * A`` (element-wise, no averaging: faithful to the score for a linear head)
LayerCAM         ``sum_c relu(G) * A``
Eigen-CAM        the first principal component of ``A`` (centred over positions): no gradient, no target
EigenGrad-CAM    the first principal component of ``G * A``
===============  ==========================================================================================

Weighted methods take ``eigen_smooth=True`` (pytorch-grad-cam's option): the first principal component of the
weighted activations instead of their channel sum. Every map is ReLU'd and, with ``upsample``, resized to the
image as :func:`jaxviz.attribution.cam.grad_cam` is (bilinear, OpenCV's rule); none is min-max normalized
(:func:`~jaxviz.attribution.cam.normalize` does that for display). The principal component's sign is the SVD's,
as in pytorch-grad-cam (where it comes out negative, the ReLU'd map is empty).

References:
    Chattopadhyay et al., "Grad-CAM++", WACV 2018. Fu et al., "Axiom-based Grad-CAM" (XGrad-CAM), BMVC 2020.
    Draelos and Carin, "Use HiResCAM instead of Grad-CAM for faithful explanations", 2020.
    Jiang et al., "LayerCAM", IEEE TIP 2021. Muhammad and Yeasin, "Eigen-CAM", IJCNN 2020.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxviz.attribution.cam import layer_gradient, resize, spatial_layer
from jaxviz.core.objectives import Target

__all__ = ["CAM_METHODS", "cam_map", "grad_cam_plus_plus", "xgrad_cam", "hires_cam", "layer_cam", "eigen_cam",
           "eigen_grad_cam", "principal_projection"]

CAM_METHODS = ("gradcam", "gradcam++", "xgradcam", "hirescam", "layercam", "eigencam", "eigengradcam")


def principal_projection(x: jax.Array) -> jax.Array:
    """(B, h, w, C) -> (B, h, w): each position's centred feature vector projected on the first right singular
    vector of the (h w, C) matrix of positions."""
    b, h, w, c = x.shape
    flat = x.reshape(b, h * w, c)
    flat = flat - jnp.mean(flat, axis=1, keepdims=True)
    _, _, vt = jnp.linalg.svd(flat, full_matrices=False)
    return jnp.einsum("bnc,bc->bn", flat, vt[:, 0]).reshape(b, h, w)


def _weights(method: str, grads: jax.Array, acts: jax.Array) -> jax.Array:
    """(B, 1, 1, C) channel weights of the weighted methods."""
    total = jnp.sum(acts, axis=(1, 2), keepdims=True)
    if method == "gradcam":
        return jnp.mean(grads, axis=(1, 2), keepdims=True)
    if method == "gradcam++":
        g2 = grads ** 2
        a = g2 / (2 * g2 + total * g2 * grads + 1e-6)
        return jnp.sum(jax.nn.relu(grads) * jnp.where(grads != 0, a, 0), axis=(1, 2), keepdims=True)
    return jnp.sum(grads * acts / (total + 1e-7), axis=(1, 2), keepdims=True)  # xgradcam


def cam_map(model, variables, images: jax.Array, target: Target, *, method: str = "gradcam",
            layer: str | None = None, eigen_smooth: bool = False, upsample: bool = True) -> jax.Array:
    """The ``method`` (one of :data:`CAM_METHODS`) map of ``layer`` (default ``model.cam_layer``): (B, H, W) >= 0."""
    if method not in CAM_METHODS:
        raise ValueError(f"method must be one of {', '.join(CAM_METHODS)}, got {method!r}")
    grads, acts = layer_gradient(model, variables, images, target, spatial_layer(model, layer), method)
    if method == "eigencam":
        maps = principal_projection(acts)
    elif method == "eigengradcam":
        maps = principal_projection(grads * acts)
    else:
        if method == "hirescam":
            weighted = grads * acts
        elif method == "layercam":
            weighted = jax.nn.relu(grads) * acts
        else:
            weighted = _weights(method, grads, acts) * acts
        maps = principal_projection(weighted) if eigen_smooth else jnp.sum(weighted, axis=-1)
    maps = jax.nn.relu(maps)
    return resize(maps, images.shape[1], images.shape[2]) if upsample else maps


def grad_cam_plus_plus(model, variables, images, target, **options):
    """Grad-CAM++ (see the module's table); ``options`` as :func:`cam_map`."""
    return cam_map(model, variables, images, target, method="gradcam++", **options)


def xgrad_cam(model, variables, images, target, **options):
    """XGrad-CAM (see the module's table)."""
    return cam_map(model, variables, images, target, method="xgradcam", **options)


def hires_cam(model, variables, images, target, **options):
    """HiResCAM (see the module's table)."""
    return cam_map(model, variables, images, target, method="hirescam", **options)


def layer_cam(model, variables, images, target, **options):
    """LayerCAM (see the module's table)."""
    return cam_map(model, variables, images, target, method="layercam", **options)


def eigen_cam(model, variables, images, target=0, **options):
    """Eigen-CAM (see the module's table); ``target`` is not used."""
    return cam_map(model, variables, images, target, method="eigencam", **options)


def eigen_grad_cam(model, variables, images, target, **options):
    """EigenGrad-CAM (see the module's table)."""
    return cam_map(model, variables, images, target, method="eigengradcam", **options)
