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

from ._graph import Graph, ValueId
from ._sites import _CALLS, _OP_TAGS, _OPAQUE, Site, _subjaxprs

Rule = Callable[[Callable[[jax.Array], jax.Array]], Callable[[jax.Array], jax.Array]]
#: ``op_rule(bind, invals) -> outs``: ``bind(*invals)`` computes the traced operation (a list of its outputs).
OpRule = Callable[[Callable[..., list], list], list]
OP_TAGS = tuple(sorted(_OP_TAGS.values()))
_BY_TAG = {tag: prim for prim, tag in _OP_TAGS.items()}


@dataclasses.dataclass
class _Ctx:
    graph: Graph
    capture: frozenset
    perturb: dict
    rule: Rule | None
    ops: dict = dataclasses.field(default_factory=dict)  # primitive -> OpRule
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

    def holds_ops(self, jaxpr) -> bool:
        if not self.ops:
            return False
        key = id(jaxpr)
        if key not in self._holds:
            self._holds[key] = any(e.primitive in self.ops or (e.primitive not in _OPAQUE and any(
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
    sub = _Ctx(ctx.graph, frozenset(), {}, ctx.rule, ctx.ops)
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


def _remat(eqn, invals, addr, ctx: _Ctx):
    n = len(addr)
    deltas = {v: d for v, d in ctx.perturb.items() if v[0] == "eqn" and len(v[1]) > n and v[1][:n] == addr}

    def body(args, deltas):
        sub = _Ctx(ctx.graph, ctx.capture, deltas, ctx.rule, ctx.ops)
        return _eval(eqn.params["jaxpr"], [], args, addr, sub), sub.captured

    fn = jax.checkpoint(body, prevent_cse=eqn.params["prevent_cse"], policy=eqn.params["policy"])
    outs, captured = fn(list(invals), deltas)
    ctx.captured.update(captured)
    return outs


def _eval(jaxpr, consts, args, addr, ctx: _Ctx):
    env: dict[Any, Any] = {}
    for v, x in zip(jaxpr.constvars, consts, strict=True):
        env[v] = x
    for v, x in zip(jaxpr.invars, args, strict=True):
        env[v] = x

    def read(v):
        return v.val if isinstance(v, jcore.Literal) else env[v]

    sites = ctx.graph.sites.get(id(jaxpr), {}) if ctx.rule is not None else {}
    fused_ends = {s.end for s in sites.values() if s.end != s.start}
    for i, eqn in enumerate(jaxpr.eqns):
        if i in fused_ends:
            continue
        here = addr + (i,)
        invals = [read(v) for v in eqn.invars]
        name_stack = source_info_util.current_name_stack() + eqn.source_info.name_stack
        with source_info_util.user_context(eqn.source_info.traceback, name_stack=name_stack), eqn.ctx.manager:
            if i in sites:
                site = sites[i]
                y = ctx.rule(_site_act(jaxpr, site, invals))(invals[site.operand])
                env[jaxpr.eqns[site.end].outvars[0]] = ctx.post(("eqn", addr + (site.end,), 0), y)
                continue
            prim = eqn.primitive
            if prim is P.jit_p and ctx.inside(here, eqn.params["jaxpr"].jaxpr):
                inner = eqn.params["jaxpr"]
                outs = _eval(inner.jaxpr, inner.consts, invals, here, ctx)
            elif prim is P.remat_p and ctx.inside(here, eqn.params["jaxpr"]):
                outs = _remat(eqn, invals, here, ctx)
            elif prim in ctx.ops:
                outs = list(ctx.ops[prim](functools.partial(_bind_args, eqn), invals))
            else:
                rewrite = (ctx.rule is not None or ctx.ops) and prim not in _OPAQUE
                outs = _bind(eqn, _rewritten(eqn, ctx) if rewrite else eqn.params, invals)
        for k, (v, x) in enumerate(zip(eqn.outvars, outs, strict=True)):
            env[v] = ctx.post(("eqn", here, k), x)
    return [read(v) for v in jaxpr.outvars]


def run(graph: Graph, args: tuple, *, capture: Iterable[ValueId] = (), perturb: dict | None = None,
        rule: Rule | None = None, ops: Mapping[str, OpRule] | None = None):
    """Evaluates the traced forward pass on ``args`` (same structure and shapes as traced).

    Args:
        capture: values to return, e.g. ``graph.layers[name]``.
        perturb: ``{value: delta}`` added to those values where they are made.
        rule: ``rule(act) -> act'`` applied to every ReLU-like site (``act`` is the site's own computation).
        ops: ``{tag: op_rule}`` (tags in :data:`OP_TAGS`): every such operation is computed by
            ``op_rule(bind, invals)``, where ``bind(*invals)`` is the operation as traced (a list of outputs).

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
    ctx = _Ctx(graph, frozenset(capture), dict(perturb or {}), rule, {_BY_TAG[t]: r for t, r in (ops or {}).items()})
    leaves = [ctx.post(("arg", k), x) for k, x in enumerate(leaves)]
    outs = _eval(graph.closed.jaxpr, graph.closed.consts, leaves, (), ctx)
    return jax.tree_util.tree_unflatten(graph.out_tree, outs), ctx.captured
