"""Guided integrated gradients: IG along a path chosen by the gradients themselves (Kapishnikov et al., CVPR 2021).

Straight-line IG walks every feature from the baseline to the image at the same pace, so it crosses regions where
the network's gradient is large for reasons unrelated to the input (saturation, noisy edges). Guided IG walks the
features with the *smallest* gradient magnitude first. Over ``steps`` steps the L1 distance to the image shrinks
linearly, ``|x_i - x|_1 = (1 - i / steps) |baseline - x|_1``; to cover step ``i`` it repeatedly moves the
``fraction`` of features with the lowest ``|grad|`` (found by the per-image quantile threshold) towards their
step's upper bound, all the way when that is not enough, by the exact share ``gamma`` that closes the gap when it
is. No feature strays further than ``max_dist`` (relative, in the path parameter alpha) from the straight line:
features that fall behind ``alpha_i - max_dist`` are pulled up, none passes ``alpha_i + max_dist``. Each move
adds ``(x_new - x_old) * grad(x_i)`` to the attribution, with the gradient taken once per step; so the
attributions sum to ``score(x) - score(baseline)`` up to the Riemann error, as for IG. ``max_dist = 0`` keeps
every feature on the straight line (IG with a left Riemann sum); ``max_dist = 1`` leaves the path unbounded.

This is the definition and the defaults of PAIR's ``saliency`` package (``GuidedIG``: ``steps=200``,
``fraction=0.25``, ``max_dist=0.02``, a black baseline), its quantile the ``"lower"`` one (the
``floor((n - 1) * fraction)``-th smallest of ``n`` values). Here the whole walk is one program: the steps are a
``lax.fori_loop`` with the batch's gradients in one forward pass per step, and the moves inside a step are a
``lax.while_loop`` over the batch at once, each image stopping when its own gap is closed. The while loop is
bounded by ``ceil(n / (k + 1)) + 3`` moves per step (each move that does not close the gap takes ``k + 1`` or
more features to their bound, where they stay for the step), a bound PAIR's loop also obeys, so it never binds.
PAIR computes in float64 whatever the input; here the images' dtype is used (float64 under ``jax_enable_x64``).

Reference:
    Kapishnikov, Venugopalan, Avci, Wedin, Terry, Bolukbasi, "Guided Integrated Gradients: an Adaptive Path
    Method for Removing Noise", CVPR 2021.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxviz.attribution.gradients import saliency
from jaxviz.core.batching import map_chunks
from jaxviz.core.objectives import Target

__all__ = ["guided_integrated_gradients"]

#: PAIR's tolerance for "the L1 distance has reached this step's target" (relative and absolute).
EPSILON = 1e-9


def _gradient_fn(model, variables, target: Target, batch: int, batch_size: int | None):
    """``x -> grad score(x)`` for the (B, ...) batch, at most ``batch_size`` images per forward pass."""
    if batch_size is None or batch_size >= batch:
        return lambda x: saliency(model, variables, x, target)
    tgt = target if callable(target) else jnp.broadcast_to(jnp.asarray(target), (batch,))

    def grads(x):
        def chunk(idx):
            return saliency(model, variables, x[idx], tgt if callable(tgt) else tgt[idx])
        return map_chunks(chunk, batch, batch_size)

    return grads


def _walk_step(x, grad, attr, start, end, l1_target, a_min, a_max, k: int, max_moves: int):
    """One step of the walk for the (B, n) batch: move features until each image's L1 gap reaches ``l1_target``.

    ``start``/``end`` are the baseline and the image; ``grad`` the gradient at ``x`` (the step's start).
    Returns the new ``x`` and ``attr``.
    """
    span = end - start
    moving = span != 0
    x_lo = start + span * a_min
    x_hi = start + span * a_max
    inf = jnp.asarray(jnp.inf, x.dtype)

    def move(state):
        x, g, attr, done, it = state
        # The position of each feature on its own straight line, as alpha (features with no span never move).
        alpha = jnp.where(moving, (x - start) / jnp.where(moving, span, 1), a_max)
        x_new = jnp.where(alpha < a_min, x_lo, x)
        l1 = jnp.sum(jnp.abs(x_new - end), axis=1)
        close = jnp.abs(l1_target - l1) <= jnp.maximum(EPSILON * jnp.maximum(jnp.abs(l1_target), jnp.abs(l1)),
                                                       EPSILON)
        # Features at their upper bound are out of the selection for the rest of the step.
        g = jnp.where(x_new == x_hi, inf, g)
        mag = jnp.abs(g)
        threshold = jnp.sort(mag, axis=1)[:, k]
        chosen = (mag <= threshold[:, None]) & (g != inf) & ~close[:, None]
        room = jnp.sum(jnp.where(chosen, jnp.abs(x_new - x_hi), 0), axis=1)
        gamma = jnp.where(room > 0, (l1 - l1_target) / jnp.where(room > 0, room, 1), inf)
        share = jnp.where(gamma[:, None] > 1, x_hi, x_new + (x_hi - x_new) * jnp.minimum(gamma, 1)[:, None])
        x_new = jnp.where(chosen, share, x_new)
        x_new = jnp.where(done[:, None], x, x_new)
        attr = attr + (x_new - x) * grad
        return x_new, g, attr, done | close | (gamma <= 1), it + 1

    def going(state):
        return jnp.any(~state[3]) & (state[4] < max_moves)

    done = jnp.zeros(x.shape[0], bool)
    x, _, attr, _, _ = jax.lax.while_loop(going, move, (x, grad, attr, done, jnp.int32(0)))
    return x, attr


def guided_integrated_gradients(model, variables, images: jax.Array, target: Target, *, baseline=None,
                                steps: int = 200, fraction: float = 0.25, max_dist: float = 0.02,
                                batch_size: int | None = None) -> jax.Array:
    """Guided IG (see the module docstring): (B, H, W, 3), with respect to the images.

    Example:
        >>> gig = jax.jit(guided_integrated_gradients, static_argnums=0)(model, variables, x, 285)  # doctest: +SKIP

    Args:
        baseline: a scalar, an (H, W, 3) image or a (B, H, W, 3) batch (black by default, as PAIR's).
        steps: steps of the walk (one gradient per image each); PAIR's default 200.
        fraction: in (0, 1], the share of features, lowest ``|grad|`` first, moved per move.
        max_dist: in [0, 1], how far (in alpha) a feature may stray from the straight line.
        batch_size: images per forward pass (default the whole batch; the steps run one after the other).
    """
    if not (isinstance(steps, int | np.integer) and steps >= 1):
        raise ValueError(f"guided IG needs an integer steps >= 1, got {steps!r}")
    if not 0 < fraction <= 1:
        raise ValueError(f"guided IG needs 0 < fraction <= 1, got {fraction}")
    if not 0 <= max_dist <= 1:
        raise ValueError(f"guided IG needs 0 <= max_dist <= 1, got {max_dist}")
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if images.ndim != 4:
        raise ValueError(f"images must be (B, H, W, C), got shape {images.shape}")
    shape, dtype = images.shape, images.dtype
    start = jnp.zeros(shape, dtype) if baseline is None else jnp.asarray(baseline, dtype)
    try:
        start = jnp.broadcast_to(start, shape)
    except ValueError:
        raise ValueError(f"a baseline of shape {start.shape} does not broadcast to the images' {shape}") from None
    b, n = shape[0], math.prod(shape[1:])
    end, start = images.reshape(b, n), start.reshape(b, n)

    # The schedule, as PAIR computes it in float64: alpha_i = (i + 1) / steps and its allowed band.
    alphas = (np.arange(steps) + 1.0) / steps
    table = jnp.asarray(np.stack([1 - alphas, np.maximum(alphas - max_dist, 0.0), np.minimum(alphas + max_dist, 1.0)],
                                 axis=1), dtype)
    k = int(math.floor((n - 1) * fraction))  # NumPy's "lower" quantile: the k-th smallest
    max_moves = -(-n // (k + 1)) + 3
    l1_total = jnp.sum(jnp.abs(end - start), axis=1)
    grad_fn = _gradient_fn(model, variables, target, b, batch_size)

    def step(i, carry):
        x, attr = carry
        grad = grad_fn(x.reshape(shape)).reshape(b, n)
        remaining, a_min, a_max = table[i]
        return _walk_step(x, grad, attr, start, end, l1_total * remaining, a_min, a_max, k, max_moves)

    _, attr = jax.lax.fori_loop(0, steps, step, (start, jnp.zeros((b, n), dtype)))
    return attr.reshape(shape)
