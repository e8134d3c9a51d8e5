"""Neural style transfer (Gatys, Ecker & Bethge, CVPR 2016).

An image is optimized, pixels directly, so that its features at one layer
match the content image's (:func:`~jaxviz.style.gram.content_loss`) and its Gram
matrices at several layers match the style image's
(:func:`~jaxviz.style.gram.style_loss`), plus a small total-variation prior:

    loss = content_weight * content + style_weight * style + tv_weight * tv

The weights, layers and scales are one :class:`Settings` (its fields also work as keyword arguments):

- ``style_scale``: the style image is resized (keeping its aspect ratio) so
  that its short side is ``style_scale`` times the content's before its Gram
  matrices are taken. Gram matrices do not depend
  on the image size, so the two resolutions may differ, and this is the knob
  that sets how large the style's brush strokes come out (seed 002).
- ``scales``: coarse to fine. The image is optimized at each fraction of the
  full size in turn, upsampled in between (each scale gets ``steps`` steps).
- ``optimizer``: any optax optimizer: Adam (the default, projected to [0, 1]
  after every step) or ``optax.lbfgs()`` (a zoom line search, the classic choice).
- ``preserve_color``: keep the content's colours; only the luminance is
  stylized (Gatys et al. 2017, "Controlling Perceptual Factors", the YIQ
  variant, applied to the result).
- ``param``: what is optimized: the pixels (Gatys') or the decorrelated
  Fourier spectrum of :class:`jaxviz.synthesis.param.Fourier`, started from
  the image itself. Per network by default (:func:`~jaxviz.style.gram.default_layers`):
  on EfficientNet-Lite, whose strided stem turns a pixel-space transfer into
  colour speckle, the spectrum's gradient paints strokes instead.

:func:`minimize` is the step texture synthesis shares, run by :func:`jaxviz.core.loop.run`.

Example:
    >>> r = transfer(jax.random.key(0), model, variables, photo, painting)  # doctest: +SKIP
    >>> r.images.shape, r.style_loss_end < r.style_loss_start              # doctest: +SKIP
    ((1, 224, 224, 3), True)
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxviz.core import forward, loop
from jaxviz.style import gram, spectrum
from jaxviz.synthesis.param import Fourier

__all__ = ["transfer", "gram_optimize", "minimize", "style_loss_of", "content_loss_of", "preserve_color", "Settings",
           "with_overrides", "check_optimizer", "Result", "PARAMS", "DEFAULT_STEPS", "DEFAULT_CONTENT_WEIGHT",
           "DEFAULT_TV_WEIGHT", "DEFAULT_OPTIMIZER"]

DEFAULT_STEPS = 100
DEFAULT_CONTENT_WEIGHT = 1.0  # the style weight is per network: jaxviz.style.gram.default_layers
DEFAULT_TV_WEIGHT = 10.0
#: Adam, 0.03 on [0, 1] pixels (projected back to [0, 1] after every step). ``optax.lbfgs()`` is the classic
#: alternative (zoom line search, no projection). Reuse one object: a new one compiles a new step.
DEFAULT_OPTIMIZER = optax.adam(0.03)
_CHUNK = 10
_SPECTRUM = Fourier()


@dataclasses.dataclass(frozen=True)
class Settings:
    """What a Gram-matrix optimization balances: the loss weights, the layers and the scales.

    Shared by :func:`transfer`, :func:`jaxviz.style.texture.synthesize` (which reads the style terms only) and
    :func:`jaxviz.style.fast.train` (the weights, ``style_scale`` and the layers). Every function that takes a
    ``settings`` also takes its fields as keyword overrides: ``transfer(..., style_weight=1e4)``.

    Attributes:
        style_weight: weight of the style (Gram) loss; None: the network's, :func:`~jaxviz.style.gram.default_layers`.
        content_weight: weight of the content loss.
        tv_weight: weight of the (squared) total variation.
        style_scale: the style image is taken at this multiple of the content's size (the brush-stroke size).
        scales: fractions of the full size, optimized coarse to fine (``steps`` each).
        init: start from the ``"content"`` image or from uniform ``"noise"``.
        style_layers, content_layer: default :func:`~jaxviz.style.gram.default_layers`.
        layer_weights: ``{style layer: weight}`` (default 1 each).
        preserve_colors: keep the content's colours (luminance-only transfer).
        colour_weight: weight of :func:`~jaxviz.style.gram.colour_loss` (the style's colour distribution);
            None: 0 (for :func:`transfer`, whose content and Gram matrices carry the colours). The textures'
            defaults use :data:`jaxviz.style.texture.DEFAULT_COLOUR_WEIGHT` (otherwise blue and yellow casts
            over grey sources), a feed-forward network :data:`jaxviz.style.fast.DEFAULT_COLOUR_WEIGHT` (otherwise
            saturated blobs).
        spectrum_weight: weight of :func:`~jaxviz.style.spectrum.spectrum_loss` (the style's Fourier modulus:
            long-range order, such as a wall's rows of bricks, that Gram matrices lose); 0: off.
        spectrum_max_frequency: the constraint holds up to this frequency (cycles per pixel); None: everywhere.
        param: optimize the ``"pixel"``s or the ``"fourier"`` spectrum (started from the image at every
            scale); None: the network's (:func:`~jaxviz.style.gram.default_layers`) for a transfer, pixels for
            a texture.
    """

    style_weight: float | None = None
    content_weight: float = DEFAULT_CONTENT_WEIGHT
    tv_weight: float = DEFAULT_TV_WEIGHT
    style_scale: float = 1.0
    scales: tuple[float, ...] = (1.0,)
    init: str = "content"
    style_layers: tuple[str, ...] | None = None
    content_layer: str | None = None
    layer_weights: Mapping[str, float] | None = None
    preserve_colors: bool = False
    colour_weight: float | None = None
    spectrum_weight: float = 0.0
    spectrum_max_frequency: float | None = None
    param: str | None = None


PARAMS = ("pixel", "fourier")


def with_overrides(base: Settings | None, overrides: Mapping, default: Settings = Settings()) -> Settings:
    """``base`` (or ``default``) with the keyword ``overrides`` applied; an unknown name is a ValueError."""
    fields = {f.name for f in dataclasses.fields(Settings)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(f"unknown style setting {unknown[0]!r}; valid: {', '.join(sorted(fields))}")
    changes = {k: tuple(v) if k in ("scales", "style_layers") and v is not None else v for k, v in overrides.items()}
    return dataclasses.replace(base or default, **changes)


def check_optimizer(optimizer) -> tuple[optax.GradientTransformation, bool]:
    """``(optimizer, line_search)``: whether it is a line-search method (optax's L-BFGS) that needs the loss."""
    if not isinstance(optimizer, optax.GradientTransformation):
        raise ValueError("optimizer must be an optax GradientTransformation (e.g. optax.adam(0.03) or "
                         f"optax.lbfgs()), got {optimizer!r}")
    state = jax.eval_shape(optimizer.init, jnp.zeros(2))
    is_search = lambda x: isinstance(x, (optax.ScaleByZoomLinesearchState, optax.ScaleByBacktrackingLinesearchState))
    return optimizer, any(is_search(x) for x in jax.tree.leaves(state, is_leaf=is_search))


class Result(NamedTuple):
    """``images`` (B, H, W, 3) in [0, 1]; losses are unweighted and per image, measured on the clipped images
    (``content_loss``: None for textures); ``history``: (step, total weighted loss) per chunk."""

    images: jax.Array
    style_loss_start: np.ndarray
    style_loss_end: np.ndarray
    content_loss: np.ndarray | None
    history: list[tuple[int, float]]


@dataclasses.dataclass(frozen=True)
class _Step:
    """One optimizer step on ``loss_fn(params, data=data)`` (static: the loss and the optimizer)."""

    loss_fn: Callable
    opt: optax.GradientTransformation
    line_search: bool
    project: bool

    def __call__(self, carry, i, data):
        params, opt_state = carry
        value_fn = functools.partial(self.loss_fn, data=data)
        if self.line_search:  # L-BFGS: reuse the value and gradient its line search already computed
            value, grads = optax.value_and_grad_from_state(value_fn)(params, state=opt_state)
            updates, opt_state = self.opt.update(grads, opt_state, params, value=value, grad=grads,
                                                 value_fn=value_fn)
        else:
            value, grads = jax.value_and_grad(value_fn)(params)
            updates, opt_state = self.opt.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        if self.project:
            params = jnp.clip(params, 0.0, 1.0)
        return (params, opt_state), value


def minimize(loss_fn: Callable, params: jax.Array, data, *, optimizer: optax.GradientTransformation, steps: int,
             project: bool | None = None, progress: bool | None = None, desc: str = "style",
             history: list | None = None, start: int = 0) -> jax.Array:
    """``steps`` optimizer steps on ``loss_fn(params, data=data) -> scalar``; returns the new params.

    ``loss_fn`` and ``optimizer`` are static (hashable; pass module-level functions or
    :func:`jaxviz.core.loop.step` bindings of them, which compare by value: a ``functools.partial`` compiles
    anew every time), ``data`` is a pytree of arrays. A line-search optimizer (optax's L-BFGS) is
    given the loss function. ``project`` clips to [0, 1] after each step (default: unless it line-searches,
    whose curvature memory clipping would break). ``history`` gets :func:`jaxviz.core.loop.run`'s history, step
    numbers offset by ``start``.
    """
    optimizer, line_search = check_optimizer(optimizer)
    project = not line_search if project is None else project
    out = loop.run(_Step(loss_fn, optimizer, line_search, project), (params, optimizer.init(params)), data,
                   steps=steps,
                   chunk=_CHUNK, desc=desc, progress=progress, offset=start, kind="style")
    if history is not None:
        history.extend(out.history)
    return out.carry[0]


def _features(model, variables, images, layers):
    return forward.capture(model, variables, images, layers)


def style_loss_of(model, variables, images: jax.Array, targets: dict, weights=None) -> jax.Array:
    """Unweighted :func:`~jaxviz.style.gram.style_loss` of ``images`` against Gram ``targets``, per image."""
    return _style_loss(_features(model, variables, images, targets), targets, weights)


_style_loss = jax.jit(gram.style_loss)  # one program, not a few operations' per layer


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
    if data["colours"] is not None:
        loss = loss + weights["colour"] * gram.colour_loss(x, data["colours"])
    if data["spectrum"] is not None:
        loss = loss + weights["spectrum"] * spectrum.spectrum_loss(x, data["spectrum"])
    return jnp.sum(loss)


def _through_spectrum(spectrum, *, data, loss_fn, shape):
    """``loss_fn`` of the image that the Fourier ``spectrum`` of ``shape`` stands for."""
    return loss_fn(_SPECTRUM.to_image(spectrum, shape), data=data)


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


def transfer(key: jax.Array, model, variables, content, style, settings: Settings | None = None, *,
             steps: int = DEFAULT_STEPS, optimizer: optax.GradientTransformation = DEFAULT_OPTIMIZER,
             progress: bool | None = None, **overrides) -> Result:
    """Renders ``content`` ((B, H, W, 3) or (H, W, 3) in [0, 1]) in the style of ``style`` (one image).

    Args:
        key: PRNG key (the noise start, ``init="noise"``).
        model, variables: any model; layers default to :func:`~jaxviz.style.gram.default_layers`.
        settings: the weights, layers and scales (:class:`Settings`); its fields may also be given as keyword
            ``overrides`` (``style_weight=1e4, scales=(0.5, 1.0)``).
        steps: optimizer steps per scale.
        optimizer: an optax optimizer (default Adam 0.03; ``optax.lbfgs()`` for L-BFGS).

    Returns:
        A :class:`Result`.
    """
    return gram_optimize(key, model, variables, check_images(content, "content"), check_images(style, "style")[:1],
                         with_overrides(settings, overrides), steps=steps, optimizer=optimizer, progress=progress,
                         desc="style")


def gram_optimize(key, model, variables, content, style, settings: Settings, *, steps: int,
                  optimizer: optax.GradientTransformation, size: tuple[int, int] | None = None, num_images: int = 1,
                  progress: bool | None = None, desc: str = "style") -> Result:
    """The engine under :func:`transfer` and :func:`jaxviz.style.texture.synthesize` (``content`` None: a texture
    of ``num_images`` images of ``size`` (h, w)); prefer those two."""
    from jaxviz.models import check_names

    s = settings
    defaults = gram.default_layers(model)
    style_layers = check_names(s.style_layers or defaults.style, model.layers)
    if content is not None:
        content_layer = check_names(s.content_layer or defaults.content, model.layers)[0]
        b, h, w = content.shape[:3]
    else:
        content_layer, (b, h, w) = None, (num_images, *size)
    if s.style_scale <= 0 or not s.scales or min(s.scales) <= 0:
        raise ValueError(f"style_scale and scales must be positive, got {s.style_scale} and {list(s.scales)}")
    if not (s.spectrum_weight is not None and s.spectrum_weight >= 0) or (
            s.spectrum_max_frequency is not None and not s.spectrum_max_frequency > 0):
        raise ValueError(f"spectrum_weight must be >= 0 and spectrum_max_frequency positive, got "
                         f"{s.spectrum_weight} and {s.spectrum_max_frequency}")
    if s.init not in ("content", "noise") or (s.init == "content" and content is None):
        raise ValueError(f"init must be 'content' or 'noise', got {s.init!r}")
    param = s.param or (defaults.param if content is not None else "pixel")
    if param not in PARAMS:
        raise ValueError(f"unknown param {param!r}; valid: {', '.join(PARAMS)}")
    check_optimizer(optimizer)
    # The style's own aspect ratio; its short side style_scale times the content's (a texture: its own size).
    style_h, style_w = style_shape(style, s.style_scale * min(h, w) if content is not None else min(style.shape[1:3]))
    layer_weights = {n: 1.0 for n in style_layers} if s.layer_weights is None else \
        {n: float(s.layer_weights[n]) for n in style_layers}
    loss_fn = loop.step(_transfer_loss, model=model, style_layers=style_layers, content_layer=content_layer)
    default_weight = defaults.style_weight if content is None or param != defaults.param else (
        defaults.transfer_style_weight or defaults.style_weight)
    weights = {"style": jnp.float32(default_weight if s.style_weight is None else s.style_weight),
               "content": jnp.float32(s.content_weight), "tv": jnp.float32(s.tv_weight),
               "colour": jnp.float32(s.colour_weight or 0.0), "spectrum": jnp.float32(s.spectrum_weight)}
    history: list[tuple[int, float]] = []
    x, start_loss = None, None
    for n, frac in enumerate(sorted(s.scales)):
        sh, sw = _scaled(h, frac), _scaled(w, frac)
        sty = _resize(style, _scaled(style_h, frac), _scaled(style_w, frac))
        targets = gram.style_targets(model, variables, sty, style_layers)
        target_content = None
        if content is not None:
            target_content = _features(model, variables, _resize(content, sh, sw), (content_layer,))[content_layer]
        if x is None:
            x = _resize(content, sh, sw) if s.init == "content" else jax.random.uniform(key, (b, sh, sw, 3))
            start_loss = np.asarray(style_loss_of(model, variables, x, targets, layer_weights))
        else:
            x = _resize(x, sh, sw)
        data = {"variables": variables, "style": targets, "content": target_content, "weights": weights,
                "layer_weights": layer_weights,
                "colours": gram.colour_targets(sty) if s.colour_weight else None,
                "spectrum": (spectrum.spectrum_targets(sty, (sh, sw), s.spectrum_max_frequency)
                             if s.spectrum_weight else None)}
        run = functools.partial(minimize, data=data, optimizer=optimizer, steps=steps, progress=progress,
                                desc=f"{desc} {sh}x{sw}", history=history, start=n * steps)
        if param == "pixel":
            x = run(loss_fn, x)
        else:
            shape = x.shape
            coeffs = run(loop.step(_through_spectrum, loss_fn=loss_fn, shape=shape),
                         _SPECTRUM.init(None, shape, image=x), project=False)
            x = _SPECTRUM.to_image(coeffs, shape)
    x = jnp.clip(x, 0.0, 1.0)
    if s.preserve_colors and content is not None:
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
