"""Fast (feed-forward) style transfer (Johnson, Alahi & Fei-Fei, ECCV 2016).

Gatys' transfer optimizes every image from scratch; Johnson et al. train an
image-transformation network once per style with the same perceptual loss
(content loss against the input at one layer, style loss against the style's
Gram matrices, total variation), measured through a frozen zoo model, and then
stylize any image in one forward pass.

- :class:`TransformNet`: 9x9 conv, two stride-2 convs, residual blocks, two
  nearest-neighbour upsamplings with convs (no transposed-conv checkerboards),
  9x9 conv to RGB through a sigmoid; instance norm and reflection padding
  throughout (Ulyanov et al.'s improvement). Widths and depth are arguments:
  the paper's (32, 64, 128) with 5 blocks, or smaller for a CPU.
- :func:`train`: an optax optimizer (Adam by default) over random batches of the user's images (or
  :func:`builtin_images`, scikit-image's photos), on :func:`jaxviz.core.loop.run`,
  with orbax checkpoints every ``checkpoint_every`` steps: a run that is
  interrupted resumes from the last one and continues with the same losses
  (batches are drawn from ``fold_in(key, step)``). The loss weights and layers are
  :class:`jaxviz.style.transfer.Settings`, as for Gatys' transfer.
- :func:`save` / :func:`load`: one ``.npz`` (weights plus the network's
  settings as JSON; never pickled), written atomically; :func:`stylize`.

Example:
    >>> net = train(jax.random.key(0), model, variables, painting, photos, steps=500)  # doctest: +SKIP
    >>> save("wave.npz", net); stylize(load("wave.npz"), photo[None]).shape            # doctest: +SKIP
    (1, 256, 256, 3)
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxviz.core import loop
from jaxviz.io import image as image_mod
from jaxviz.style import gram
from jaxviz.style.transfer import Settings, check_images, check_optimizer, style_shape, with_overrides

__all__ = ["TransformNet", "OUTPUTS", "Stylizer", "train", "stylize", "save", "load", "builtin_images",
           "perceptual_loss", "TrainResult", "DEFAULT_STEPS", "DEFAULT_SIZE", "DEFAULT_BATCH_SIZE", "DEFAULT_LR",
           "DEFAULT_OPTIMIZER", "DEFAULT_COLOUR_WEIGHT", "DEFAULT_SETTINGS"]

DEFAULT_STEPS = 300
DEFAULT_SIZE = 128
DEFAULT_BATCH_SIZE = 4
DEFAULT_LR = 1e-2
#: weight of the colour-distribution loss (:func:`jaxviz.style.gram.colour_loss`): without it the network
#: meets the Gram targets by painting one saturated blob per image (measured on Lite0, README "style")
DEFAULT_COLOUR_WEIGHT = 1e4
#: the loss weights when no ``settings`` are given: the content 5x Gatys' default, which alone leaves the
#: network's pictures blurred past recognition on Lite0; at 4x the astronaut's luminance SSIM was 0.43 to 0.50
#: over four seeds (blue glows on one), at 5x 0.55 to 0.62 (README, "style")
DEFAULT_SETTINGS = Settings(content_weight=5.0)
#: Adam at ``DEFAULT_LR`` (reuse this object: a new optimizer compiles a new step).
DEFAULT_OPTIMIZER = optax.adam(DEFAULT_LR)


def _reflect(x: jax.Array, pad: int) -> jax.Array:
    return jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")


class _ConvNorm(nn.Module):
    features: int
    kernel: int
    stride: int = 1
    relu: bool = True

    @nn.compact
    def __call__(self, x):
        x = nn.Conv(self.features, (self.kernel, self.kernel), (self.stride, self.stride), padding="VALID")(
            _reflect(x, self.kernel // 2))
        x = nn.InstanceNorm(epsilon=1e-5)(x)
        return nn.relu(x) if self.relu else x


class _Residual(nn.Module):
    features: int

    @nn.compact
    def __call__(self, x):
        y = _ConvNorm(self.features, 3)(x)
        return x + _ConvNorm(self.features, 3, relu=False)(y)


#: ``TransformNet.output``'s choices.
OUTPUTS = ("clip", "sigmoid")


class TransformNet(nn.Module):
    """Johnson et al.'s image-transformation network: (B, H, W, 3) in [0, 1] -> same shape in [0, 1].

    H and W should be multiples of 4 (two stride-2 convolutions and two 2x upsamplings).

    ``output``: how the last convolution's values become pixels. ``"clip"`` (the default): ``0.5 + h / 4``
    clipped to [0, 1], with the gradient passed straight through the clip. ``"sigmoid"``: ``sigmoid(h)``, whose
    gradient vanishes where it saturates, so a region pushed to white early in training stays white: on Lite0 the
    demo's network left blown-out white patches over 4.7% and 4.2% of the coffee and astronaut pictures, 0.5% and
    0.1% with ``"clip"`` (README, "style"; networks saved before the option read as ``"sigmoid"``).
    """

    channels: tuple[int, int, int] = (32, 64, 128)
    residual_blocks: int = 5
    output: str = "clip"

    @nn.compact
    def __call__(self, x):
        c1, c2, c3 = self.channels
        h = _ConvNorm(c1, 9)(x * 2.0 - 1.0)
        h = _ConvNorm(c2, 3, 2)(h)
        h = _ConvNorm(c3, 3, 2)(h)
        for _ in range(self.residual_blocks):
            h = _Residual(c3)(h)
        for c in (c2, c1):
            b, hh, ww, ch = h.shape
            h = _ConvNorm(c, 3)(jax.image.resize(h, (b, 2 * hh, 2 * ww, ch), "nearest"))
        h = nn.Conv(3, (9, 9), padding="VALID")(_reflect(h, 4))
        if self.output == "sigmoid":
            return nn.sigmoid(h)
        if self.output != "clip":
            raise ValueError(f"output must be one of {', '.join(OUTPUTS)}, got {self.output!r}")
        y = 0.5 + 0.25 * h  # sigmoid's slope at 0
        return y + jax.lax.stop_gradient(jnp.clip(y, 0.0, 1.0) - y)  # clipped forward, identity backward


class Stylizer(NamedTuple):
    """A trained network: its settings and weights."""

    net: TransformNet
    params: dict


def builtin_images(size: int = DEFAULT_SIZE) -> np.ndarray:
    """scikit-image's sample photos (chelsea, coffee, astronaut, rocket), (4, size, size, 3): the demo's set."""
    return np.stack([image_mod.sample(n, size) for n in image_mod.SAMPLES])


def perceptual_loss(model, variables, outputs, inputs, targets: dict, *, content_layer: str, layer_weights,
                    style_weight, content_weight, tv_weight, colours=None, colour_weight=0.0):
    """Johnson et al.'s loss, per image: content (outputs vs inputs), style (vs Gram ``targets``), TV, and the
    colour distribution (vs :func:`~jaxviz.style.gram.colour_targets` ``colours``, when given).
    Returns ``(total, (style, content, tv))``, each (B,)."""
    layers = tuple(dict.fromkeys((*targets, content_layer)))
    _, acts = model.apply(variables, jnp.concatenate([outputs, inputs]), capture=layers)
    n = len(outputs)
    ours = {k: a[:n] for k, a in acts.items()}
    style = gram.style_loss(ours, targets, layer_weights)
    content = gram.content_loss(ours[content_layer], jax.lax.stop_gradient(acts[content_layer][n:]))
    tv = gram.total_variation(outputs)
    total = style_weight * style + content_weight * content + tv_weight * tv
    if colours is not None:
        total = total + colour_weight * gram.colour_loss(outputs, colours)
    return total, (style, content, tv)


def _batch(key: jax.Array, images: jax.Array, batch: int) -> jax.Array:
    """``batch`` images drawn with replacement, each flipped left-right at random."""
    k1, k2 = jax.random.split(key)
    x = images[jax.random.randint(k1, (batch,), 0, images.shape[0])]
    flip = jax.random.bernoulli(k2, 0.5, (batch, 1, 1, 1))
    return jnp.where(flip, x[:, :, ::-1], x)


def _train_step(carry, step, data, *, net, model, optimizer, content_layer, batch_size):
    """One optimizer step of the TransformNet on a random batch (``fold_in(key, step)``)."""
    params, opt_state = carry
    x = _batch(jax.random.fold_in(data["key"], step), data["images"], batch_size)

    def loss_fn(p):
        total, _ = perceptual_loss(model, data["variables"], net.apply(p, x), x, data["targets"],
                                   content_layer=content_layer, layer_weights=data["layer_weights"],
                                   colours=data["colours"], **data["weights"])
        return jnp.mean(total)

    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), opt_state), loss


class TrainResult(NamedTuple):
    """``stylizer``; ``history``: ``[(step, loss)]`` at every chunk end; ``losses``: the loss of every step run in
    this call, keyed by step number; ``resumed_from``: the step a checkpoint resumed from (0: a fresh start)."""

    stylizer: Stylizer
    history: list[tuple[int, float]]
    losses: dict[int, float]
    resumed_from: int


@functools.partial(jax.jit, static_argnums=0)  # unjitted, Flax initializes the network op by op (60 compilations)
def _init(net: nn.Module, key: jax.Array, images: jax.Array):
    return net.init(key, images)


def train(key: jax.Array, model, variables, style, images, settings: Settings | None = None, *,
          steps: int = DEFAULT_STEPS, size: int = DEFAULT_SIZE, batch_size: int = DEFAULT_BATCH_SIZE,
          optimizer: optax.GradientTransformation = DEFAULT_OPTIMIZER, net: TransformNet | None = None,
          checkpoint: str | os.PathLike | None = None, checkpoint_every: int = 50,
          callback: Callable[[int, float], None] | None = None, progress: bool | None = None,
          **overrides) -> TrainResult:
    """Trains a :class:`TransformNet` for the style of ``style`` on ``images``.

    Args:
        key: PRNG key (initial weights; batch ``i`` is drawn with ``fold_in(key, i)``).
        model, variables: the frozen loss network (any model; layers from :func:`~jaxviz.style.gram.default_layers`).
        style: (H, W, 3) in [0, 1]; taken at ``style_scale * size`` on its short side.
        images: (N, size, size, 3) in [0, 1] training images (see :func:`builtin_images`).
        settings: :class:`~jaxviz.style.transfer.Settings` (the weights, ``style_scale``, the layers and their
            weights; default :data:`DEFAULT_SETTINGS`), or its fields as keyword ``overrides``
            (``style_weight=1e3``).
        steps: total optimizer steps (a resumed run continues up to this count).
        batch_size: images per step, drawn with replacement and flipped at random.
        optimizer: an optax optimizer (default Adam 0.01).
        net: the network (default: (16, 32, 64) channels and 3 residual blocks, CPU-sized).
        checkpoint: an orbax checkpoint directory written every ``checkpoint_every`` steps; a run finding one
            resumes from it.
        checkpoint_every: steps per compiled chunk and between checkpoints.
        callback: called for every step with (step, loss), at the end of its chunk; an exception from it stops
            training (the checkpoints written before remain).
    """
    from jaxviz.models import check_names

    s = with_overrides(settings, overrides, DEFAULT_SETTINGS)
    if s.scales != (1.0,) or s.init != "content" or s.preserve_colors or s.spectrum_weight:
        raise ValueError("fast style training takes no scales, init, preserve_colors or spectrum_weight (Gatys "
                         "transfer does)")
    check_optimizer(optimizer)
    net = net or TransformNet((16, 32, 64), 3)
    images = jnp.asarray(images, jnp.float32)
    if images.ndim != 4 or images.shape[1:] != (size, size, 3):
        raise ValueError(f"images must be (N, {size}, {size}, 3), got {images.shape}")
    if size % 4:
        raise ValueError(f"size must be a multiple of 4, got {size}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    defaults = gram.default_layers(model)
    style_layers = check_names(s.style_layers or defaults.style, model.layers)
    content_layer = check_names(s.content_layer or defaults.content, model.layers)[0]
    style = check_images(style, "style")[:1]
    sh, sw = (max(16, round(d)) for d in style_shape(style, s.style_scale * size))
    targets = gram.style_targets(model, variables, jax.image.resize(style, (1, sh, sw, 3), "linear"), style_layers)
    layer_weights = {n: 1.0 if s.layer_weights is None else float(s.layer_weights[n]) for n in style_layers}
    weights = {"style_weight": jnp.float32(defaults.style_weight if s.style_weight is None else s.style_weight),
               "content_weight": jnp.float32(s.content_weight), "tv_weight": jnp.float32(s.tv_weight),
               "colour_weight": jnp.float32(DEFAULT_COLOUR_WEIGHT if s.colour_weight is None else s.colour_weight)}
    params = _init(net, jax.random.fold_in(key, 2**31 - 1), images[:1])  # batches use fold_in(key, step)
    meta = {  # what makes a run: resuming another's would silently mix them
        "net": _config(net), "size": size, "batch_size": batch_size, "model": model.name,
        "optimizer": str(jax.tree.structure(jax.eval_shape(optimizer.init, params))),
        "layers": list(style_layers), "content": content_layer, "key": _digest(jax.random.key_data(key)),
        "style": _digest(style), "images": _digest(images), "weights": {k: float(v) for k, v in weights.items()},
        "layer_weights": layer_weights}
    step = loop.step(_train_step, net=net, model=model, optimizer=optimizer, content_layer=content_layer,
                     batch_size=batch_size)
    data = {"key": key, "images": images, "variables": variables, "targets": targets,
            "layer_weights": layer_weights, "weights": weights, "colours": gram.colour_targets(style)}
    out = loop.run(step, (params, optimizer.init(params)), data, steps=steps, chunk=checkpoint_every,
                   callback=callback, desc="train-style", progress=progress, checkpoint=checkpoint,
                   fingerprint=meta, what="training run", kind="training")
    return TrainResult(Stylizer(net, out.carry[0]), out.history, out.values, out.resumed_from)


def _config(net: TransformNet) -> dict:
    return {"channels": [int(c) for c in net.channels], "residual_blocks": int(net.residual_blocks),
            "output": net.output}


def _digest(array) -> str:
    return hashlib.sha256(np.ascontiguousarray(np.asarray(array)).tobytes()).hexdigest()[:16]


@functools.partial(jax.jit, static_argnames="net")
def _apply(params, images: jax.Array, *, net: TransformNet) -> jax.Array:
    return net.apply(params, images)


def stylize(stylizer: Stylizer, images) -> jax.Array:
    """One forward pass: (B, H, W, 3) or (H, W, 3) in [0, 1] -> stylized, same shape (sides padded by
    reflection to multiples of 4, then cropped back)."""
    single = np.ndim(images) == 3
    x = check_images(images, "images")
    h, w = x.shape[1:3]
    ph, pw = -h % 4, -w % 4
    if ph or pw:
        x = jnp.pad(x, ((0, 0), (0, ph), (0, pw), (0, 0)), mode="reflect")
    out = _apply(stylizer.params, x, net=stylizer.net)[:, :h, :w]
    return out[0] if single else out


_KIND = "jaxviz.style.transfer.fast.TransformNet"


def save(path: str | os.PathLike, stylizer: Stylizer) -> Path:
    """Writes the network's settings and weights to one ``.npz``, atomically."""
    from jaxviz.models import save_npz

    save_npz(path, stylizer.params, metadata={"kind": _KIND, **_config(stylizer.net)})
    return Path(path)


def load(path: str | os.PathLike) -> Stylizer:
    """Reads :func:`save`'s file (never unpickles); a clear ValueError for anything else."""
    from jaxviz.models import load_npz, npz_metadata

    if not Path(path).is_file():
        raise ValueError(f"{path}: no such file (make one with `jaxviz train-style`)")
    try:
        config = npz_metadata(path)
    except ValueError:
        config = None
    if not config or config.get("kind") != _KIND:
        raise ValueError(f"{path}: not a jaxviz style network (make one with `jaxviz train-style`)")
    net = TransformNet(tuple(config["channels"]), int(config["residual_blocks"]), config.get("output", "sigmoid"))
    template = jax.eval_shape(lambda: net.init(jax.random.key(0), jnp.zeros((1, 16, 16, 3))))
    return Stylizer(net, load_npz(path, template))
