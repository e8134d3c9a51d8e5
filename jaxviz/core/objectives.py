"""What is scored: the one protocol of attribution targets and synthesis objectives.

An objective maps the activations of one forward pass to one score per image,
``obj(acts) -> (B,)``. ``acts`` holds the layers named in ``obj.layers`` plus two
entries every objective may read: ``"logits"`` and ``"input"`` (the image in
[0, 1], before the random transforms of the render loop). Attribution explains
a *target*: a class index, one per image, or any objective (:func:`channel`,
:func:`neuron`, :func:`class_logit`, or a sum of them); synthesis maximizes an
objective. Both go through :func:`score_and_acts`.

Objectives are pytrees (Lucid's objective algebra, as pure data): layer names
are static, everything else (channel indices, classes, weights, target
features) is a dynamic leaf. Objectives that differ only in values therefore
share one compiled program, and :func:`stack` turns a list of them into one
batched objective to ``vmap`` over.

Example:
    >>> from jaxviz.core import objectives as obj
    >>> o = obj.channel("blocks.8", 3) - 0.05 * obj.total_variation()
    >>> o.layers
    ('blocks.8',)

References: Olah et al., "Feature Visualization", Distill 2017 (Lucid).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp

__all__ = [
    "Objective", "channel", "neuron", "dream", "class_logit", "direction", "diversity", "total_variation", "l2",
    "match_features", "dot_compare", "stack", "evaluate", "variation", "INPUT", "LOGITS", "Channel", "Neuron",
    "Target", "score", "score_and_acts", "score_fn", "class_scores",
]

Target = Any  # int | (B,) int array | Objective

INPUT = "input"
LOGITS = "logits"
_SPECIAL = (INPUT, LOGITS)


class Objective:
    """Base of every objective: the algebra. Subclasses are flax.struct dataclasses."""

    @property
    def layers(self) -> tuple[str, ...]:
        """The network layers this objective reads (not ``input``/``logits``)."""
        return ()

    def __call__(self, acts: dict[str, jax.Array]) -> jax.Array:
        raise NotImplementedError

    def __add__(self, other):
        return _Sum((self, _as_objective(other)))

    __radd__ = __add__

    def __sub__(self, other):
        return self + (-1.0) * _as_objective(other)

    def __rsub__(self, other):
        return _as_objective(other) + (-1.0) * self

    def __neg__(self):
        return (-1.0) * self

    def __mul__(self, weight):
        if isinstance(weight, Objective):
            raise TypeError("objectives multiply by scalars only")
        return _Scaled(weight, self)

    __rmul__ = __mul__

    def __truediv__(self, weight):
        return self * (1.0 / weight)


def _as_objective(x) -> Objective:
    if isinstance(x, Objective):
        return x
    if isinstance(x, (int, float)) or (hasattr(x, "shape") and jnp.ndim(x) == 0):
        return _Constant(x)
    raise TypeError(f"cannot combine an objective with {type(x).__name__}")


class _OneLayer:
    """Mixin of the objectives that read the one layer named by their ``layer`` field."""

    @property
    def layers(self):
        return (self.layer,)


@flax.struct.dataclass
class _Constant(Objective):
    value: Any

    def __call__(self, acts):
        return jnp.broadcast_to(jnp.asarray(self.value, jnp.float32), (acts[INPUT].shape[0],))


@flax.struct.dataclass
class _Sum(Objective):
    terms: tuple

    @property
    def layers(self):
        return tuple(dict.fromkeys(n for t in self.terms for n in t.layers))

    def __call__(self, acts):
        return sum(t(acts) for t in self.terms)


@flax.struct.dataclass
class _Scaled(Objective):
    weight: Any
    term: Objective

    @property
    def layers(self):
        return self.term.layers

    def __call__(self, acts):
        return self.weight * self.term(acts)


@flax.struct.dataclass
class Channel(_OneLayer, Objective):
    """Mean activation of ``channel`` in ``layer`` over all positions (a feature map's overall strength)."""

    layer: str = flax.struct.field(pytree_node=False)
    channel: Any = 0

    def __call__(self, acts):
        a = acts[self.layer]
        a = a.reshape(a.shape[0], -1, a.shape[-1]).mean(axis=1)
        return jnp.take(a, self.channel, axis=-1)


@flax.struct.dataclass
class Neuron(_OneLayer, Objective):
    """One unit: ``layer[:, y, x, channel]`` (the centre if y/x are None); pooled layers: ``layer[:, channel]``."""

    layer: str = flax.struct.field(pytree_node=False)
    channel: Any = 0
    y: Any = None
    x: Any = None

    def __call__(self, acts):
        a = acts[self.layer]
        if a.ndim == 2:
            return jnp.take(a, self.channel, axis=-1)
        y = a.shape[1] // 2 if self.y is None else self.y
        x = a.shape[2] // 2 if self.x is None else self.x
        return a[:, y, x, self.channel]


@flax.struct.dataclass
class Dream(Objective):
    layer_names: tuple = flax.struct.field(pytree_node=False)
    weights: Any = None
    channels: Any = None

    @property
    def layers(self):
        return self.layer_names

    def __call__(self, acts):
        total = 0.0
        for i, name in enumerate(self.layer_names):
            a = acts[name]
            if self.channels is not None:
                a = a * self.channels  # a 0/1 (or soft) mask over channels
            value = jnp.mean(jnp.square(a), axis=tuple(range(1, a.ndim)))
            total = total + (value if self.weights is None else self.weights[i] * value)
        return total


@flax.struct.dataclass
class ClassLogit(Objective):
    cls: Any = 0

    def __call__(self, acts):
        return class_scores(acts[LOGITS], self.cls)


@flax.struct.dataclass
class Direction(_OneLayer, Objective):
    layer: str = flax.struct.field(pytree_node=False)
    vector: Any = None

    def __call__(self, acts):
        v = jnp.asarray(self.vector)
        v = v / (jnp.linalg.norm(v) + 1e-8)
        projected = acts[self.layer] @ v
        return projected.reshape(projected.shape[0], -1).mean(axis=1)


@flax.struct.dataclass
class DotCompare(_OneLayer, Objective):
    """``<a, t> * max(cos(a, t), 0.1) ** cossim_power`` per image, ``a`` the layer's activations, ``t`` a
    target's (Lucid's ``dot_compare``: 0 makes a caricature, a larger power a faithful inversion)."""

    layer: str = flax.struct.field(pytree_node=False)
    target: Any = None
    cossim_power: Any = 0.0

    def __call__(self, acts):
        a = acts[self.layer]
        a = a.reshape(a.shape[0], -1)
        t = jnp.broadcast_to(jnp.asarray(self.target, a.dtype).reshape(-1, a.shape[1]), a.shape)
        dot = jnp.sum(a * t, axis=1)
        cos = dot / (jnp.linalg.norm(a, axis=1) * jnp.linalg.norm(t, axis=1) + 1e-8)
        return dot * jnp.maximum(cos, 0.1) ** self.cossim_power


@flax.struct.dataclass
class Diversity(_OneLayer, Objective):
    layer: str = flax.struct.field(pytree_node=False)

    def __call__(self, acts):
        a = acts[self.layer]
        b, c = a.shape[0], a.shape[-1]
        flat = a.reshape(b, -1, c)
        gram = jnp.einsum("bpi,bpj->bij", flat, flat).reshape(b, -1)
        gram = gram / (jnp.linalg.norm(gram, axis=1, keepdims=True) + 1e-8)
        sim = gram @ gram.T
        others = jnp.maximum(b - 1, 1)
        return -(jnp.sum(sim, axis=1) - jnp.diagonal(sim)) / others


def variation(images: jax.Array, kind: str = "l1") -> jax.Array:
    """Total variation of (B, H, W, C) images: the one definition, in the variants the references use.

    * ``"l1"`` (Lucid's image prior): sum of |vertical| and |horizontal| neighbour differences over the image
      area, per image (B,);
    * ``"squared"`` (style transfer's): mean squared vertical plus mean squared horizontal difference, (B,);
    * ``"deepinversion"`` (NVlabs' reference): the sum of the L2 norms, over the whole batch, of the
      differences in four directions (across, down, both diagonals), a scalar.
    """
    dy, dx = images[:, 1:] - images[:, :-1], images[:, :, 1:] - images[:, :, :-1]
    if kind == "l1":
        return (jnp.abs(dy).sum(axis=(1, 2, 3)) + jnp.abs(dx).sum(axis=(1, 2, 3))) / (images.shape[1] * images.shape[2])
    if kind == "squared":
        return jnp.mean(jnp.square(dy), axis=(1, 2, 3)) + jnp.mean(jnp.square(dx), axis=(1, 2, 3))
    if kind == "deepinversion":
        diagonals = (images[:, 1:, :-1] - images[:, :-1, 1:], images[:, 1:, 1:] - images[:, :-1, :-1])
        return sum(jnp.sqrt(jnp.sum(jnp.square(d))) for d in (dx, dy, *diagonals))
    raise ValueError(f"unknown total variation {kind!r}; use l1, squared or deepinversion")


@flax.struct.dataclass
class TotalVariation(Objective):
    def __call__(self, acts):
        return variation(acts[INPUT], "l1")


@flax.struct.dataclass
class L2(Objective):
    center: Any = 0.5

    def __call__(self, acts):
        x = acts[INPUT] - self.center
        return jnp.sqrt(jnp.sum(jnp.square(x), axis=(1, 2, 3)) + 1e-12)


@flax.struct.dataclass
class MatchFeatures(_OneLayer, Objective):
    layer: str = flax.struct.field(pytree_node=False)
    target: Any = None

    def __call__(self, acts):
        a, t = acts[self.layer], jnp.asarray(self.target)
        axes = tuple(range(1, a.ndim))
        return -jnp.sum(jnp.square(a - t), axis=axes) / (jnp.sum(jnp.square(t), axis=axes) + 1e-8)


def channel(layer: str, index) -> Objective:
    """Mean activation of channel ``index`` of ``layer`` over all positions."""
    return Channel(layer, index)


def neuron(layer: str, index, y=None, x=None) -> Objective:
    """One unit: ``layer[:, y, x, index]``, the centre position by default."""
    return Neuron(layer, index, y, x)


def dream(layers: str | Sequence[str], weights=None, channels=None) -> Objective:
    """DeepDream's objective: mean squared activation, summed over ``layers``.

    Args:
        layers: a layer name or several.
        weights: optional (len(layers),) weights, a dynamic value; one-hot
            weights select one layer per vmapped instance without recompiling.
        channels: optional (C,) mask over channels, to dream only some of them
            (all layers must then have C channels).
    """
    names = (layers,) if isinstance(layers, str) else tuple(layers)
    if weights is not None:
        weights = jnp.asarray(weights, jnp.float32)
        if weights.shape != (len(names),):
            raise ValueError(f"dream weights must have shape ({len(names)},), got {weights.shape}")
    return Dream(names, weights, None if channels is None else jnp.asarray(channels, jnp.float32))


def class_logit(cls) -> Objective:
    """The logit of class ``cls`` (an int, or one per image). Simonyan et al. 2014 maximize this."""
    return ClassLogit(cls)


def direction(layer: str, vector) -> Objective:
    """Projection of ``layer``'s activations onto a unit ``vector`` (C,), averaged over positions."""
    return Direction(layer, vector)


def dot_compare(layer: str, target, cossim_power: float = 0.0) -> Objective:
    """``layer``'s activations dotted with ``target``'s ((B, ...) or one shared), times the cosine similarity to
    ``cossim_power`` (Lucid's caricature and feature-inversion objective)."""
    return DotCompare(layer, target, cossim_power)


def diversity(layer: str) -> Objective:
    """Minus each image's mean cosine similarity to the others' Gram matrices at ``layer``."""
    return Diversity(layer)


def total_variation() -> Objective:
    """Mean absolute difference between neighbouring pixels (a penalty: subtract it)."""
    return TotalVariation()


def l2(center: float = 0.5) -> Objective:
    """Euclidean distance of the image from a constant grey (a penalty: subtract it)."""
    return L2(center)


def match_features(layer: str, target) -> Objective:
    """Minus ``||a - target||^2 / ||target||^2`` at ``layer``: feature inversion (Mahendran & Vedaldi 2015)."""
    return MatchFeatures(layer, target)


def stack(objectives: Sequence[Objective]) -> Objective:
    """One objective whose dynamic leaves have a leading axis, for ``jax.vmap``.

    All objectives must have the same structure (same kinds, same layers).
    """
    objectives = list(objectives)
    if not objectives:
        raise ValueError("stack needs at least one objective")
    first = jax.tree.structure(objectives[0])
    for o in objectives[1:]:
        if jax.tree.structure(o) != first:
            raise ValueError("stacked objectives must have the same structure (kinds and layers)")
    return jax.tree.map(lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]), *objectives)


def evaluate(objective: Objective, model, variables, images: jax.Array, original: jax.Array | None = None):
    """(B,) scores of ``objective`` on ``images``; ``original`` is what ``input`` sees (default ``images``).

    Compiled once per model, objective structure and shapes when ``model`` is hashable (every jaxviz port is;
    :func:`jaxviz.models.hashable`): run op by op, EfficientNet-Lite0's first evaluation compiled each of its
    operations on its own.
    """
    from jaxviz.models import hashable

    return (_evaluate if hashable(model) else _evaluate.__wrapped__)(objective, model, variables, images, original)


@functools.partial(jax.jit, static_argnums=1)
def _evaluate(objective, model, variables, images, original):
    return score_and_acts(model, variables, images, objective, original=original)[0]


def score_and_acts(model, variables, images: jax.Array, target: Target, capture: tuple[str, ...] = (),
                   perturb: dict | None = None, original: jax.Array | None = None) -> tuple[jax.Array, dict]:
    """(B,) scores of ``target`` on ``images``, and the activations in ``capture``, in one forward pass.

    Raises:
        ValueError: an objective names an unknown layer, or an array target has the wrong length.
        TypeError: the target is neither class indices nor an objective.
    """
    if isinstance(target, Objective):
        layers = tuple(dict.fromkeys((*target.layers, *capture)))
        logits, acts = model.apply(variables, images, capture=layers, perturb=perturb)
        scores = target({**acts, LOGITS: logits, INPUT: images if original is None else original})
        if scores.shape != (images.shape[0],):
            raise ValueError(f"an objective must give one score per image, shape ({images.shape[0]},); "
                             f"got {scores.shape}")
        return scores, acts
    if callable(target):
        raise TypeError("a target is a class index, one per image, or a jaxviz objective (channel, neuron, "
                        f"class_logit, ... of jaxviz.core.objectives); got {type(target).__name__}")
    _check_class_target(target, images.shape[0])  # before the forward pass: a bad target fails in microseconds
    logits, acts = model.apply(variables, images, capture=tuple(capture), perturb=perturb)
    return class_scores(logits, target), acts


def score(model, variables, images: jax.Array, target: Target) -> jax.Array:
    """The (B,) scores an attribution differentiates (or occludes)."""
    return score_and_acts(model, variables, images, target)[0]


def score_fn(model, variables, target: Target):
    """``images -> sum of scores``: its gradient is every image's own gradient (images are independent)."""
    return lambda images: jnp.sum(score(model, variables, images, target))


def _check_class_target(target, batch: int) -> jax.Array:
    """``target`` as an array: an int or ``batch`` ints (ValueError: another shape; TypeError: not integers)."""
    t = jnp.asarray(target)
    if t.ndim > 1 or (t.ndim == 1 and t.shape[0] != batch):
        raise ValueError(f"target must be an int or one int per image ({batch}), got shape {t.shape}")
    if not jnp.issubdtype(t.dtype, jnp.integer):
        raise TypeError(f"target must be integer class indices, got dtype {t.dtype}")
    return t


def class_scores(logits: jax.Array, target) -> jax.Array:
    """``logits[b, target[b]]`` for an int or (B,) int target."""
    batch = logits.shape[0]
    t = jnp.broadcast_to(_check_class_target(target, batch), (batch,))
    return jnp.take_along_axis(logits, t[:, None], axis=1)[:, 0]
