"""Layer-wise relevance propagation (LRP): the target logit redistributed layer by layer onto the input pixels.

LRP (Bach et al. 2015) runs the network forward, sets the relevance of the output to the target logit (zero for
the other classes), and passes it back through every layer by a *rule* that divides each output unit's relevance
among its inputs in proportion to their contributions. Here, as in Zennit, a rule is a change of the backward
pass, and the backward pass of the whole network is one ``jax.vjp``:

* every **affine layer** (a convolution or dense layer together with the bias and inference-mode BatchNorm after
  it, read from the jaxpr as one ``scale * linear(x, kernel) + shift``, which is what Zennit's BatchNorm
  canonizers build by merging the BatchNorm into the weights) gets its composite's rule: :class:`Epsilon`,
  :class:`ZPlus`, :class:`AlphaBeta`, :class:`Gamma` (the generalized form, for inputs of either sign),
  :class:`Flat`, :class:`WSquare` or :class:`ZBox`, with Zennit's definitions and stabilizer;
* average and sum pooling gets :class:`Norm`; an ``add`` of two data-dependent values (a residual connection)
  splits its relevance in proportion to the two summands (Zennit's ``Sum`` with ``Norm``);
* ReLU-like operations pass relevance through unchanged (Zennit's ``Pass``); max-pools, reshapes and every other
  operation keep their gradient (max-pools route relevance to the maximum).

Two departures from Zennit's defaults, for networks the tests do not cover: elementwise affine ops that follow
no linear operation (a BatchNorm right after a residual sum, as in pre-activation ResNets) keep their gradient,
where Zennit passes relevance through an unmerged BatchNorm unchanged; activations that are not ReLU-like
(swish, GELU) keep their gradient, where Zennit's ``Pass`` hands relevance on unchanged.

The relevance lives on the network's own input, after the model's preprocessing (Zennit's convention: its input
is the normalized tensor); :class:`ZBox`'s default bounds are the preprocessed images of 0 and 1. Under
LRP-epsilon with a small epsilon a ReLU network's relevance sums to the target logit minus what the biases
absorb. No hooks and no canonizers to register: any model jaxviz's tracer reads (ports, adapted Flax, NNX,
Equinox and Haiku models, plain functions) gets the same rules, and the result composes with ``jit`` and
``vmap``.

References:
    Bach et al., "On Pixel-Wise Explanations for Non-Linear Classifier Decisions by Layer-Wise Relevance
    Propagation", PLOS ONE 2015.
    Montavon et al., "Layer-Wise Relevance Propagation: An Overview", 2019 (the composites).
    Anders et al., "Software for Dataset-wide XAI: From Local Explanations to Global Insights with Zennit,
    CoRelAy, and ViRelAy", 2021.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp

from jaxviz.core.objectives import Objective
from jaxviz.models.interpret import Affine, weights

__all__ = ["lrp", "Epsilon", "Norm", "ZPlus", "AlphaBeta", "Gamma", "Flat", "WSquare", "ZBox", "Composite",
           "COMPOSITES", "make_composite"]


def _stabilize(z: jax.Array, epsilon: float) -> jax.Array:
    """Zennit's stabilizer: ``z + epsilon`` with the sign of ``z`` (``+epsilon`` where ``z == 0``)."""
    return z + epsilon * ((z == 0).astype(z.dtype) + jnp.sign(z))


def _grad(layer: Affine, weight, u: jax.Array, g: jax.Array) -> jax.Array:
    """The transposed (weight-changed) layer applied to ``g``: the VJP of ``layer.apply(., weight)`` at ``u``."""
    return jax.vjp(lambda v: layer.apply(v, weight), u)[1](g)[0]


def _pos(a):
    return jnp.maximum(a, 0)


def _neg(a):
    return jnp.minimum(a, 0)


@dataclasses.dataclass(frozen=True)
class Epsilon:
    """LRP-epsilon: ``R_x = x * W^T (R / (z + eps sign z))`` with ``z`` the layer's output (bias included)."""

    epsilon: float = 1e-6

    def __call__(self, layer: Affine, x, r):
        z = layer.apply(x) + layer.shift
        return x * _grad(layer, None, x, r / _stabilize(z, self.epsilon))


@dataclasses.dataclass(frozen=True)
class Norm(Epsilon):
    """Pooling and sums: the epsilon rule with ``epsilon`` only as a stabilizer."""


@dataclasses.dataclass(frozen=True)
class ZPlus:
    """LRP-z+ (alpha 1, beta 0): only positive contributions ``W+ x+ + W- x-`` (and a positive bias) count."""

    stabilizer: float = 1e-6

    def __call__(self, layer: Affine, x, r):
        xp, xn = _pos(x), _neg(x)
        z = layer.apply(xp, weights.positive) + _pos(layer.shift) + layer.apply(xn, weights.negative)
        g = r / _stabilize(z, self.stabilizer)
        return xp * _grad(layer, weights.positive, xp, g) + xn * _grad(layer, weights.negative, xn, g)


@dataclasses.dataclass(frozen=True)
class AlphaBeta:
    """LRP-alpha-beta: ``alpha`` times the positive contributions' share minus ``beta`` times the negative ones'."""

    alpha: float = 2.0
    beta: float = 1.0
    stabilizer: float = 1e-6

    def __post_init__(self):
        if self.alpha < 0 or self.beta < 0 or self.alpha - self.beta != 1:
            raise ValueError(f"AlphaBeta needs alpha, beta >= 0 and alpha - beta == 1; got {self.alpha}, {self.beta}")

    def __call__(self, layer: Affine, x, r):
        xp, xn = _pos(x), _neg(x)
        p, n = weights.positive, weights.negative
        zp = layer.apply(xp, p) + _pos(layer.shift) + layer.apply(xn, n)
        zn = layer.apply(xp, n) + _neg(layer.shift) + layer.apply(xn, p)
        gp, gn = r / _stabilize(zp, self.stabilizer), r / _stabilize(zn, self.stabilizer)
        positive = xp * _grad(layer, p, xp, gp) + xn * _grad(layer, n, xn, gp)
        negative = xp * _grad(layer, n, xp, gn) + xn * _grad(layer, p, xn, gn)
        return self.alpha * positive - self.beta * negative


@dataclasses.dataclass(frozen=True)
class Gamma:
    """Generalized LRP-gamma: weights ``W + gamma W+`` where the output is positive, ``W + gamma W-`` where it is
    negative (Zennit's definition; the original rule for positive inputs is the special case)."""

    gamma: float = 0.25
    stabilizer: float = 1e-6

    def __call__(self, layer: Affine, x, r):
        xp, xn, t, g = _pos(x), _neg(x), layer.shift, self.gamma
        up, down = weights.gamma(g, weights.positive), weights.gamma(g, weights.negative)
        z = layer.apply(x) + t
        zp = layer.apply(xp, up) + t + g * _pos(t) + layer.apply(xn, down)
        zn = layer.apply(xp, down) + t + g * _neg(t) + layer.apply(xn, up)
        a = (z > 0) * r / _stabilize(zp, self.stabilizer)
        b = (z < 0) * r / _stabilize(zn, self.stabilizer)
        return (xp * (_grad(layer, up, xp, a) + _grad(layer, down, xp, b))
                + xn * (_grad(layer, down, xn, a) + _grad(layer, up, xn, b)))


@dataclasses.dataclass(frozen=True)
class WSquare:
    """LRP-w^2: relevance in proportion to the squared weights (no bias; the input does not matter)."""

    stabilizer: float = 1e-6
    weight = staticmethod(weights.square)

    def __call__(self, layer: Affine, x, r):
        ones = jnp.ones_like(x)
        z = layer.apply(ones, self.weight)
        return _grad(layer, self.weight, ones, r / _stabilize(z, self.stabilizer))


@dataclasses.dataclass(frozen=True)
class Flat(WSquare):
    """LRP-flat: relevance spread evenly over each output's receptive field (w^2 with all weights 1)."""

    weight = staticmethod(weights.ones)


@dataclasses.dataclass(frozen=True)
class ZBox:
    """LRP-z^B for inputs bounded by ``low`` and ``high`` (broadcast against the input: scalars or per channel)."""

    low: object
    high: object
    stabilizer: float = 1e-6

    def __call__(self, layer: Affine, x, r):
        lo = jnp.broadcast_to(jnp.asarray(self.low, x.dtype), x.shape)
        hi = jnp.broadcast_to(jnp.asarray(self.high, x.dtype), x.shape)
        t, p, n = layer.shift, weights.positive, weights.negative
        z = (layer.apply(x) + t) - (layer.apply(lo, p) + _pos(t)) - (layer.apply(hi, n) + _neg(t))
        g = r / _stabilize(z, self.stabilizer)
        return x * _grad(layer, None, x, g) - lo * _grad(layer, p, lo, g) - hi * _grad(layer, n, hi, g)


Rule = Callable[[Affine, jax.Array, jax.Array], jax.Array]


@dataclasses.dataclass(frozen=True)
class Composite:
    """Which rule each affine layer gets: ``first`` for the first convolution or dense layer (None: by kind),
    ``conv`` and ``dense`` by kind, ``pool`` for pooling; ``stabilizer`` for the sums of residual connections."""

    conv: Rule
    dense: Rule
    first: Rule | None = None
    pool: Rule = Norm()
    stabilizer: float = 1e-6

    def rule(self, layer: Affine) -> Rule:
        if layer.kind == "pool":
            return self.pool
        if layer.index == 0 and self.first is not None:
            return self.first
        return self.conv if layer.kind == "conv" else self.dense


#: Zennit's named composites (its ``EpsilonPlus``, ``EpsilonPlusFlat``, ``EpsilonGammaBox``,
#: ``EpsilonAlpha2Beta1``, ``EpsilonAlpha2Beta1Flat``) and LRP-epsilon everywhere.
COMPOSITES = ("epsilon", "epsilon_plus", "epsilon_plus_flat", "epsilon_gamma_box", "epsilon_alpha2_beta1",
              "epsilon_alpha2_beta1_flat")


def make_composite(name: str, *, epsilon: float = 1e-6, stabilizer: float = 1e-6, gamma: float = 0.25, low=0.0,
              high=1.0) -> Composite:
    """The named composite (:data:`COMPOSITES`) with Zennit's defaults; ``low``/``high`` bound :class:`ZBox`'s input."""
    s = stabilizer
    dense = Epsilon(epsilon)
    table = {
        "epsilon": lambda: Composite(Epsilon(epsilon), dense, pool=Norm(s), stabilizer=s),
        "epsilon_plus": lambda: Composite(ZPlus(s), dense, pool=Norm(s), stabilizer=s),
        "epsilon_plus_flat": lambda: Composite(ZPlus(s), dense, Flat(s), Norm(s), s),
        "epsilon_gamma_box": lambda: Composite(Gamma(gamma, s), dense, ZBox(low, high, s), Norm(s), s),
        "epsilon_alpha2_beta1": lambda: Composite(AlphaBeta(2.0, 1.0, s), dense, pool=Norm(s), stabilizer=s),
        "epsilon_alpha2_beta1_flat": lambda: Composite(AlphaBeta(2.0, 1.0, s), dense, Flat(s), Norm(s), s),
    }
    if name not in table:
        raise ValueError(f"unknown LRP composite {name!r}; valid: {', '.join(COMPOSITES)}")
    return table[name]()


def _with_relevance(backward: Callable, x: jax.Array, y: jax.Array, *arrays) -> jax.Array:
    """``y`` (computed from ``x`` as traced), whose VJP sends ``backward(x, *arrays, r)`` to ``x`` and nothing
    else anywhere: the plain graph that computed ``y`` receives a zero cotangent."""

    @jax.custom_vjp
    def f(x, y, *arrays):
        return y

    def fwd(x, y, *arrays):
        return y, (x, arrays)

    def bwd(res, r):
        x, arrays = res
        return (backward(x, *arrays, r), jnp.zeros_like(r), *(jnp.zeros_like(a) for a in arrays))

    f.defvjp(fwd, bwd)
    return f(x, y, *arrays)


def _affine_rule(comp: Composite):
    def rule(layer: Affine, x):
        chosen = comp.rule(layer)
        kernel = layer.kernel if layer.kernel is not None else jnp.zeros((), x.dtype)

        def backward(x, kernel, scale, shift, r):
            here = dataclasses.replace(layer, kernel=None if layer.kernel is None else kernel, scale=scale,
                                       shift=shift)
            return chosen(here, x, r)

        return _with_relevance(backward, x, layer.forward(x), kernel, layer.scale, layer.shift)

    return rule


def _sum_rule(stabilizer: float):
    def rule(a, b):
        def backward(a, b, r):
            share = r / _stabilize(a + b, stabilizer)
            return a * share, b * share

        @jax.custom_vjp
        def f(a, b):
            return a + b

        f.defvjp(lambda a, b: (a + b, (a, b)), lambda res, r: backward(*res, r))
        return f(a, b)

    return rule


def _pass(act):
    """Zennit's ``Pass``: a ReLU-like operation hands its output's relevance to its input unchanged."""
    f = jax.custom_vjp(act)
    f.defvjp(lambda z: (act(z), None), lambda _, r: (r,))
    return f


def lrp(model, variables, images: jax.Array, target, *, composite: str | Composite = "epsilon_plus_flat",
        epsilon: float = 1e-6, stabilizer: float = 1e-6, gamma: float = 0.25, low=None, high=None) -> jax.Array:
    """LRP relevance (B, H, W, 3) of the target logit on the network's (preprocessed) input.

    Args:
        target: class indices, an int or one per image; the output relevance is the target logit.
        composite: a name in :data:`COMPOSITES` (Zennit's defaults) or a :class:`Composite`.
        epsilon: the epsilon of :class:`Epsilon` (dense layers in every named composite).
        stabilizer: every other rule's stabilizer.
        gamma: :class:`Gamma`'s gamma (``epsilon_gamma_box``).
        low, high: :class:`ZBox`'s bounds on the preprocessed input; None: the preprocessed images of 0 and 1.

    Returns:
        Relevance per input value; under LRP-epsilon on a ReLU network it sums to about the target logit.
    """
    if isinstance(target, Objective) or callable(target):
        raise TypeError("LRP explains a class logit: target must be class indices, an int or one per image")
    images = jnp.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be (B, H, W, 3), got shape {images.shape}")
    if isinstance(composite, str):
        bounds = model.preprocessing(jnp.stack([jnp.zeros((1, 1, 3)), jnp.ones((1, 1, 3))]).astype(images.dtype))
        lo = bounds[0, 0, 0] if low is None else low
        hi = bounds[1, 0, 0] if high is None else high
        comp = make_composite(composite, epsilon=epsilon, stabilizer=stabilizer, gamma=gamma, low=lo,
                                      high=hi)
    elif isinstance(composite, Composite):
        comp = composite
    else:
        raise TypeError(f"composite must be a name ({', '.join(COMPOSITES)}) or a Composite, got "
                        f"{type(composite).__name__}")
    passing = model.rewrite_relus(_pass)
    x = model.preprocessing(images)

    def logits(x):
        return passing.apply_preprocessed(variables, x, affine=_affine_rule(comp), sums=_sum_rule(comp.stabilizer))

    out, vjp = jax.vjp(logits, x)
    t = jnp.broadcast_to(jnp.asarray(target), (images.shape[0],))
    if not jnp.issubdtype(t.dtype, jnp.integer):
        raise TypeError(f"target must be integer class indices, got dtype {t.dtype}")
    r = jax.nn.one_hot(t, out.shape[-1], dtype=out.dtype) * jax.lax.stop_gradient(out)
    return vjp(r)[0]
