"""A model's forward pass read and rewritten as a jaxpr: named layers, ReLU-like sites, BatchNorm inputs.

This is the one module of jaxviz that reads JAX's internals (jaxpr equations, their name stacks, how call
primitives bind); everything else goes through :func:`trace` and :func:`run`. It is tested against the JAX range
that pyproject.toml pins (tests/test_interpret.py).

:func:`trace` turns ``fn(*args)`` into a closed jaxpr (once per input shape) and walks it, looking through
``jit`` and ``checkpoint`` calls, into a flat list of operations, each with the *scope* it ran in: the module
path that Flax linen and Haiku push onto JAX's name stack, the ``jax.named_scope`` names a user wrote, or the
paths jaxviz's NNX and Equinox adapters push while tracing. From that list it reads

* **layers**: each scope's output (the last value it made that is used outside it), in forward order, and op
  tags (``conv0``, ``dense1``, ``relu3``, ``maxpool0``) for operations outside every scope;
* **scope inputs**: the first value a scope read from outside it (what a BatchNorm layer normalized);
* **ReLU-like sites**: ``jax.nn.relu``, ``jax.nn.relu6``, ``jnp.maximum(x, 0)``, ``jnp.clip(x, 0, c)``,
  ``lax.clamp(0, x, c)`` and ``min(max(x, 0), c)``, however nested in ``jit``, ``checkpoint``, ``scan``,
  ``while`` or ``cond``.

:func:`run` evaluates the jaxpr equation by equation, capturing values, adding perturbations and replacing each
ReLU-like site by ``rule(act)`` where ``act`` is the site's own computation; every other equation is bound
exactly as traced, so under ``jit`` XLA compiles the direct program. A site inside a ``custom_jvp`` or
``custom_vjp`` function cannot be rewritten without discarding that function's own derivative: it is listed
in :attr:`Graph.unreachable` and :func:`run` warns once when a rule is applied.
"""

from __future__ import annotations

import collections
import contextvars
import dataclasses
import math
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax._src import source_info_util  # name stacks: no public API reads or sets them
from jax.extend import core as jcore
from jax.extend.core import primitives as P

__all__ = ["Graph", "Naming", "Site", "trace", "run", "clear_cache", "TRACE_CONTEXT"]

ValueId = tuple  # ("arg", i) | ("eqn", address, output index): one value of the flattened forward pass
Rule = Callable[[Callable[[jax.Array], jax.Array]], Callable[[jax.Array], jax.Array]]

#: Context variables a forward pass may read while tracing; their values are part of the trace cache key.
TRACE_CONTEXT: list[contextvars.ContextVar] = []

_PASS_THROUGH = {P.convert_element_type_p, P.broadcast_in_dim_p, P.reshape_p, P.squeeze_p}
_OP_TAGS = {P.conv_general_dilated_p: "conv", P.dot_general_p: "dense", P.reduce_window_max_p: "maxpool"}
_CALLS = (P.jit_p, P.custom_jvp_call_p)  # calls whose whole body may be one ReLU-like site
_OPAQUE = (P.custom_jvp_call_p, P.custom_vjp_call_p)  # bodies that keep their own derivative rules


@dataclasses.dataclass(frozen=True)
class Site:
    """A ReLU-like computation ``clip(x, 0, upper)`` inside one jaxpr.

    ``start``/``end``: indices of its first and last equation (``end > start`` for ``min(max(x, 0), c)``);
    ``operand``: which input of equation ``start`` is ``x``.
    """

    start: int
    end: int
    operand: int
    upper: float = math.inf


# ---------------------------------------------------------------------------------------------- sites


def _literal(v) -> float | None:
    if isinstance(v, jcore.Literal):
        a = np.asarray(v.val)
        return float(a.reshape(-1)[0]) if a.size == 1 else None
    return None


def _uniform(c) -> float | None:
    """The value of a small constant array whose elements are all equal, else None."""
    try:
        a = np.asarray(c)
    except Exception:  # a tracer closed over by the model: not a known constant
        return None
    if a.size == 0 or a.size > 64 or not np.issubdtype(a.dtype, np.number):
        return None
    first = a.reshape(-1)[0]
    return float(first) if np.all(a == first) else None


def _sites(jaxpr, known: dict) -> tuple[dict[int, Site], list[int]]:
    """The ReLU-like sites of one jaxpr, and the indices of its equations that read a non-constant value.

    ``known`` maps variables to their (uniform) constant values; it is extended in place.
    """
    uses = collections.Counter(v for e in jaxpr.eqns for v in e.invars if not isinstance(v, jcore.Literal))
    uses.update(v for v in jaxpr.outvars if not isinstance(v, jcore.Literal))
    consumer: dict[Any, int] = {}
    for i, e in enumerate(jaxpr.eqns):
        for v in e.invars:
            if not isinstance(v, jcore.Literal):
                consumer.setdefault(v, i)

    def value(v):
        lit = _literal(v)
        return lit if lit is not None else known.get(v)

    varying: list[int] = []
    for i, e in enumerate(jaxpr.eqns):  # constants first: a site's bound may be computed after its max
        vals = [value(v) for v in e.invars]
        if any(x is None for x in vals):
            varying.append(i)
        elif e.primitive in _PASS_THROUGH and len(e.outvars) == 1:
            known[e.outvars[0]] = vals[0]
    sites: dict[int, Site] = {}
    fused: set[int] = set()
    for i in varying:
        e = jaxpr.eqns[i]
        vals = [value(v) for v in e.invars]
        if i in fused:
            continue
        prim = e.primitive
        if prim is P.max_p:
            if vals == [0.0, None] or vals == [None, 0.0]:
                operand = vals.index(None)
                out = e.outvars[0]
                j = consumer.get(out)
                upper = math.inf
                if j is not None and uses[out] == 1 and jaxpr.eqns[j].primitive is P.min_p:
                    other = [value(v) for v in jaxpr.eqns[j].invars if v is not out]
                    if len(other) == 1 and other[0] is not None and other[0] > 0:
                        upper = other[0]
                        fused.add(j)
                sites[i] = Site(i, j if upper != math.inf else i, operand, upper)
        elif prim is P.clamp_p:
            lo, x, hi = vals
            if lo == 0.0 and x is None and hi is not None and hi > 0:
                sites[i] = Site(i, i, 1, hi)
        elif prim in _CALLS:
            closed = e.params["jaxpr"] if prim is P.jit_p else e.params["call_jaxpr"]
            whole = _whole_site(closed, vals)
            if whole is not None:
                sites[i] = Site(i, i, *whole)
    return sites, varying


def _closed_known(closed, arg_values: Sequence[float | None]) -> dict:
    known = {v: x for v, x in zip(closed.jaxpr.invars, arg_values, strict=True) if x is not None}
    for v, c in zip(closed.jaxpr.constvars, closed.consts, strict=True):
        u = _uniform(c)
        if u is not None:
            known[v] = u
    return known


def _whole_site(closed, arg_values) -> tuple[int, float] | None:
    """(operand, upper) if the closed jaxpr computes exactly ``clip(arg, 0, upper)`` of one argument."""
    jaxpr = closed.jaxpr
    sites, varying = _sites(jaxpr, _closed_known(closed, arg_values))
    if len(sites) != 1 or len(jaxpr.outvars) != 1:
        return None
    (site,) = sites.values()
    if set(varying) != {site.start, site.end}:
        return None
    x = jaxpr.eqns[site.start].invars[site.operand]
    if jaxpr.eqns[site.end].outvars[0] is not jaxpr.outvars[0] or x not in jaxpr.invars:
        return None
    return jaxpr.invars.index(x), site.upper


def _subjaxprs(params) -> Iterable[tuple[str, Any]]:
    """(param name, ClosedJaxpr or Jaxpr) for every jaxpr-valued parameter (tuples flattened)."""
    for name, p in params.items():
        for q in p if isinstance(p, tuple) else (p,):
            if isinstance(q, (jcore.ClosedJaxpr, jcore.Jaxpr)):
                yield name, q


# ---------------------------------------------------------------------------------------------- graph


@dataclasses.dataclass(frozen=True)
class Naming:
    """How scopes become layer names.

    Attributes:
        strip_root: leave out a scope that every operation shares (Flax linen's and Haiku's top module).
        hide: scope entries starting with one of these are left out of names (a framework's own scopes, such
            as Equinox's ``eqx.nn.Conv``).
        methods: scopes spelled ``module.method`` (Flax linen's scope for a method other than ``__call__``)
            name the module: left out inside that module, the module's own name when a parent calls it.
    """

    strip_root: bool = False
    hide: tuple[str, ...] = ()
    methods: bool = False


@dataclasses.dataclass
class _Op:
    """One operation of the flattened forward pass (a primitive equation, or a whole ReLU-like site)."""

    addr: tuple[int, ...]
    scope: tuple[str, ...]
    kind: str  # "relu" for a site, else the primitive's name
    ins: tuple
    outs: tuple


@dataclasses.dataclass(eq=False)
class Graph:
    """What :func:`trace` read from one forward pass.

    Attributes:
        closed: the traced closed jaxpr (inputs: the flattened arguments).
        in_tree, out_tree: pytree structures of the arguments and the result.
        layers: ``{name: value}`` for every layer in forward order (scope paths and op tags).
        scope_inputs: ``{name: value}``: the first outside value each scope read.
        relus: the scope path of every ReLU-like site that a rule reaches, in order.
        unreachable: descriptions of ReLU-like operations a rule cannot reach.
        shapes: ``{name: shape}`` of every layer's output.
        root: the scope every operation shared and the names leave out (``Naming.strip_root``), else None.
    """

    closed: Any
    in_tree: Any
    out_tree: Any
    layers: dict[str, ValueId]
    scope_inputs: dict[str, ValueId]
    relus: tuple[str, ...]
    unreachable: tuple[str, ...]
    shapes: dict[str, tuple[int, ...]]
    root: str | None  # the top scope left out of every name (strip_root), if any
    sites: dict[int, dict[int, Site]]  # id(jaxpr) -> its sites (the jaxprs are kept alive by ``closed``)
    with_sites: frozenset[int]  # ids of the jaxprs that contain a site, directly or nested
    warned: bool = False


def _scopes(eqn) -> tuple[str, ...]:
    return tuple(s.name for s in eqn.source_info.name_stack.stack if isinstance(s, source_info_util.Scope))


def _without_methods(scope: tuple[str, ...]) -> tuple[str, ...]:
    out: list[str] = []
    for entry in scope:
        owner, _, method = entry.rpartition(".")
        if owner and method.isidentifier():
            if out and out[-1] == owner:
                continue  # a method of the enclosing module
            entry = owner  # a child's method, called by its parent
        out.append(entry)
    return tuple(out)


def _names(scopes: list[tuple[str, ...]], naming: Naming) -> tuple[list[tuple[str, ...]], str | None]:
    if naming.hide:
        scopes = [tuple(s for s in scope if not s.startswith(naming.hide)) for scope in scopes]
    if naming.methods:
        scopes = [_without_methods(scope) for scope in scopes]
    if naming.strip_root:
        roots = {s[0] for s in scopes if s}
        if len(roots) == 1 and all(scopes):
            return [s[1:] for s in scopes], roots.pop()
    return scopes, None


class _Walker:
    def __init__(self, image_arg: int):
        self.ops: list[_Op] = []
        self.sites: dict[int, dict[int, Site]] = {}
        self.with_sites: set[int] = set()
        self.unreachable: list[str] = []
        self.avals: dict[ValueId, Any] = {}
        self.image_arg = image_arg

    def sites_of(self, jaxpr, known) -> dict[int, Site]:
        sites, _ = _sites(jaxpr, known)
        self.sites[id(jaxpr)] = sites
        return sites

    def scan_opaque(self, eqn, scope) -> bool:
        """Registers the sites inside a leaf equation's bodies; True if any (so the leaf contains a site)."""
        found = False
        for _, sub in _subjaxprs(eqn.params):
            closed = sub if isinstance(sub, jcore.ClosedJaxpr) else None
            jaxpr = sub.jaxpr if closed is not None else sub
            known = _closed_known(closed, [None] * len(jaxpr.invars)) if closed is not None else {}
            inner = self.sites_of(jaxpr, known)
            nested = any(self.scan_opaque(e, scope) for k, e in enumerate(jaxpr.eqns) if k not in inner)
            if inner or nested:
                self.with_sites.add(id(jaxpr))
                found = True
                if eqn.primitive in _OPAQUE:
                    where = ".".join(scope) or "the top level"
                    self.unreachable.append(f"{eqn.primitive.name} in {where}")
        return found

    def walk(self, jaxpr, const_ids, in_ids, scope, addr, known) -> list:
        env: dict[Any, ValueId | None] = {}
        for v, vid in zip(jaxpr.constvars, const_ids, strict=True):
            env[v] = vid
        for v, vid in zip(jaxpr.invars, in_ids, strict=True):
            env[v] = vid
        sites = self.sites_of(jaxpr, known)
        if sites:
            self.with_sites.add(id(jaxpr))
        fused_ends = {s.end for s in sites.values() if s.end != s.start}

        def read(v):
            return None if isinstance(v, jcore.Literal) else env.get(v)

        for i, eqn in enumerate(jaxpr.eqns):
            if i in fused_ends:
                continue
            here, where = addr + (i,), scope + _scopes(eqn)
            ins = tuple(read(v) for v in eqn.invars)
            if i in sites:
                site = sites[i]
                last = jaxpr.eqns[site.end]
                out = ("eqn", addr + (site.end,), 0)
                self.avals[out] = last.outvars[0].aval
                self.ops.append(_Op(here, where, "relu", (ins[site.operand],), (out,)))
                env[last.outvars[0]] = out
                continue
            prim = eqn.primitive
            if prim in (P.jit_p, P.remat_p):
                sub = eqn.params["jaxpr"]
                closed = sub if isinstance(sub, jcore.ClosedJaxpr) else None
                inner = sub.jaxpr if closed is not None else sub
                consts = [("const", here, k) for k in range(len(inner.constvars))]
                inner_known = _closed_known(closed, [None] * len(inner.invars)) if closed is not None else {}
                for v, x in zip(inner.invars, eqn.invars, strict=True):
                    val = _literal(x) if isinstance(x, jcore.Literal) else known.get(x)
                    if val is not None:
                        inner_known[v] = val
                inner_outs = self.walk(inner, consts, list(ins), where, here, inner_known)
                if id(inner) in self.with_sites:
                    self.with_sites.add(id(jaxpr))
                # The call's results are values of their own: reading them needs no look inside the call.
                outs = [("eqn", here, k) for k in range(len(eqn.outvars))]
                for vid, v in zip(outs, eqn.outvars, strict=True):
                    self.avals[vid] = v.aval
                self.ops.append(_Op(here, where, "call", tuple(inner_outs), tuple(outs)))
            else:
                if self.scan_opaque(eqn, where):
                    self.with_sites.add(id(jaxpr))
                outs = [("eqn", here, k) for k in range(len(eqn.outvars))]
                for vid, v in zip(outs, eqn.outvars, strict=True):
                    self.avals[vid] = v.aval
                self.ops.append(_Op(here, where, prim.name if prim not in _OP_TAGS else _OP_TAGS[prim],
                                    ins, tuple(outs)))
            for v, vid in zip(eqn.outvars, outs, strict=True):
                env[v] = vid
        return [read(v) for v in jaxpr.outvars]


def _analyse(walker: _Walker, final: list, naming: Naming):
    ops = walker.ops
    scopes, root = _names([op.scope for op in ops], naming)
    dependent = {("arg", walker.image_arg)}
    producer: dict[ValueId, int] = {}
    consumers: dict[ValueId, list[int]] = collections.defaultdict(list)
    for j, op in enumerate(ops):
        if op.kind == "call":  # a call's k-th result is its body's k-th
            dependent.update(o for i, o in zip(op.ins, op.outs, strict=True) if i in dependent)
        elif any(v in dependent for v in op.ins):
            dependent.update(op.outs)
        for v in op.outs:
            producer[v] = j
        for v in op.ins:
            if v is not None:
                consumers[v].append(j)
    final = {v for v in final if v is not None}

    runs: dict[tuple[str, ...], list[list[int]]] = collections.defaultdict(list)
    for j, scope in enumerate(scopes):
        for d in range(1, len(scope) + 1):
            key = scope[:d]
            if runs[key] and runs[key][-1][1] == j - 1:
                runs[key][-1][1] = j
            else:
                runs[key].append([j, j])

    found: list[tuple[int, int, str, ValueId]] = []
    inputs: dict[str, ValueId] = {}
    for scope, spans in runs.items():
        for n, (a, b) in enumerate(spans):
            name = ".".join(scope) if n == 0 else f"{'.'.join(scope)}#{n + 1}"
            made = [v for j in range(a, b + 1) for v in ops[j].outs
                    if v in dependent and (v in final or any(c > b for c in consumers[v]))]
            if made:
                out = max(made, key=lambda v: (producer[v], v[2]))
                found.append((producer[out], -len(scope), name, out))
            read = [v for j in range(a, b + 1) for v in ops[j].ins
                    if v in dependent and producer.get(v, -1) < a]
            if read:
                inputs.setdefault(name, read[0])
    counters: collections.Counter = collections.Counter()
    for j, (op, scope) in enumerate(zip(ops, scopes, strict=True)):
        if not scope and (op.kind == "relu" or op.kind in _OP_TAGS.values()) and op.outs[0] in dependent:
            found.append((j, 0, f"{op.kind}{counters[op.kind]}", op.outs[0]))
            counters[op.kind] += 1
    found.sort(key=lambda t: (t[0], t[1]))
    layers: dict[str, ValueId] = {}
    for _, _, name, out in found:
        layers.setdefault(name, out)
    relus = tuple(".".join(s) for op, s in zip(ops, scopes, strict=True) if op.kind == "relu")
    return layers, inputs, relus, root


_CACHE: collections.OrderedDict = collections.OrderedDict()
_CACHE_SIZE = 64


def clear_cache() -> None:
    """Forgets every traced forward pass."""
    _CACHE.clear()


def _aval_key(x) -> tuple:
    if isinstance(x, jax.ShapeDtypeStruct):
        return tuple(x.shape), str(x.dtype), bool(getattr(x, "weak_type", False))
    aval = jax.typeof(x)
    return tuple(aval.shape), str(aval.dtype), bool(getattr(aval, "weak_type", False))


def trace(fn: Callable, args: tuple, *, image_arg: int = -1, naming: Naming = Naming()) -> Graph:
    """Traces ``fn(*args)`` and reads its layers, scope inputs and ReLU-like sites.

    Args:
        fn: a pure function of pytrees of arrays (hashable; it keys the cache with the argument shapes).
        args: example arguments (arrays, tracers or ``jax.ShapeDtypeStruct``).
        image_arg: index among the flattened arguments of the input whose influence defines a layer
            (values that do not depend on it, e.g. reshaped parameters, are not layers).
        naming: how scopes become layer names.
    """
    leaves, in_tree = jax.tree_util.tree_flatten(args)
    context = tuple(var.get() for var in TRACE_CONTEXT)
    key = (fn, in_tree, tuple(_aval_key(x) for x in leaves), image_arg, naming, context)
    try:
        hit = _CACHE.get(key)
    except TypeError:  # an unhashable function: trace every time
        key, hit = None, None
    if hit is not None:
        _CACHE.move_to_end(key)
        return hit
    abstract = [jax.ShapeDtypeStruct(*_aval_key(x)[:2], weak_type=_aval_key(x)[2]) for x in leaves]
    flat_fn = lambda *flat: fn(*jax.tree_util.tree_unflatten(in_tree, flat))
    closed, out_shape = jax.make_jaxpr(flat_fn, return_shape=True)(*abstract)
    out_tree = jax.tree_util.tree_structure(out_shape)
    walker = _Walker(image_arg % len(leaves))
    const_ids = [("const", (), k) for k in range(len(closed.jaxpr.constvars))]
    final = walker.walk(closed.jaxpr, const_ids, [("arg", k) for k in range(len(leaves))], (), (),
                        _closed_known(closed, [None] * len(leaves)))
    layers, inputs, relus, root = _analyse(walker, final, naming)
    shapes = {name: tuple(walker.avals[v].shape) if v in walker.avals else tuple(abstract[v[1]].shape)
              for name, v in layers.items()}
    graph = Graph(closed, in_tree, out_tree, layers, inputs, relus, tuple(walker.unreachable), shapes, root,
                  walker.sites, frozenset(walker.with_sites))
    cacheable = not any(isinstance(c, jax.core.Tracer) for c in closed.consts)
    if key is not None and cacheable:
        _CACHE[key] = graph
        if len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return graph


# ---------------------------------------------------------------------------------------------- run


@dataclasses.dataclass
class _Ctx:
    graph: Graph
    capture: frozenset
    perturb: dict
    rule: Rule | None
    captured: dict = dataclasses.field(default_factory=dict)

    def post(self, vid: ValueId, x):
        delta = self.perturb.get(vid)
        if delta is not None:
            if delta.shape != x.shape:
                raise ValueError(f"a perturbation has shape {delta.shape}, the activation {x.shape}")
            x = x + delta
        if vid in self.capture:
            self.captured[vid] = x
        return x

    def inside(self, addr, jaxpr) -> bool:
        """Whether a call's body holds a value to capture or perturb, or a site the rule rewrites."""
        n = len(addr)
        return (self.rule is not None and id(jaxpr) in self.graph.with_sites) or any(
            v[0] == "eqn" and len(v[1]) > n and v[1][:n] == addr for v in (*self.capture, *self.perturb))


def _bind(eqn, params, invals):
    out = eqn.primitive.bind(*invals, **eqn.primitive.get_bind_params(params))
    return list(out) if eqn.primitive.multiple_results else [out]


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
    sub = _Ctx(ctx.graph, frozenset(), {}, ctx.rule)
    avals = [jax.ShapeDtypeStruct(a.shape, a.dtype, weak_type=a.weak_type) for a in closed.in_avals]
    return jax.make_jaxpr(lambda *args: _eval(closed.jaxpr, closed.consts, args, ("sub",), sub))(*avals)


def _rewritten(eqn, ctx: _Ctx) -> dict:
    params = dict(eqn.params)
    for name, p in eqn.params.items():
        items = p if isinstance(p, tuple) else (p,)
        if not any(isinstance(q, jcore.ClosedJaxpr) and id(q.jaxpr) in ctx.graph.with_sites for q in items):
            continue
        new = tuple(_retrace(q, ctx) if isinstance(q, jcore.ClosedJaxpr) else q for q in items)
        params[name] = new if isinstance(p, tuple) else new[0]
    return params


def _remat(eqn, invals, addr, ctx: _Ctx):
    n = len(addr)
    deltas = {v: d for v, d in ctx.perturb.items() if v[0] == "eqn" and len(v[1]) > n and v[1][:n] == addr}

    def body(args, deltas):
        sub = _Ctx(ctx.graph, ctx.capture, deltas, ctx.rule)
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
            else:
                params = _rewritten(eqn, ctx) if ctx.rule is not None and prim not in _OPAQUE else eqn.params
                outs = _bind(eqn, params, invals)
        for k, (v, x) in enumerate(zip(eqn.outvars, outs, strict=True)):
            env[v] = ctx.post(("eqn", here, k), x)
    return [read(v) for v in jaxpr.outvars]


def run(graph: Graph, args: tuple, *, capture: Iterable[ValueId] = (), perturb: dict | None = None,
        rule: Rule | None = None):
    """Evaluates the traced forward pass on ``args`` (same structure and shapes as traced).

    Args:
        capture: values to return, e.g. ``graph.layers[name]``.
        perturb: ``{value: delta}`` added to those values where they are made.
        rule: ``rule(act) -> act'`` applied to every ReLU-like site (``act`` is the site's own computation).

    Returns:
        ``(result, {value: array})``.
    """
    if rule is not None and graph.unreachable and not graph.warned:
        graph.warned = True
        warnings.warn(f"jaxviz: {len(graph.unreachable)} ReLU-like operation(s) inside custom_jvp/custom_vjp "
                      f"functions keep their plain gradient ({'; '.join(graph.unreachable[:3])})", stacklevel=3)
    leaves = jax.tree_util.tree_leaves(args)
    ctx = _Ctx(graph, frozenset(capture), dict(perturb or {}), rule)
    leaves = [ctx.post(("arg", k), x) for k, x in enumerate(leaves)]
    outs = _eval(graph.closed.jaxpr, graph.closed.consts, leaves, (), ctx)
    return jax.tree_util.tree_unflatten(graph.out_tree, outs), ctx.captured
