"""Tracing a forward pass into a :class:`Graph`: layers by scope, scope inputs, ReLU-like sites (part of
:mod:`.interpret`)."""

from __future__ import annotations

import collections
import contextvars
import dataclasses
from collections.abc import Callable
from typing import Any

import jax
from jax._src import source_info_util  # name stacks: no public API reads or sets them
from jax.extend import core as jcore
from jax.extend.core import primitives as P

from ._sites import _OP_TAGS, _OPAQUE, Site, _closed_known, _literal, _sites, _subjaxprs

ValueId = tuple  # ("arg", i) | ("eqn", address, output index): one value of the flattened forward pass

#: Context variables a forward pass may read while tracing; their values are part of the trace cache key.
TRACE_CONTEXT: list[contextvars.ContextVar] = []


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
