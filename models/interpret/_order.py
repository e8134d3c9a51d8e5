"""In which order a network's forward pass first uses each of its parameters on the image."""

from __future__ import annotations

from collections.abc import Callable

import jax
from jax.extend import core as jcore
from jax.extend.core import primitives as P

__all__ = ["first_uses"]


def first_uses(fn: Callable, params, images) -> list[int]:
    """For each leaf of ``params`` (``jax.tree.leaves`` order), the position of the first operation of
    ``fn(params, images)`` that combines a value derived from that leaf (and no image) with a value derived from
    the images: where the parameter enters the computation, after any casts or reshapes of its own. Operations are
    counted depth-first through ``jit`` and ``checkpoint`` calls; unused leaves get the number of operations.
    Tracing only: nothing is computed."""
    closed = jax.make_jaxpr(fn)(params, images)
    n = len(jax.tree.leaves(params))
    state: dict = {}  # var -> (depends on the images, the parameter leaves it derives from if it does not)
    for k, v in enumerate(closed.jaxpr.invars):
        state[v] = (False, frozenset({k})) if k < n else (True, frozenset())
    first: dict[int, int] = {}
    count = 0

    def walk(jaxpr, env: dict) -> None:
        nonlocal count
        for eqn in jaxpr.eqns:
            ins = [env.get(v, (False, frozenset())) for v in eqn.invars if not isinstance(v, jcore.Literal)]
            if eqn.primitive in (P.jit_p, P.remat_p):
                sub = eqn.params["jaxpr"]
                inner = sub.jaxpr if isinstance(sub, jcore.ClosedJaxpr) else sub
                inner_env = {iv: env[ov] for iv, ov in zip(inner.invars, eqn.invars, strict=True)
                             if not isinstance(ov, jcore.Literal) and ov in env}
                walk(inner, inner_env)
                for iv, ov in zip(inner.outvars, eqn.outvars, strict=True):
                    literal = isinstance(iv, jcore.Literal)
                    env[ov] = (False, frozenset()) if literal else inner_env.get(iv, (False, frozenset()))
                continue
            image = any(i for i, _ in ins)
            leaves = frozenset().union(*(ls for i, ls in ins if not i)) if ins else frozenset()
            if image:
                for leaf in leaves:
                    first.setdefault(leaf, count)
            for v in eqn.outvars:
                env[v] = (True, frozenset()) if image else (False, leaves)
            count += 1

    walk(closed.jaxpr, state)
    return [first.get(k, count) for k in range(n)]
