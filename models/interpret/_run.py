"""Evaluating a traced :class:`~._graph.Graph`: capture, perturb, ReLU-like sites rewritten by a rule, and tagged
operations (``conv``, ``dense``, ``maxpool``) rewritten by op rules (part of :mod:`.interpret`)."""

from __future__ import annotations

import dataclasses
import functools
import math
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
from jax._src import source_info_util  # name stacks: no public API reads or sets them
from jax.extend import core as jcore
from jax.extend.core import primitives as P

from . import _affine
from ._graph import Graph, ValueId
from ._sites import _CALLS, _OP_TAGS, _OPAQUE, Site, _subjaxprs

Rule = Callable[[Callable[[jax.Array], jax.Array]], Callable[[jax.Array], jax.Array]]
#: ``op_rule(bind, invals) -> outs``: ``bind(*invals)`` computes the traced operation (a list of its outputs).
OpRule = Callable[[Callable[..., list], list], list]
#: ``affine_rule(layer, x) -> y``: computes an :class:`~._affine.Affine` layer on its data input ``x``.
AffineRule = Callable[[_affine.Affine, jax.Array], jax.Array]
#: ``sum_rule(a, b) -> a + b``: computes a sum of two data-dependent values (a residual connection).
SumRule = Callable[[jax.Array, jax.Array], jax.Array]
OP_TAGS = tuple(sorted(_OP_TAGS.values()))
_BY_TAG = {tag: prim for prim, tag in _OP_TAGS.items()}


@dataclasses.dataclass
class _Ctx:
    graph: Graph
    capture: frozenset
    perturb: dict
    rule: Rule | None
    ops: dict = dataclasses.field(default_factory=dict)  # primitive -> OpRule
    affine: AffineRule | None = None
    sums: SumRule | None = None
    layer_count: list = dataclasses.field(default_factory=lambda: [0])  # conv/dense layers run so far
    plans: dict = dataclasses.field(default_factory=dict)  # (id(jaxpr), data pattern) -> _affine.Plan
    captured: dict = dataclasses.field(default_factory=dict)
    _holds: dict = dataclasses.field(default_factory=dict)  # id(jaxpr) -> whether it holds an op in ``ops``

    def post(self, vid: ValueId, x):
        delta = self.perturb.get(vid)
        if delta is not None:
            if delta.shape != x.shape:
                raise ValueError(f"a perturbation has shape {delta.shape}, the activation {x.shape}")
            x = x + delta
        if vid in self.capture:
            self.captured[vid] = x
        return x

    def rewrites(self, jaxpr) -> bool:
        """Whether the rule or an op rule changes something inside ``jaxpr`` (a Jaxpr)."""
        return (self.rule is not None and id(jaxpr) in self.graph.with_sites) or self.holds_ops(jaxpr)

    @functools.cached_property
    def hooked(self) -> frozenset:
        """The primitives a rule other than the ReLU rule computes."""
        prims = set(self.ops)
        if self.affine is not None:
            prims |= set(_affine._LINEAR)
        if self.sums is not None:
            prims.add(P.add_p)
        return frozenset(prims)

    def holds_ops(self, jaxpr) -> bool:
        hooked = self.hooked
        if not hooked:
            return False
        key = id(jaxpr)
        if key not in self._holds:
            self._holds[key] = any(e.primitive in hooked or (e.primitive not in _OPAQUE and any(
                self.holds_ops(getattr(q, "jaxpr", q)) for _, q in _subjaxprs(e.params))) for e in jaxpr.eqns)
        return self._holds[key]

    def inside(self, addr, jaxpr) -> bool:
        """Whether a call's body holds a value to capture or perturb, or something a rule rewrites."""
        n = len(addr)
        return self.rewrites(jaxpr) or any(
            v[0] == "eqn" and len(v[1]) > n and v[1][:n] == addr for v in (*self.capture, *self.perturb))


def _bind(eqn, params, invals):
    out = eqn.primitive.bind(*invals, **eqn.primitive.get_bind_params(params))
    return list(out) if eqn.primitive.multiple_results else [out]


def _bind_args(eqn, *invals):
    return _bind(eqn, eqn.params, list(invals))


def _site_act(jaxpr, site: Site, invals) -> Callable[[jax.Array], jax.Array]:
    """The site's own computation as a function of its input."""
    eqn = jaxpr.eqns[site.start]
    if eqn.primitive in _CALLS:
        def call(z):
            args = list(invals)
            args[site.operand] = z
            return _bind(eqn, eqn.params, args)[0]

        return call
    if eqn.primitive is P.clamp_p:
        return lambda z: jax.lax.clamp(jnp.zeros((), z.dtype), z, jnp.asarray(site.upper, z.dtype))
    if site.upper == math.inf:
        return lambda z: jax.lax.max(z, jnp.zeros((), z.dtype))
    return lambda z: jax.lax.min(jax.lax.max(z, jnp.zeros((), z.dtype)), jnp.asarray(site.upper, z.dtype))


def _retrace(closed, ctx: _Ctx):
    """A closed jaxpr with the rule applied inside (``scan``/``while``/``cond`` bodies)."""
    sub = _Ctx(ctx.graph, frozenset(), {}, ctx.rule, ctx.ops, ctx.affine, ctx.sums, ctx.layer_count, ctx.plans)
    avals = [jax.ShapeDtypeStruct(a.shape, a.dtype, weak_type=a.weak_type) for a in closed.in_avals]
    return jax.make_jaxpr(lambda *args: _eval(closed.jaxpr, closed.consts, args, ("sub",), sub))(*avals)


def _rewritten(eqn, ctx: _Ctx) -> dict:
    params = dict(eqn.params)
    for name, p in eqn.params.items():
        items = p if isinstance(p, tuple) else (p,)
        if not any(isinstance(q, jcore.ClosedJaxpr) and ctx.rewrites(q.jaxpr) for q in items):
            continue
        new = tuple(_retrace(q, ctx) if isinstance(q, jcore.ClosedJaxpr) else q for q in items)
        params[name] = new if isinstance(p, tuple) else new[0]
    return params


def _remat(eqn, invals, addr, ctx: _Ctx, dep):
    n = len(addr)
    deltas = {v: d for v, d in ctx.perturb.items() if v[0] == "eqn" and len(v[1]) > n and v[1][:n] == addr}

    def body(args, deltas):
        sub = _Ctx(ctx.graph, ctx.capture, deltas, ctx.rule, ctx.ops, ctx.affine, ctx.sums, ctx.layer_count, ctx.plans)
        return _eval(eqn.params["jaxpr"], [], args, addr, sub, dep), sub.captured

    fn = jax.checkpoint(body, prevent_cse=eqn.params["prevent_cse"], policy=eqn.params["policy"])
    outs, captured = fn(list(invals), deltas)
    ctx.captured.update(captured)
    return outs


def _affine_layer(jaxpr, start: int, data: int, chain: tuple, read, ctx: _Ctx):
    """The affine layer from equation ``start`` through ``chain``, computed by the affine rule."""
    first = jaxpr.eqns[start]
    operands = [read(v) for v in first.invars]
    x = operands[data]
    kind = _affine._LINEAR[first.primitive]

    def follow(c, only_moves: bool):
        prev = first.outvars[0]
        for j in chain:
            e = jaxpr.eqns[j]
            if not only_moves or e.primitive in _affine.SHAPE_OPS:
                c = _bind(e, e.params, [c if v is prev else read(v) for v in e.invars])[0]
            prev = e.outvars[0]
        return c

    def linear(z, kernel=None):
        args = list(operands)
        args[data] = z
        if kernel is not None:
            args[1 - data] = kernel
        return follow(_bind(first, first.params, args)[0], only_moves=True)

    def op(z):
        return _bind(first, first.params, [z if k == data else a for k, a in enumerate(operands)])[0]

    def post(c):  # the whole chain after the operation
        return follow(c, only_moves=False)

    c = jax.eval_shape(op, x)
    zeros = jnp.zeros(c.shape, c.dtype)
    shift, scale = jax.jvp(post, (zeros,), (jnp.ones(c.shape, c.dtype),))  # output-shaped
    index = ctx.layer_count[0]
    if kind != "pool":
        ctx.layer_count[0] += 1
    name = str(first.source_info.name_stack)
    layer = _affine.Affine(kind, index, name, linear, None if kind == "pool" else operands[1 - data], scale,
                           shift, lambda z: post(op(z)))
    return ctx.affine(layer, x)


def _eval(jaxpr, consts, args, addr, ctx: _Ctx, dep=None):
    env: dict[Any, Any] = {}
    for v, x in zip(jaxpr.constvars, consts, strict=True):
        env[v] = x
    for v, x in zip(jaxpr.invars, args, strict=True):
        env[v] = x

    def read(v):
        return v.val if isinstance(v, jcore.Literal) else env[v]

    sites = ctx.graph.sites.get(id(jaxpr), {}) if ctx.rule is not None else {}
    fused_ends = {s.end for s in sites.values() if s.end != s.start}
    plan = None
    if dep is not None and (ctx.affine is not None or ctx.sums is not None):
        key = (id(jaxpr), dep)
        if key not in ctx.plans:
            ctx.plans[key] = _affine.plan(jaxpr, dep)
        plan = ctx.plans[key]
    for i, eqn in enumerate(jaxpr.eqns):
        if i in fused_ends or (plan is not None and ctx.affine is not None and i in plan.fused):
            continue
        here = addr + (i,)
        layer = plan is not None and ctx.affine is not None and i in plan.layers
        invals = None if layer else [read(v) for v in eqn.invars]  # a layer's last equation reads fused values
        name_stack = source_info_util.current_name_stack() + eqn.source_info.name_stack
        with source_info_util.user_context(eqn.source_info.traceback, name_stack=name_stack), eqn.ctx.manager:
            if i in sites:
                site = sites[i]
                y = ctx.rule(_site_act(jaxpr, site, invals))(invals[site.operand])
                env[jaxpr.eqns[site.end].outvars[0]] = ctx.post(("eqn", addr + (site.end,), 0), y)
                continue
            prim = eqn.primitive
            sub_dep = None if plan is None or prim not in (P.jit_p, P.remat_p) else tuple(
                not isinstance(v, jcore.Literal) and plan.dep.get(v, False) for v in eqn.invars)
            if layer:
                outs = [_affine_layer(jaxpr, *plan.layers[i], read, ctx)]
            elif plan is not None and ctx.sums is not None and i in plan.sums:
                outs = [ctx.sums(*invals)]
            elif prim is P.jit_p and ctx.inside(here, eqn.params["jaxpr"].jaxpr):
                inner = eqn.params["jaxpr"]
                outs = _eval(inner.jaxpr, inner.consts, invals, here, ctx, sub_dep)
            elif prim is P.remat_p and ctx.inside(here, eqn.params["jaxpr"]):
                outs = _remat(eqn, invals, here, ctx, sub_dep)
            elif prim in ctx.ops:
                outs = list(ctx.ops[prim](functools.partial(_bind_args, eqn), invals))
            else:
                rewrite = (ctx.rule is not None or ctx.hooked) and prim not in _OPAQUE
                outs = _bind(eqn, _rewritten(eqn, ctx) if rewrite else eqn.params, invals)
        for k, (v, x) in enumerate(zip(eqn.outvars, outs, strict=True)):
            env[v] = ctx.post(("eqn", here, k), x)
    return [read(v) for v in jaxpr.outvars]


def run(graph: Graph, args: tuple, *, capture: Iterable[ValueId] = (), perturb: dict | None = None,
        rule: Rule | None = None, ops: Mapping[str, OpRule] | None = None, affine: AffineRule | None = None,
        sums: SumRule | None = None):
    """Evaluates the traced forward pass on ``args`` (same structure and shapes as traced).

    Args:
        capture: values to return, e.g. ``graph.layers[name]``.
        perturb: ``{value: delta}`` added to those values where they are made.
        rule: ``rule(act) -> act'`` applied to every ReLU-like site (``act`` is the site's own computation).
        ops: ``{tag: op_rule}`` (tags in :data:`OP_TAGS`): every such operation is computed by
            ``op_rule(bind, invals)``, where ``bind(*invals)`` is the operation as traced (a list of outputs).
        affine: ``affine(layer, x) -> y`` computes every affine layer (:class:`~._affine.Affine`: a convolution,
            dense layer or pooling with the bias and BatchNorm after it) on its data input ``x``. The data are
            the leaves of the last argument of ``args``; affine layers inside ``scan``/``while``/``cond`` bodies
            are computed as traced.
        sums: ``sums(a, b) -> a + b`` computes every ``add`` of two data-dependent values.

    Returns:
        ``(result, {value: array})``.
    """
    if rule is not None and graph.unreachable and not graph.warned:
        graph.warned = True
        warnings.warn(f"jaxviz: {len(graph.unreachable)} ReLU-like operation(s) inside custom_jvp/custom_vjp "
                      f"functions keep their plain gradient ({'; '.join(graph.unreachable[:3])})", stacklevel=3)
    leaves = jax.tree_util.tree_leaves(args)
    unknown = sorted(set(ops or ()) - set(OP_TAGS))
    if unknown:
        raise ValueError(f"unknown operation tag(s) {', '.join(unknown)}; valid: {', '.join(OP_TAGS)}")
    ctx = _Ctx(graph, frozenset(capture), dict(perturb or {}), rule, {_BY_TAG[t]: r for t, r in (ops or {}).items()},
               affine, sums)
    leaves = [ctx.post(("arg", k), x) for k, x in enumerate(leaves)]
    n_data = len(jax.tree_util.tree_leaves(args[-1])) if args else 0
    dep = tuple(k >= len(leaves) - n_data for k in range(len(leaves)))
    outs = _eval(graph.closed.jaxpr, graph.closed.consts, leaves, (), ctx, dep)
    return jax.tree_util.tree_unflatten(graph.out_tree, outs), ctx.captured
