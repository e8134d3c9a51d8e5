"""ReLU-like sites in one jaxpr: ``clip(x, 0, upper)`` however it was written (part of :mod:`.interpret`)."""

from __future__ import annotations

import collections
import dataclasses
import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from jax.extend import core as jcore
from jax.extend.core import primitives as P

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
