"""The render loop: gradient ascent on an image while the network stays frozen.

Every synthesis method in jaxviz (feature visualization, class models,
DeepDream, feature inversion) is one call of :func:`render` with different
objectives, parameterizations, transforms and optimizers:

* the steps run on :func:`jaxviz.core.loop.run`: compiled chunks with dynamic bounds, per-step keys
  ``fold_in(key, step)``, no host sync per step, and a checkpoint to resume from if asked;
* it is compiled once per static configuration (model, parameterization,
  transform, optimizer, image shape): changing the objective's values (a
  channel index, a class, a weight), the key or the step count does not recompile;
* :func:`render_many` vmaps the loop over a list of objectives of one structure;
* long runs go in chunks of steps (the same compiled program each time) so a
  progress bar can move, and ``thresholds`` return snapshots at chosen steps.

Example:
    >>> from jaxviz.core import objectives as obj
    >>> objective = obj.channel("blocks.8", 7)
    >>> out = render(jax.random.key(0), model, variables, objective, steps=256)  # doctest: +SKIP
    >>> out.images.shape  # doctest: +SKIP
    (1, 224, 224, 3)
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxviz.core import loop
from jaxviz.core import objectives as objs
from jaxviz.synthesis import transforms as tfm
from jaxviz.synthesis.param import Fourier

__all__ = ["render", "render_many", "render_pure", "RenderResult", "optimize", "scale_by_mean_abs",
           "DEFAULT_OPTIMIZER"]

#: Lucid's default: Adam with learning rate 0.05 (on the Fourier parameterization).
DEFAULT_OPTIMIZER = optax.adam(0.05)
_CHUNK = 32


class RenderResult(NamedTuple):
    """What :func:`render` returns.

    Attributes:
        images: (B, H, W, 3) in [0, 1] (``render_many``: (N, B, H, W, 3)).
        snapshots: ``{step: images}`` at the requested thresholds (NumPy).
        history: ``[(step, objective)]`` at every chunk boundary, the batch mean
            of the objective as last evaluated (on transformed images).
        params: the final parameters, to continue from.
        importance: with ``importance=True``, (B, H, W) in [0, 1]: the absolute gradient of the objective
            with respect to each pixel summed over the steps (and channels), divided by its maximum per
            image; MACO's transparency map (where the picture matters to the objective). Else None.
    """

    images: Any
    snapshots: dict[int, np.ndarray]
    history: list[tuple[int, float]]
    params: Any
    importance: Any = None


def scale_by_mean_abs(eps: float = 1e-12) -> optax.GradientTransformation:
    """Divides each image's gradient by its mean absolute value.

    Seed 001's cure for DeepDream results that "rot": with the step measured in
    units of the mean gradient, every step changes the image by a similar amount
    whatever the layer's gradient scale. Images are independent: the mean is
    over all axes but the first (batch) one.
    """

    def update(updates, state, params=None):
        def one(g):
            axes = tuple(range(1, g.ndim))
            return g / (jnp.mean(jnp.abs(g), axis=axes, keepdims=True) + eps)

        return jax.tree.map(one, updates), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


@dataclasses.dataclass(frozen=True)
class _Step:
    """One render step (static: the model and every choice that shapes the program)."""

    model: Any
    param: Any
    transform: Any
    optimizer: optax.GradientTransformation
    post: Callable | None
    shape: tuple[int, ...]
    vmapped: bool
    importance: bool = False

    def one(self, carry, i, objective, variables, key):
        params, opt_state, *importance = carry
        copies = tfm.copies(self.transform)

        def loss_fn(img):
            seen = self.transform(jax.random.fold_in(key, i), img)
            original = img if copies == 1 else jnp.tile(img, (copies, 1, 1, 1))
            scores = objs.evaluate(objective, self.model, variables, seen, original=original)
            if copies > 1:  # crop-major copies: one mean score per image
                scores = jnp.mean(scores.reshape(copies, img.shape[0]), axis=0)
            return -jnp.sum(scores), scores

        img, to_params = jax.vjp(lambda p: self.param.to_image(p, self.shape), params)
        (_, scores), g_img = jax.value_and_grad(loss_fn, has_aux=True)(img)
        (g,) = to_params(g_img)
        updates, opt_state = self.optimizer.update(g, opt_state, params)
        params = self.param.project(optax.apply_updates(params, updates))
        if self.post is not None:
            params = self.post(params, g, i)
        if self.importance:
            return (params, opt_state, importance[0] + jnp.sum(jnp.abs(g_img), axis=-1)), scores
        return (params, opt_state), scores

    def __call__(self, carry, i, data):
        variables, objective, key = data
        if self.vmapped:
            return jax.vmap(lambda c, o, k: self.one(c, i, o, variables, k))(carry, objective, key)
        return self.one(carry, i, objective, variables, key)


def optimize(key, model, variables, objective, params, *, shape, param, transform, optimizer, post=None,
             steps: int, thresholds: Sequence[int] = (), chunk: int = _CHUNK, progress: bool | None = None,
             desc: str = "render", vmapped: bool = False, opt_state=None, checkpoint=None,
             callback: Callable[[int, float], None] | None = None, importance: bool = False) -> RenderResult:
    """The loop under :func:`render`, from given parameters (what DeepDream's octaves need).

    ``params`` are in ``param``'s space for images of ``shape``; with ``vmapped`` every argument but the model
    and variables has a leading objectives axis (keys included). ``opt_state`` defaults to
    ``optimizer.init(params)``. ``checkpoint``: an orbax directory to resume from (:func:`jaxviz.core.loop.run`);
    ``callback(step, value)`` is called for every step; ``importance``: accumulate MACO's transparency map
    (:attr:`RenderResult.importance`).
    """
    from jaxviz.models import check_names

    check_names(objective.layers, model.layers)
    if opt_state is None:
        opt_state = jax.vmap(optimizer.init)(params) if vmapped else optimizer.init(params)
    step = _Step(model, param, transform, optimizer, post, shape, vmapped, importance)
    to_image = jax.vmap(lambda p: param.to_image(p, shape)) if vmapped else (lambda p: param.to_image(p, shape))
    wanted = sorted({int(t) for t in thresholds})
    if any(t < 0 or t > steps for t in wanted):
        raise ValueError(f"thresholds must lie in [0, {steps}], got {list(thresholds)}")
    snapshots = {0: np.asarray(to_image(params))} if 0 in wanted else {}

    def snapshot(done, carry):
        if done in wanted:
            snapshots[done] = np.asarray(to_image(carry[0]))

    fingerprint = {"desc": desc, "steps": steps, "shape": list(shape), "key": _digest(key)}
    carry = (params, opt_state)
    if importance:
        carry = (*carry, jnp.zeros((*params.shape[:1 + vmapped], *shape[1:3]), jnp.float32))
    out = loop.run(step, carry, (variables, objective, key), steps=steps, chunk=chunk,
                   boundaries=wanted, on_boundary=snapshot, callback=callback, desc=desc, progress=progress,
                   checkpoint=checkpoint, fingerprint=fingerprint)
    params = out.carry[0]
    saliency = None
    if importance:
        total = out.carry[2]
        saliency = total / jnp.maximum(jnp.max(total, axis=(-2, -1), keepdims=True), 1e-30)
    return RenderResult(to_image(params), snapshots, out.history, params, saliency)


def _digest(key) -> str:
    data = np.asarray(jax.random.key_data(key) if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key) else key)
    return hashlib.sha256(data.tobytes()).hexdigest()[:16]


def _loop_defaults(size: int, transform, optimizer) -> dict:
    """Lucid's transforms scaled to the image size, and the default optimizer, where none is given."""
    return dict(transform=tfm.standard(size / 224) if transform is None else transform,
                optimizer=optimizer or DEFAULT_OPTIMIZER)


def render(key: jax.Array, model, variables, objective: objs.Objective, *, size: int | None = None,
           num_images: int = 1, image: jax.Array | None = None, param=None, transform=None,
           optimizer: optax.GradientTransformation | None = None, steps: int = 512,
           thresholds: Sequence[int] = (), post: Callable | None = None, chunk: int = _CHUNK,
           progress: bool | None = None, desc: str = "render", checkpoint=None,
           callback: Callable[[int, float], None] | None = None, importance: bool = False) -> RenderResult:
    """Maximizes ``objective`` over a batch of images.

    Args:
        key: PRNG key (initialization and every step's transforms).
        model, variables: a jaxviz model and its weights (frozen).
        objective: an :mod:`jaxviz.core.objectives` objective; each image's score is
            maximized (the images are independent unless the objective couples
            them, as ``diversity`` does).
        size: image side in pixels (default: the model's input size).
        num_images: how many images (seeds) to render.
        image: optional (H, W, 3) or (B, H, W, 3) start image (``Pixel`` or ``Fourier``).
        param: :class:`~jaxviz.synthesis.param.Fourier` (default) or :class:`~jaxviz.synthesis.param.Pixel`.
        transform: random transform per step (default :func:`jaxviz.synthesis.transforms.standard`).
        optimizer: an optax optimizer (default Adam, 0.05). Reuse one object
            across calls: a new one compiles a new loop.
        steps: optimizer steps.
        thresholds: steps at which to keep snapshots.
        post: optional static ``post(params, grads, step) -> params`` run after
            each step (e.g. the regularizers of :mod:`jaxviz.synthesis.classviz`).
        chunk: steps per compiled call between progress updates.
        progress: show a progress bar (None: only on a terminal).
        checkpoint: an orbax checkpoint directory: a run finding one of the same call resumes from it.
        callback: ``callback(step, objective)`` after every step (an exception stops the run).
        importance: also return MACO's transparency map (:attr:`RenderResult.importance`).

    Returns:
        A :class:`RenderResult`; ``images`` is (B, H, W, 3) in [0, 1].
    """
    param = Fourier() if param is None else param
    if image is not None:
        image = jnp.asarray(image, jnp.float32)
        if image.ndim == 3:
            image = image[None]
        num_images, size = image.shape[0], image.shape[1]
        shape = tuple(image.shape)
    else:
        size = size or model.input_size
        shape = (num_images, size, size, 3)
    k_init, k_loop = jax.random.split(key)
    params = param.init(k_init, shape, image)
    return optimize(k_loop, model, variables, objective, params, shape=shape, param=param,
                    **_loop_defaults(size, transform, optimizer), post=post, steps=steps, thresholds=thresholds,
                    chunk=chunk, progress=progress, desc=desc, vmapped=False, checkpoint=checkpoint,
                    callback=callback, importance=importance)


def render_pure(key: jax.Array, model, variables, objective: objs.Objective, *, size: int, num_images: int = 1,
                param=None, transform=None, optimizer: optax.GradientTransformation | None = None,
                steps: int = 512) -> jax.Array:
    """:func:`render`'s images as one pure function (its steps a ``lax.fori_loop``): jittable and vmappable,
    e.g. over channels inside a data-set run (:func:`jaxviz.run.tasks.render`). The same key gives the
    images :func:`render` gives; no progress bar, snapshots or checkpoints."""
    param = Fourier() if param is None else param
    shape = (num_images, size, size, 3)
    defaults = _loop_defaults(size, transform, optimizer)
    step = _Step(model, param, defaults["transform"], defaults["optimizer"], None, shape, False)
    k_init, k_loop = jax.random.split(key)
    params = param.init(k_init, shape)
    carry = (params, defaults["optimizer"].init(params))
    carry = jax.lax.fori_loop(0, steps, lambda i, c: step(c, i, (variables, objective, k_loop))[0], carry)
    return param.to_image(carry[0], shape)


def render_many(key: jax.Array, model, variables, objectives: Sequence[objs.Objective] | objs.Objective, *,
                count: int | None = None, size: int | None = None, num_images: int = 1, param=None,
                transform=None, optimizer: optax.GradientTransformation | None = None, steps: int = 512,
                thresholds: Sequence[int] = (), post: Callable | None = None, chunk: int = _CHUNK,
                progress: bool | None = None, desc: str = "render", importance: bool = False) -> RenderResult:
    """:func:`render` vmapped over objectives of one structure (e.g. 16 channels of a layer).

    Args:
        objectives: a list of objectives, or one already :func:`~jaxviz.core.objectives.stack`-ed
            (then ``count`` says how many).
        num_images: images (seeds) per objective.
        Others: as :func:`render`; each objective gets its own key.

    Returns:
        A :class:`RenderResult` whose ``images`` are (N, B, H, W, 3).
    """
    if isinstance(objectives, objs.Objective):
        if count is None:
            raise ValueError("render_many with a stacked objective needs count=")
        stacked, n = objectives, count
    else:
        stacked, n = objs.stack(objectives), len(objectives)
    param = Fourier() if param is None else param
    size = size or model.input_size
    shape = (num_images, size, size, 3)
    k_init, k_loop = jax.random.split(key)
    params = jax.vmap(lambda k: param.init(k, shape))(jax.random.split(k_init, n))
    return optimize(jax.random.split(k_loop, n), model, variables, stacked, params, shape=shape, param=param,
                    **_loop_defaults(size, transform, optimizer), post=post, steps=steps, thresholds=thresholds,
                    chunk=chunk, progress=progress, desc=desc, vmapped=True, importance=importance)
