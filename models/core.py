"""The one model protocol every technique uses, for jaxviz's ports and any other JAX network.

A :class:`Model` is a frozen, hashable record (so it can be a static argument of ``jax.jit``): a *forward*
function ``forward(variables, x) -> logits`` on preprocessed images, plus what a user needs to feed it (native
input size, preprocessing) and to look inside it (layer names in forward order). The network is never edited and
there are no hooks: :meth:`Model.apply` runs ``forward`` directly, or, when activations are captured or perturbed
or the ReLU-like operations are rewritten, through :mod:`jaxviz.models.interpret`, which reads the layers from
the module paths JAX records while tracing (Flax linen, Haiku, ``jax.named_scope``; the NNX and Equinox adapters
push theirs). Under ``jit`` the compiled program is the direct one.

Contract (what every technique relies on), :class:`ModelLike`:

========================  ==========================================================================
``apply(v, x)``           logits (B, num_classes) for images (B, H, W, 3) float RGB in [0, 1]
``apply(v, x, capture)``  ``(logits, {layer: activation})``; spatial activations NHWC
``apply(v, x, perturb)``  adds ``{layer: delta}`` on the way (its gradient at 0 is the layer gradient)
``layers``                every layer name in forward order (module paths joined by ``.``)
``with_act(f)``           the same network with ``f`` in place of every ReLU-like operation
``rewrite_relus(rule)``   the same with ``rule(act)`` in place of each (guided backprop, deconvnet)
``rewrite_ops(rules)``    the same with ``{tag: rule}`` for its ``conv``/``dense``/``maxpool`` ops (DeepLIFT)
``apply_preprocessed``    logits of preprocessed inputs, with rules for affine layers and residual sums (LRP)
``batch_norm_stats(v)``   ``{bn layer: (running mean, running var)}`` (DeepInversion)
``input_size``            native square resolution; ``num_classes``; ``preprocessing``; ``cam_layer``
========================  ==========================================================================

Example:
    >>> model, variables = jaxviz.models.load("efficientnet_lite0")  # doctest: +SKIP
    >>> logits, acts = model.apply(variables, images, capture=["blocks.5"])  # doctest: +SKIP
"""

from __future__ import annotations

import collections
import dataclasses
import functools
from collections.abc import Callable, Iterable
from typing import Any, Protocol, runtime_checkable

import jax
import jax.numpy as jnp

from . import interpret, layers

__all__ = ["Model", "ModelLike", "Preprocessing", "IMAGENET_MEAN", "IMAGENET_STD", "check_names", "bn_inputs",
           "Replace"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

Act = Callable[[jax.Array], jax.Array]
Rule = Callable[[Act], Act]


@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """Maps images in [0, 1] RGB to what a network was trained on.

    ``((x * scale)[..., ::-1 if bgr] - mean) / std``, per channel. ``Preprocessing.identity()`` passes [0, 1]
    images through unchanged.
    """

    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    scale: float = 1.0
    bgr: bool = False

    @classmethod
    def identity(cls) -> Preprocessing:
        return cls((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))

    def __call__(self, images: jax.Array) -> jax.Array:
        x = images * self.scale
        if self.bgr:
            x = x[..., ::-1]
        return (x - jnp.asarray(self.mean, x.dtype)) / jnp.asarray(self.std, x.dtype)


def check_names(names: Iterable[str], valid: tuple[str, ...], what: str = "layer") -> tuple[str, ...]:
    """Returns ``names`` as a tuple, or raises ValueError listing the valid ones."""
    if isinstance(names, str):
        names = (names,)
    names = tuple(names)
    unknown = [n for n in names if n not in valid]
    if unknown:
        raise ValueError(f"unknown {what} {unknown[0]!r}; valid names: {', '.join(valid)}")
    return names


@runtime_checkable
class ModelLike(Protocol):
    """The duck-typed surface every jaxviz technique uses (see the module docstring's table)."""

    name: str
    input_size: int
    num_classes: int
    layers: tuple[str, ...]
    cam_layer: str | None
    labels: str

    def apply(self, variables, images, capture=None, perturb=None): ...

    def with_act(self, act: Act) -> ModelLike: ...

    def rewrite_relus(self, rule: Rule) -> ModelLike: ...

    def rewrite_ops(self, rules: dict[str, interpret.OpRule]) -> ModelLike: ...

    def apply_preprocessed(self, variables, x, *, affine=None, sums=None): ...

    def batch_norm_stats(self, variables) -> dict[str, tuple[jax.Array, jax.Array]]: ...


@dataclasses.dataclass(frozen=True)
class Replace:
    """The ReLU rule that puts ``act`` in place of every ReLU-like operation."""

    act: Act

    def __call__(self, base: Act) -> Act:
        return self.act


@dataclasses.dataclass(frozen=True)
class _Compose:
    outer: Rule
    inner: Rule

    def __call__(self, base: Act) -> Act:
        return self.outer(self.inner(base))


@dataclasses.dataclass(frozen=True)
class _ComposeOp:
    outer: interpret.OpRule
    inner: interpret.OpRule

    def __call__(self, bind, invals):
        return self.outer(lambda *args: self.inner(bind, list(args)), invals)


@dataclasses.dataclass(frozen=True)
class Model:
    """A CNN under jaxviz's protocol.

    Attributes:
        name: registry or user-given name, e.g. ``"resnet50"``.
        forward: ``forward(variables, x) -> logits`` on preprocessed images (NCHW if ``channels_first``);
            hashable (it keys compiled programs and traces).
        input_size: native square resolution in pixels.
        num_classes: number of logits.
        preprocessing: applied inside :meth:`apply` to images in [0, 1].
        layers: names of every reachable activation, in forward order.
        labels: which label set the logits index (``"imagenet"``).
        cam_layer: the last spatial layer, whose global average feeds the classifier; None if there is none.
        aliases: ``(name, path)`` pairs: layer names that stand for discovered paths.
        channels_first: the network computes in NCHW; images and activations are NHWC at the boundary.
        naming: how the traced scopes become layer names (:class:`~jaxviz.models.interpret.Naming`).
        statistics: ``statistics(variables) -> {bn layer: (mean, var)}``; None if the network has no BatchNorm.
        relu_rule: ``rule(act) -> act'`` applied to every ReLU-like operation; None runs the network as is.
        op_rules: ``((tag, op_rule), ...)`` applied to every ``conv``, ``dense`` or ``maxpool`` operation
            (:meth:`rewrite_ops`).
    """

    name: str
    forward: Callable
    input_size: int
    num_classes: int
    preprocessing: Preprocessing
    layers: tuple[str, ...]
    labels: str = "imagenet"
    cam_layer: str | None = None
    aliases: tuple[tuple[str, str], ...] = ()
    channels_first: bool = False
    naming: interpret.Naming = interpret.Naming()
    statistics: Callable | None = None
    relu_rule: Rule | None = None
    op_rules: tuple[tuple[str, interpret.OpRule], ...] = ()

    # ------------------------------------------------------------------------------------ rewriting

    @property
    def module(self):
        """The Flax linen module behind ``forward`` (ports and :func:`from_linen`), else None."""
        return getattr(self.forward, "module", None)

    @property
    def act(self) -> Act | None:
        """The function :meth:`with_act` put in place of the ReLUs, else None (the network's own)."""
        return self.relu_rule.act if isinstance(self.relu_rule, Replace) else None

    def with_act(self, act: Act) -> Model:
        """The same network with ``act`` in place of every ReLU-like operation (weights unchanged)."""
        return dataclasses.replace(self, relu_rule=Replace(act))

    def rewrite_relus(self, rule: Rule) -> Model:
        """The same network with ``rule(act)`` in place of every ReLU-like operation ``act``.

        Guided backprop and deconvnet pass ``custom_vjp`` rules here; an earlier rule is applied first.
        """
        return dataclasses.replace(self, relu_rule=rule if self.relu_rule is None else _Compose(rule, self.relu_rule))

    def rewrite_ops(self, rules: dict[str, interpret.OpRule]) -> Model:
        """The same network with every operation tagged ``tag`` (``conv``, ``dense``, ``maxpool``) computed by
        ``rules[tag](bind, invals)``, where ``bind(*invals)`` computes it as traced; an earlier rule is applied first.

        DeepLIFT's max-pool rule changes the backward pass this way.
        """
        unknown = sorted(set(rules) - set(interpret.OP_TAGS))
        if unknown:
            raise ValueError(f"unknown operation tag(s) {', '.join(unknown)}; valid: {', '.join(interpret.OP_TAGS)}")
        merged = dict(self.op_rules)
        for tag, rule in rules.items():
            merged[tag] = rule if tag not in merged else _ComposeOp(rule, merged[tag])
        return dataclasses.replace(self, op_rules=tuple(merged.items()))

    # ------------------------------------------------------------------------------------ running

    def init(self, key: jax.Array, size: int = 64) -> dict[str, Any]:
        """Random variables of a linen network (parameter shapes do not depend on ``size``)."""
        if self.module is None:
            raise ValueError(f"{self.name}: init() is for Flax linen networks; build the variables with your "
                             "framework and pass them to the adapter")
        return _jitted_init(self.module)(key, jnp.zeros((1, size, size, 3), jnp.float32))

    def trace(self, variables, images) -> interpret.Graph:
        """The traced forward pass for images of this shape (cached): its layers, shapes and ReLU sites.

        ``variables`` and ``images`` may be arrays or ``jax.ShapeDtypeStruct`` (nothing is computed).
        """
        if isinstance(images, jax.ShapeDtypeStruct):
            b, h, w, c = images.shape
            x = jax.ShapeDtypeStruct((b, c, h, w) if self.channels_first else (b, h, w, c), images.dtype)
        else:
            x = self._inner(self.preprocessing(images))
        return self._graph(variables, x)

    def apply(self, variables, images: jax.Array, capture: Iterable[str] | str | None = None,
              perturb: dict[str, jax.Array] | None = None):
        """Runs the network on ``images``.

        Args:
            variables: the model's variables.
            images: (B, H, W, 3) float RGB in [0, 1].
            capture: layer names whose activations to return as well.
            perturb: ``{layer: delta}`` added to those activations on the way (same shapes); differentiate at
                zero for gradients w.r.t. layers.

        Returns:
            Logits (B, num_classes) when ``capture`` is None; otherwise ``(logits, {name: activation})``.
            Spatial activations are NHWC; pooled ones (B, C).
        """
        _check_images(images)
        wanted = check_names(capture, self.layers) if capture is not None else ()
        if perturb:
            check_names(tuple(perturb), self.layers)
        x = self._inner(self.preprocessing(images))
        if not wanted and not perturb and self.relu_rule is None and not self.op_rules:
            logits = self.forward(variables, x)
            return logits if capture is None else (logits, {})
        graph = self._graph(variables, x, plain=bool(self.op_rules))
        where = {name: self._value(graph, name) for name in (*wanted, *(perturb or {}))}
        deltas: dict = {}
        for name, delta in (perturb or {}).items():
            d = self._inner(jnp.asarray(delta))
            deltas[where[name]] = deltas[where[name]] + d if where[name] in deltas else d
        logits, seen = interpret.run(graph, (variables, x), capture=[where[n] for n in wanted], perturb=deltas,
                                     rule=self.relu_rule, ops=dict(self.op_rules))
        return logits if capture is None else (logits, {n: self._outer(seen[where[n]]) for n in wanted})

    def __call__(self, variables, images, capture=None, perturb=None):
        return self.apply(variables, images, capture, perturb)

    def apply_preprocessed(self, variables, x: jax.Array, *, affine: interpret.AffineRule | None = None,
                           sums: interpret.SumRule | None = None) -> jax.Array:
        """Logits of already preprocessed inputs ``x`` (B, H, W, C), with this model's rules and, if given,
        ``affine`` computing every affine layer and ``sums`` every residual sum (see :func:`interpret.run`).

        LRP uses this: its relevance lives on the network's own input, after the preprocessing.
        """
        inner = self._inner(x)
        if self.relu_rule is None and not self.op_rules and affine is None and sums is None:
            return self.forward(variables, inner)
        graph = self._graph(variables, inner, plain=bool(self.op_rules) or affine is not None or sums is not None)
        logits, _ = interpret.run(graph, (variables, inner), rule=self.relu_rule, ops=dict(self.op_rules),
                                  affine=affine, sums=sums)
        return logits

    def batch_norm_stats(self, variables) -> dict[str, tuple[jax.Array, jax.Array]]:
        """``{bn layer: (running mean, running var)}``, each (C,)."""
        stats = self.statistics(variables) if self.statistics is not None else {}
        if not stats:
            raise ValueError(f"{self.name} has no BatchNorm layers with running statistics; DeepInversion and "
                             "the BN-statistic loss need a network with BatchNorm")
        return stats

    # ------------------------------------------------------------------------------------ helpers

    def _graph(self, variables, x, plain: bool = False) -> interpret.Graph:
        """The forward pass traced on preprocessed ``x`` (or its shape), in the network's layout.

        ``plain``: the ports' convolutions traced as convolutions (``layers.FAST_CPU`` off), for op and
        affine-layer rules that read them (a 1x1 convolution computed as a matrix product would read as a dense
        layer).
        """
        if not plain:
            return interpret.trace(self.forward, (variables, x), naming=self.naming)
        token = layers.FAST_CPU.set("off")
        try:
            return interpret.trace(self.forward, (variables, x), naming=self.naming)
        finally:
            layers.FAST_CPU.reset(token)

    def _value(self, graph: interpret.Graph, name: str):
        path = dict(self.aliases).get(name, name)
        if path not in graph.layers:
            raise ValueError(f"{self.name}: layer {name!r} ({path!r}) is not in the traced forward pass; "
                             f"found: {', '.join(graph.layers)}")
        return graph.layers[path]

    def _inner(self, x):
        return jnp.moveaxis(x, -1, 1) if self.channels_first and x.ndim == 4 else x

    def _outer(self, x):
        return jnp.moveaxis(x, 1, -1) if self.channels_first and x.ndim == 4 else x


@functools.cache
def _jitted_init(module):
    """One compiled initializer per network: a new key does not recompile."""
    return jax.jit(module.init)


def _check_images(images) -> None:
    shape = getattr(images, "shape", None)
    dtype = getattr(images, "dtype", None)
    if shape is None or len(shape) != 4 or shape[-1] != 3:
        raise ValueError(f"images must be (B, H, W, 3) RGB in [0, 1], got shape {shape}")
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"images must be floating point in [0, 1], got dtype {dtype}; divide uint8 images by 255")


def bn_inputs(model: Model, variables, images: jax.Array):
    """Runs the network and returns what every BatchNorm layer saw, without editing the model.

    Compiled once per model and input shape if the model is hashable (:func:`hashable`). Run op by op, a
    first call compiles each operation on its own: DeepInversion's BN loss on Lite0 (3 images, 128 px) took
    26 s against 5 s compiled, on a busy 2-core CPU.

    Returns:
        ``(logits, {bn_name: input})`` in forward order, names as :meth:`Model.batch_norm_stats` gives them
        (dotted module paths, e.g. ``"layer1.0.bn1"``), inputs NHWC.
    """
    model.batch_norm_stats(variables)  # a network without BatchNorm: a clear error before anything compiles
    _check_images(images)
    logits, seen = (_bn_inputs if hashable(model) else _bn_inputs.__wrapped__)(model, variables, images)
    return logits, dict(seen)


def hashable(model) -> bool:
    """Whether ``model`` can be a static argument of ``jax.jit``: every jaxviz port is; a wrapped user module
    that holds a list (a jax_resnet ``Sequential``) is not, and runs op by op instead."""
    try:
        hash(model)
    except TypeError:
        return False
    return True


@functools.partial(jax.jit, static_argnums=0)
def _bn_inputs(model: Model, variables, images: jax.Array):
    stats = model.batch_norm_stats(variables)
    x = model._inner(model.preprocessing(images))
    graph = model._graph(variables, x)
    missing = [name for name in stats if name not in graph.scope_inputs]
    if missing:
        raise ValueError(f"{model.name}: BatchNorm {missing[0]!r} was not found in the forward pass (layers: "
                         f"{', '.join(graph.layers)})")
    order = {name: i for i, name in enumerate(graph.layers)}
    names = sorted(stats, key=lambda n: order.get(n, len(order)))
    logits, seen = interpret.run(graph, (variables, x), capture=[graph.scope_inputs[n] for n in names],
                                 rule=model.relu_rule)
    # an OrderedDict: a jitted function's plain dict comes back with its keys sorted, not in forward order
    return logits, collections.OrderedDict((n, model._outer(seen[graph.scope_inputs[n]])) for n in names)
