"""Neural style transfer (Gatys, Ecker & Bethge, CVPR 2016).

An image is optimized, pixels directly, so that its features at one layer
match the content image's (:func:`~jaxviz.gram.content_loss`) and its Gram
matrices at several layers match the style image's
(:func:`~jaxviz.gram.style_loss`), plus a small total-variation prior:

    loss = content_weight * content + style_weight * style + tv_weight * tv

- ``style_scale``: the style image is resized (keeping its aspect ratio) so
  that its short side is ``style_scale`` times the content's before its Gram
  matrices are taken. Gram matrices do not depend
  on the image size, so the two resolutions may differ, and this is the knob
  that sets how large the style's brush strokes come out (seed 002).
- ``scales``: coarse to fine. The image is optimized at each fraction of the
  full size in turn, upsampled in between (each scale gets ``steps`` steps).
- ``optimizer``: ``"lbfgs"`` (optax's L-BFGS with a zoom line search, the
  classic choice) or ``"adam"`` (projected to [0, 1] after every step).
- ``preserve_color``: keep the content's colours; only the luminance is
  stylized (Gatys et al. 2017, "Controlling Perceptual Factors", the YIQ
  variant, applied to the result).

:func:`minimize` is the loop texture synthesis shares: one jitted step per call
(XLA:CPU runs convolutions slowly inside while loops), a host sync per chunk
for the progress bar.

Example:
    >>> r = transfer(jax.random.key(0), model, variables, photo, painting)  # doctest: +SKIP
    >>> r.images.shape, r.style_loss_end < r.style_loss_start              # doctest: +SKIP
    ((1, 224, 224, 3), True)
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxviz import gram
from jaxviz.render import progress_bar

__all__ = ["transfer", "gram_optimize", "minimize", "style_loss_of", "content_loss_of", "preserve_color", "optimizer",
           "Result", "DEFAULT_STEPS", "DEFAULT_CONTENT_WEIGHT", "DEFAULT_TV_WEIGHT"]

DEFAULT_STEPS = 100
DEFAULT_CONTENT_WEIGHT = 1.0  # the style weight is per network: jaxviz.gram.default_layers
DEFAULT_TV_WEIGHT = 10.0
_CHUNK = 10


class Result(NamedTuple):
    """``images`` (B, H, W, 3) in [0, 1]; losses are unweighted and per image, measured on the clipped images
    (``content_loss``: None for textures); ``history``: (step, total weighted loss) per chunk."""

    images: jax.Array
    style_loss_start: np.ndarray
    style_loss_end: np.ndarray
    content_loss: np.ndarray | None
    history: list[tuple[int, float]]


@functools.cache
def optimizer(name: str, learning_rate: float | None = None) -> optax.GradientTransformation:
    """``"lbfgs"`` (optax, zoom line search; ``learning_rate`` None) or ``"adam"`` (default 0.03 on [0, 1]
    pixels). Cached, so repeated runs share compiled steps."""
    if name == "lbfgs":
        return optax.lbfgs(learning_rate)
    if name == "adam":
        return optax.adam(0.03 if learning_rate is None else learning_rate)
    raise ValueError(f"unknown optimizer {name!r}; choose lbfgs or adam")


@functools.partial(jax.jit, static_argnames=("loss_fn", "opt", "line_search", "project"))
def _step(params, opt_state, data, *, loss_fn, opt, line_search, project):
    value_fn = functools.partial(loss_fn, data=data)
    if line_search:  # L-BFGS: reuse the value and gradient its line search already computed
        value, grads = optax.value_and_grad_from_state(value_fn)(params, state=opt_state)
        updates, opt_state = opt.update(grads, opt_state, params, value=value, grad=grads, value_fn=value_fn)
    else:
        value, grads = jax.value_and_grad(value_fn)(params)
        updates, opt_state = opt.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    if project:
        params = jnp.clip(params, 0.0, 1.0)
    return params, opt_state, value


def minimize(loss_fn: Callable, params: jax.Array, data, *, opt: optax.GradientTransformation, steps: int,
             line_search: bool = False, project: bool = False, progress: bool | None = None, desc: str = "style",
             history: list | None = None, start: int = 0) -> jax.Array:
    """``steps`` optimizer steps on ``loss_fn(params, data=data) -> scalar``; returns the new params.

    ``loss_fn`` and ``opt`` are static (hashable; pass module-level functions or ``functools.partial`` of them
    with static arguments), ``data`` is a pytree of arrays. ``line_search``: ``opt`` is optax's L-BFGS (it is
    given the loss function). ``project`` clips to [0, 1] after each step.
    """
    if steps < 0:
        raise ValueError(f"steps must be non-negative, got {steps}")
    opt_state = opt.init(params)
    value = None
    with progress_bar(steps, desc, progress) as bar:
        for i in range(steps):
            params, opt_state, value = _step(params, opt_state, data, loss_fn=loss_fn, opt=opt, line_search=line_search,
                                             project=project)
            if (i + 1) % _CHUNK == 0 or i + 1 == steps:
                v = float(value)  # one host sync per chunk
                if history is not None:
                    history.append((start + i + 1, v))
                bar.update((i % _CHUNK) + 1)
                bar.set_postfix(loss=f"{v:.4g}")
    return params


def _features(model, variables, images, layers):
    _, acts = model.apply(variables, images, capture=tuple(layers))
    return acts


def style_loss_of(model, variables, images: jax.Array, targets: dict, weights=None) -> jax.Array:
    """Unweighted :func:`~jaxviz.gram.style_loss` of ``images`` against Gram ``targets``, per image."""
    return gram.style_loss(_features(model, variables, images, targets), targets, weights)


def content_loss_of(model, variables, images: jax.Array, reference: jax.Array, layer: str) -> jax.Array:
    """Content-layer loss of ``images`` against ``reference`` images (resized to match), per image."""
    h, w = images.shape[1:3]
    reference = jnp.asarray(reference, jnp.float32)
    if reference.ndim == 3:
        reference = reference[None]
    if reference.shape[1:3] != (h, w):
        reference = jax.image.resize(reference, (reference.shape[0], h, w, 3), "linear")
    acts = _features(model, variables, jnp.concatenate([images, reference]), (layer,))[layer]
    return gram.content_loss(acts[:len(images)], acts[len(images):])


def _transfer_loss(x, *, data, model, style_layers, content_layer):
    """The weighted Gatys loss of pixels ``x`` (summed over the batch)."""
    variables, targets, content, weights = data["variables"], data["style"], data["content"], data["weights"]
    layers = tuple(dict.fromkeys((*style_layers, *((content_layer,) if content_layer else ()))))
    acts = _features(model, variables, x, layers)
    loss = weights["style"] * gram.style_loss(acts, targets, data["layer_weights"])
    if content_layer:
        loss = loss + weights["content"] * gram.content_loss(acts[content_layer], content)
    loss = loss + weights["tv"] * gram.total_variation(x)
    return jnp.sum(loss)


def _resize(images: jax.Array, h: int, w: int) -> jax.Array:
    if images.shape[1:3] == (h, w):
        return images
    return jnp.clip(jax.image.resize(images, (images.shape[0], h, w, 3), "linear"), 0.0, 1.0)


def check_images(images, what: str) -> jax.Array:
    """(H, W, 3) or (B, H, W, 3) finite RGB -> (B, H, W, 3) float32, or a ValueError naming ``what``."""
    images = jnp.asarray(images, jnp.float32)
    if images.ndim == 3:
        images = images[None]
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"{what}: expected (H, W, 3) or (B, H, W, 3) RGB images, got shape {images.shape}")
    if not bool(jnp.all(jnp.isfinite(images))):
        raise ValueError(f"{what}: contains NaN or infinite values")
    return images


def style_shape(style: jax.Array, short: float) -> tuple[float, float]:
    """(h, w) of ``style`` ((B, H, W, 3)) resized to a short side of ``short``, its aspect ratio kept."""
    return tuple(short * d / min(style.shape[1:3]) for d in style.shape[1:3])


def _scaled(n: int, f: float) -> int:
    return max(16, round(n * f))


def transfer(key: jax.Array, model, variables, content, style, *, style_weight: float | None = None,
             content_weight: float = DEFAULT_CONTENT_WEIGHT, tv_weight: float = DEFAULT_TV_WEIGHT,
             style_scale: float = 1.0, scales: Sequence[float] = (1.0,), steps: int = DEFAULT_STEPS,
             optimizer_name: str = "adam", learning_rate: float | None = None, init: str = "content",
             style_layers: Sequence[str] | None = None, content_layer: str | None = None,
             layer_weights: dict[str, float] | None = None, preserve_colors: bool = False,
             progress: bool | None = None) -> Result:
    """Renders ``content`` ((B, H, W, 3) or (H, W, 3) in [0, 1]) in the style of ``style`` (one image).

    Args:
        key: PRNG key (the noise start, ``init="noise"``).
        model, variables: any zoo model; layers default to :func:`~jaxviz.gram.default_layers`.
        style_weight, content_weight, tv_weight: the weights of the three terms (style: default the
            network's, :func:`~jaxviz.gram.default_layers`).
        style_scale: the style image is taken at this multiple of the content's size.
        scales: fractions of the full size, optimized coarse to fine.
        steps: optimizer steps per scale.
        optimizer_name: ``"adam"`` or ``"lbfgs"`` (``learning_rate`` for Adam; default 0.03).
        init: start from the ``"content"`` image or from uniform ``"noise"``.
        preserve_colors: keep the content's colours (luminance-only transfer).
    """
    return gram_optimize(key, model, variables, check_images(content, "content"), check_images(style, "style")[:1],
                style_weight=style_weight, content_weight=content_weight, tv_weight=tv_weight,
                style_scale=style_scale, scales=scales, steps=steps, optimizer_name=optimizer_name,
                learning_rate=learning_rate, init=init, style_layers=style_layers, content_layer=content_layer,
                layer_weights=layer_weights, preserve_colors=preserve_colors, progress=progress, desc="style")


def gram_optimize(key, model, variables, content, style, *, size=None, batch=1, style_weight, content_weight,
                  tv_weight, style_scale, scales, steps, optimizer_name, learning_rate, init, style_layers,
                  content_layer, layer_weights, preserve_colors, progress, desc) -> Result:
    """The engine under :func:`transfer` and :func:`jaxviz.texture.synthesize`: every argument explicit
    (``content`` None: a texture of ``batch`` images of ``size`` (h, w)); prefer those two."""
    from jaxviz.models import check_names

    defaults = gram.default_layers(model)
    style_layers = check_names(style_layers or defaults.style, model.layers)
    if content is not None:
        content_layer = check_names(content_layer or defaults.content, model.layers)[0]
        b, h, w = content.shape[:3]
    else:
        content_layer, (b, h, w) = None, (batch, *size)
    if style_scale <= 0 or not scales or min(scales) <= 0:
        raise ValueError(f"style_scale and scales must be positive, got {style_scale} and {list(scales)}")
    if init not in ("content", "noise") or (init == "content" and content is None):
        raise ValueError(f"init must be 'content' or 'noise', got {init!r}")
    # The style's own aspect ratio; its short side style_scale times the content's (a texture: its own size).
    style_h, style_w = style_shape(style, style_scale * min(h, w) if content is not None else min(style.shape[1:3]))
    layer_weights = {n: 1.0 for n in style_layers} if layer_weights is None else \
        {n: float(layer_weights[n]) for n in style_layers}
    opt = optimizer(optimizer_name, learning_rate)
    loss_fn = functools.partial(_transfer_loss, model=model, style_layers=style_layers,
                                content_layer=content_layer)
    style_weight = defaults.style_weight if style_weight is None else style_weight
    weights = {"style": jnp.float32(style_weight), "content": jnp.float32(content_weight),
               "tv": jnp.float32(tv_weight)}
    history: list[tuple[int, float]] = []
    x, start_loss = None, None
    for n, frac in enumerate(sorted(scales)):
        sh, sw = _scaled(h, frac), _scaled(w, frac)
        sty = _resize(style, _scaled(style_h, frac), _scaled(style_w, frac))
        targets = gram.style_targets(model, variables, sty, style_layers)
        target_content = None
        if content is not None:
            target_content = _features(model, variables, _resize(content, sh, sw), (content_layer,))[content_layer]
        if x is None:
            x = _resize(content, sh, sw) if init == "content" else jax.random.uniform(key, (b, sh, sw, 3))
            start_loss = np.asarray(style_loss_of(model, variables, x, targets, layer_weights))
        else:
            x = _resize(x, sh, sw)
        data = {"variables": variables, "style": targets, "content": target_content, "weights": weights,
                "layer_weights": layer_weights}
        x = minimize(loss_fn, x, data, opt=opt, steps=steps, line_search=optimizer_name == "lbfgs",
                     project=optimizer_name == "adam", progress=progress,
                     desc=f"{desc} {sh}x{sw}", history=history, start=n * steps)
    x = jnp.clip(x, 0.0, 1.0)
    if preserve_colors and content is not None:
        x = preserve_color(x, content)
    end_loss = np.asarray(style_loss_of(model, variables, x, targets, layer_weights))
    content_end = None if content is None else np.asarray(
        content_loss_of(model, variables, x, content, content_layer))
    return Result(x, start_loss, end_loss, content_end, history)


_YIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], np.float32)


def preserve_color(stylized: jax.Array, content: jax.Array) -> jax.Array:
    """The luminance (YIQ's Y) of ``stylized`` with the colour (I, Q) of ``content``, in [0, 1]."""
    content = _resize(jnp.asarray(content, jnp.float32), *stylized.shape[1:3])
    yiq_s, yiq_c = stylized @ _YIQ.T, content @ _YIQ.T
    mixed = jnp.concatenate([yiq_s[..., :1], yiq_c[..., 1:]], axis=-1)
    return jnp.clip(mixed @ np.linalg.inv(_YIQ).T, 0.0, 1.0)
