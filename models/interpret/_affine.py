"""Affine layers and sums of the forward pass, as LRP sees them (part of :mod:`.interpret`).

An *affine layer* is a linear operation on the data (a convolution or ``dot_general`` with a weight that does
not depend on the data, or a sum/average pooling) followed by the elementwise ops that scale and shift its
output by data-independent values: a bias, an inference-mode BatchNorm, a per-channel scale. In the merged view
the whole chain is ``scale * linear(x, kernel) + shift``, which is what a BatchNorm canonizer builds by folding
the BatchNorm into the convolution's weights, here read from the jaxpr without editing the model. A *sum* is an
``add`` of two data-dependent values (a residual connection).

Which values depend on the data is read from the jaxpr: the leaves of the forward pass's last argument (the
images) and everything computed from them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
from jax.extend import core as jcore
from jax.extend.core import primitives as P

_LINEAR = {P.conv_general_dilated_p: "conv", P.dot_general_p: "dense", P.reduce_sum_p: "pool",
           P.reduce_window_sum_p: "pool"}
_CHAIN = {P.add_p, P.sub_p, P.mul_p, P.div_p}  # with a data-independent other operand
_CHAIN_UNARY = {P.neg_p, P.convert_element_type_p}
#: ops that only move values around (``vmap``'s reshapes and squeezes between a convolution and its bias): they
#: commute with the elementwise ops, so the layer is ``scale * shape(linear(x)) + shift`` (``shape``: these ops).
SHAPE_OPS = {P.reshape_p, P.squeeze_p, P.transpose_p, P.broadcast_in_dim_p}


@dataclasses.dataclass(frozen=True)
class Affine:
    """One affine layer of a forward pass, as an affine rule receives it.

    Its output is ``forward(x)`` (exactly as traced) ``== scale * linear(x, kernel) + shift`` up to rounding;
    ``linear`` includes the reshapes between the operation and its bias (``vmap``'s, in an Equinox model).

    Attributes:
        kind: ``"conv"``, ``"dense"`` or ``"pool"`` (sum or average pooling; ``kernel`` is None).
        index: how many ``conv``/``dense`` layers ran before this one in this forward pass (the first is 0).
        name: the scope it ran in (e.g. ``"layer1/0/conv1"``), "" outside every scope.
        linear: ``linear(x, kernel)`` (``linear(x)`` for a pool): the linear operation alone, with the given weight.
        kernel: the traced weight; None for a pool.
        scale, shift: output-shaped arrays: the elementwise affine ops after it (bias, BatchNorm), merged.
        forward: ``forward(x)``: the whole chain as traced.
    """

    kind: str
    index: int
    name: str
    linear: Callable
    kernel: jax.Array | None
    scale: jax.Array
    shift: jax.Array
    forward: Callable

    def apply(self, x: jax.Array, weight: Callable | None = None) -> jax.Array:
        """``linear(x, weight(kernel)) * scale`` without the shift, ``weight`` applied to the *merged* weight.

        ``weight`` is one of this module's weight changes (:func:`positive`, :func:`negative`, :func:`square`,
        :func:`ones`, :func:`gamma`; None: unchanged); the merged weight is the kernel
        with ``scale`` folded in per output unit, so a sign-dependent change (keep the positive part) sees the
        signs a BatchNorm canonizer would.
        """
        if self.kernel is None:
            return self.scale * self.linear(x)
        return sum(c * self.linear(x, w) for c, w in (weight or identity)(self.kernel, self.scale))


def _pos(a):
    return jax.numpy.maximum(a, 0)


def _neg(a):
    return jax.numpy.minimum(a, 0)


# Each weight change maps (kernel W, scale s) to [(coefficient, weight)] with sum(c * linear(x, w)) equal to
# linear(x, change(s W)) for every output unit: the positive part of s W is s+ W+ + s- W-, and so on.
def identity(w, s):
    return [(s, w)]


def positive(w, s):
    return [(_pos(s), _pos(w)), (_neg(s), _neg(w))]


def negative(w, s):
    return [(_pos(s), _neg(w)), (_neg(s), _pos(w))]


def square(w, s):
    return [(s * s, w * w)]


def ones(w, s):
    return [(jax.numpy.ones_like(s), jax.numpy.ones_like(w))]


def gamma(g: float, part: Callable) -> Callable:
    """``W + g * part(W)`` (``part``: :func:`positive` or :func:`negative`), the Gamma rule's weight."""
    return lambda w, s: identity(w, s) + [(g * c, v) for c, v in part(w, s)]


@dataclasses.dataclass(frozen=True)
class Plan:
    """Where one jaxpr's affine layers and sums are (for one pattern of data-dependent inputs)."""

    layers: dict  # end eqn index -> (start index, data operand, chain eqn indices after start)
    fused: frozenset  # eqn indices evaluated as part of a layer ending later
    sums: frozenset  # indices of add eqns of two data-dependent values
    dep: dict  # var -> depends on the data


def plan(jaxpr, dep_in: tuple[bool, ...]) -> Plan:
    dep: dict = {v: d for v, d in zip(jaxpr.invars, dep_in, strict=True)}

    def depends(v) -> bool:
        return not isinstance(v, jcore.Literal) and dep.get(v, False)

    uses: dict = {}
    consumer: dict = {}
    for i, e in enumerate(jaxpr.eqns):
        for v in e.invars:
            if not isinstance(v, jcore.Literal):
                uses[v] = uses.get(v, 0) + 1
                consumer.setdefault(v, i)
        d = any(depends(v) for v in e.invars)
        for v in e.outvars:
            dep[v] = d
    for v in jaxpr.outvars:
        if not isinstance(v, jcore.Literal):
            uses[v] = uses.get(v, 0) + 1

    layers, fused, sums = {}, set(), set()
    for i, e in enumerate(jaxpr.eqns):
        flags = [depends(v) for v in e.invars]
        if e.primitive is P.add_p and flags == [True, True] and e.invars[0].aval.shape == e.invars[1].aval.shape:
            sums.add(i)
            continue
        kind = _LINEAR.get(e.primitive)
        if kind is None or not any(flags) or (kind != "pool" and flags != [True, False] and flags != [False, True]):
            continue
        data = flags.index(True)
        chain, out = [], e.outvars[0]
        while uses.get(out) == 1 and out not in jaxpr.outvars:
            j = consumer[out]
            n = jaxpr.eqns[j]
            others = [v for v in n.invars if v is not out]
            moves = n.primitive in SHAPE_OPS and len(n.invars) == 1 and (
                n.outvars[0].aval.size == out.aval.size)  # a broadcast that copies values is not a move
            ok = moves or (n.primitive in _CHAIN_UNARY and len(n.invars) == 1) or (
                n.primitive in _CHAIN and len(others) == 1 and not depends(others[0])
                and n.outvars[0].aval.shape == out.aval.shape
                and not (n.primitive is P.div_p and n.invars[1] is out))
            if not ok:
                break
            chain.append(j)
            out = n.outvars[0]
        end = chain[-1] if chain else i
        layers[end] = (i, data, tuple(chain))
        fused.update([i, *chain[:-1]] if chain else [])
    return Plan(layers, frozenset(fused - set(layers)), frozenset(sums), dep)
