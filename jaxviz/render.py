"""The render loop: gradient ascent on an image while the network stays frozen.

Every synthesis method in jaxviz (feature visualization, class models,
DeepDream, feature inversion) is one call of :func:`render` with different
objectives, parameterizations, transforms and optimizers:

* the whole loop runs inside one ``jit`` (a ``lax.fori_loop`` whose bounds are
  dynamic), with per-step keys ``fold_in(key, step)`` and no host sync per step;
* it is compiled once per static configuration (model, parameterization,
  transform, optimizer, image shape): changing the objective's values (a
  channel index, a class, a weight), the key or the step count does not recompile;
* :func:`render_many` vmaps the loop over a list of objectives of one structure;
* long runs go in chunks of steps (the same compiled program each time) so a
  progress bar can move, and ``thresholds`` return snapshots at chosen steps.

Example:
    >>> from jaxviz import objectives as obj, render
    >>> objective = obj.channel("blocks.8", 7)
    >>> out = render.render(jax.random.key(0), model, variables, objective, steps=256)  # doctest: +SKIP
    >>> out.images.shape  # doctest: +SKIP
    (1, 224, 224, 3)
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxviz import objectives as objs
from jaxviz import transforms as tfm
from jaxviz.param import Fourier

__all__ = ["render", "render_many", "RenderResult", "optimize", "scale_by_mean_abs", "DEFAULT_OPTIMIZER",
           "progress_bar"]

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
    """

    images: Any
    snapshots: dict[int, np.ndarray]
    history: list[tuple[int, float]]
    params: Any


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


def progress_bar(total: int, desc: str, progress: bool | None):
    """A tqdm bar on stderr; ``progress=None`` shows it only on a terminal."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=None if progress is None else not progress, leave=False)


@functools.partial(jax.jit, static_argnames=("model", "param", "transform", "optimizer", "post", "shape",
                                             "vmapped"))
def _run(variables, objective, params, opt_state, key, start, stop, *, model, param, transform, optimizer, post,
         shape, vmapped):
    def one(objective, params, opt_state, key):
        def loss_fn(p, k):
            img = param.to_image(p, shape)
            scores = objs.evaluate(objective, model, variables, transform(k, img), original=img)
            return -jnp.sum(scores), scores

        def step(i, carry):
            p, s, _ = carry
            (_, scores), g = jax.value_and_grad(loss_fn, has_aux=True)(p, jax.random.fold_in(key, i))
            updates, s = optimizer.update(g, s, p)
            p = param.project(optax.apply_updates(p, updates))
            if post is not None:
                p = post(p, g, i)
            return p, s, scores

        return jax.lax.fori_loop(start, stop, step, (params, opt_state, jnp.zeros(shape[0], jnp.float32)))

    if vmapped:
        return jax.vmap(one)(objective, params, opt_state, key)
    return one(objective, params, opt_state, key)


def optimize(key, model, variables, objective, params, *, shape, param, transform, optimizer, post=None,
             steps: int, thresholds: Sequence[int] = (), chunk: int = _CHUNK, progress: bool | None = None,
             desc: str = "render", vmapped: bool = False, opt_state=None) -> RenderResult:
    """The loop under :func:`render`, from given parameters (what DeepDream's octaves need).

    ``params`` are in ``param``'s space for images of ``shape``; with ``vmapped``
    every argument but the model and variables has a leading objectives axis
    (keys included). ``opt_state`` defaults to ``optimizer.init(params)``.
    """
    if steps < 0:
        raise ValueError(f"steps must be non-negative, got {steps}")
    from jaxviz.models import check_names

    check_names(objective.layers, model.layers)
    if opt_state is None:
        opt_state = jax.vmap(optimizer.init)(params) if vmapped else optimizer.init(params)
    static = dict(model=model, param=param, transform=transform, optimizer=optimizer, post=post, shape=shape,
                  vmapped=vmapped)
    to_image = jax.vmap(lambda p: param.to_image(p, shape)) if vmapped else (lambda p: param.to_image(p, shape))
    wanted = sorted({int(t) for t in thresholds})
    if any(t < 0 or t > steps for t in wanted):
        raise ValueError(f"thresholds must lie in [0, {steps}], got {list(thresholds)}")
    stops = sorted({*range(chunk, steps, chunk), *(t for t in wanted if t > 0), steps} - {0})
    snapshots = {0: np.asarray(to_image(params))} if 0 in wanted else {}
    history: list[tuple[int, float]] = []
    start = 0
    with progress_bar(steps, desc, progress) as bar:
        for stop in stops:
            params, opt_state, scores = _run(variables, objective, params, opt_state, key, start, stop, **static)
            value = float(jnp.mean(scores))  # one host sync per chunk, for the bar and the history
            history.append((stop, value))
            if stop in wanted:
                snapshots[stop] = np.asarray(to_image(params))
            bar.update(stop - start)
            bar.set_postfix(objective=f"{value:.4g}")
            start = stop
    return RenderResult(to_image(params), snapshots, history, params)


def _loop_defaults(size: int, transform, optimizer) -> dict:
    """Lucid's transforms scaled to the image size, and the default optimizer, where none is given."""
    return dict(transform=tfm.standard(size / 224) if transform is None else transform,
                optimizer=optimizer or DEFAULT_OPTIMIZER)


def render(key: jax.Array, model, variables, objective: objs.Objective, *, size: int | None = None,
           batch: int = 1, image: jax.Array | None = None, param=None, transform=None,
           optimizer: optax.GradientTransformation | None = None, steps: int = 512,
           thresholds: Sequence[int] = (), post: Callable | None = None, chunk: int = _CHUNK,
           progress: bool | None = None, desc: str = "render") -> RenderResult:
    """Maximizes ``objective`` over a batch of images.

    Args:
        key: PRNG key (initialization and every step's transforms).
        model, variables: a jaxviz model and its weights (frozen).
        objective: an :mod:`jaxviz.objectives` objective; each image's score is
            maximized (the images are independent unless the objective couples
            them, as ``diversity`` does).
        size: image side in pixels (default: the model's input size).
        batch: how many images (seeds) to render.
        image: optional (H, W, 3) or (B, H, W, 3) start image (``Pixel`` only).
        param: :class:`~jaxviz.param.Fourier` (default) or :class:`~jaxviz.param.Pixel`.
        transform: random transform per step (default :func:`jaxviz.transforms.standard`).
        optimizer: an optax optimizer (default Adam, 0.05). Reuse one object
            across calls: a new one compiles a new loop.
        steps: optimizer steps.
        thresholds: steps at which to keep snapshots.
        post: optional static ``post(params, grads, step) -> params`` run after
            each step (e.g. the regularizers of :mod:`jaxviz.classviz`).
        chunk: steps per compiled call between progress updates.
        progress: show a progress bar (None: only on a terminal).

    Returns:
        A :class:`RenderResult`; ``images`` is (B, H, W, 3) in [0, 1].
    """
    param = Fourier() if param is None else param
    if image is not None:
        image = jnp.asarray(image, jnp.float32)
        if image.ndim == 3:
            image = image[None]
        batch, size = image.shape[0], image.shape[1]
        shape = tuple(image.shape)
    else:
        size = size or model.input_size
        shape = (batch, size, size, 3)
    k_init, k_loop = jax.random.split(key)
    params = param.init(k_init, shape, image)
    return optimize(k_loop, model, variables, objective, params, shape=shape, param=param,
                    **_loop_defaults(size, transform, optimizer), post=post, steps=steps, thresholds=thresholds,
                    chunk=chunk, progress=progress, desc=desc, vmapped=False)


def render_many(key: jax.Array, model, variables, objectives: Sequence[objs.Objective] | objs.Objective, *,
                count: int | None = None, size: int | None = None, batch: int = 1, param=None,
                transform=None, optimizer: optax.GradientTransformation | None = None, steps: int = 512,
                thresholds: Sequence[int] = (), post: Callable | None = None, chunk: int = _CHUNK,
                progress: bool | None = None, desc: str = "render") -> RenderResult:
    """:func:`render` vmapped over objectives of one structure (e.g. 16 channels of a layer).

    Args:
        objectives: a list of objectives, or one already :func:`~jaxviz.objectives.stack`-ed
            (then ``count`` says how many).
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
    shape = (batch, size, size, 3)
    k_init, k_loop = jax.random.split(key)
    params = jax.vmap(lambda k: param.init(k, shape))(jax.random.split(k_init, n))
    return optimize(jax.random.split(k_loop, n), model, variables, stacked, params, shape=shape, param=param,
                    **_loop_defaults(size, transform, optimizer), post=post, steps=steps, thresholds=thresholds,
                    chunk=chunk, progress=progress, desc=desc, vmapped=True)
