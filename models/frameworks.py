"""What each framework needs to look like one model: its forward pass with module paths on JAX's name stack, and
the running statistics of its BatchNorm layers. :mod:`.adapters` puts them together."""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import jax
import jax.numpy as jnp

__all__ = ["FunctionForward", "LinenForward", "HaikuForward", "NnxForward", "EquinoxForward", "linen_batch_stats",
           "HaikuStats", "NnxStats", "EquinoxStats", "kwargs_key"]


def kwargs_key(apply_kwargs: Mapping | None) -> tuple:
    return tuple(sorted((apply_kwargs or {}).items()))


# ---------------------------------------------------------------------------------------------- forwards


@dataclasses.dataclass(frozen=True)
class FunctionForward:
    """``fn(params, x, **kwargs)``."""

    fn: Callable
    kwargs: tuple = ()

    def __call__(self, variables, x):
        return self.fn(variables, x, **dict(self.kwargs))


@dataclasses.dataclass(frozen=True)
class LinenForward:
    """``module.apply(variables, x, **kwargs)``: jaxviz's ports and :func:`from_linen`."""

    module: Any
    kwargs: tuple = ()

    def __call__(self, variables, x):
        return self.module.apply(variables, x, **dict(self.kwargs))


@dataclasses.dataclass(frozen=True, eq=False)
class HaikuForward:
    """A transformed Haiku function; variables ``{"params": ..., "state": ...}``."""

    apply_fn: Callable
    stateful: bool
    kwargs: tuple = ()

    def __call__(self, variables, x):
        if self.stateful:
            return self.apply_fn(variables["params"], variables["state"], None, x, **dict(self.kwargs))[0]
        return self.apply_fn(variables["params"], None, x, **dict(self.kwargs))


_ACTIVE: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar("jaxviz_module_path", default=())


@contextlib.contextmanager
def _scoped_calls(paths: dict[int, tuple[str, ...]], modules: Iterable[Any]):
    """While active, each module's ``__call__`` runs inside ``jax.named_scope``s spelling its path.

    NNX and Equinox do not push module paths onto JAX's name stack; this does, for the modules given, by
    swapping their classes' ``__call__`` for the duration (the model itself is not edited).
    """
    classes = {type(m) for m in modules}
    originals = {cls: cls.__call__ for cls in classes}
    own = {cls: cls.__dict__.get("__call__") for cls in classes}

    def scoped(original):
        def call(self, *args, **kwargs):
            path = paths.get(id(self))
            if not path:
                return original(self, *args, **kwargs)
            parent = _ACTIVE.get()
            rel = path[len(parent):] if path[:len(parent)] == parent else path
            token = _ACTIVE.set(path)
            try:
                with contextlib.ExitStack() as stack:
                    for part in rel:
                        stack.enter_context(jax.named_scope(part))
                    return original(self, *args, **kwargs)
            finally:
                _ACTIVE.reset(token)

        return call

    for cls, original in originals.items():
        type.__setattr__(cls, "__call__", scoped(original))
    try:
        yield
    finally:
        for cls in classes:
            if own[cls] is None:
                type.__delattr__(cls, "__call__")
            else:
                type.__setattr__(cls, "__call__", own[cls])


def _module_paths(root, is_module: Callable[[Any], bool], children: Callable[[Any], Iterable[tuple[str, Any]]]):
    """``{id(module): path}`` for every module reachable from ``root`` (first path wins), and the modules."""
    paths: dict[int, tuple[str, ...]] = {}
    modules: list[Any] = []

    def visit(node, path):
        if is_module(node):
            if id(node) in paths:
                return
            paths[id(node)] = path
            modules.append(node)
            for key, child in children(node):
                visit(child, path + (key,))
        elif isinstance(node, (list, tuple)):
            for i, child in enumerate(node):
                visit(child, path + (str(i),))
        elif isinstance(node, dict):
            for key, child in node.items():
                visit(child, path + (str(key),))

    visit(root, ())
    return paths, modules


def _eqx_children(module):
    return [(f.name, getattr(module, f.name)) for f in dataclasses.fields(module) if hasattr(module, f.name)]


def _nnx_children(module):
    return [(k, v) for k, v in vars(module).items() if not k.startswith("_")]


@dataclasses.dataclass(frozen=True, eq=False)
class NnxForward:
    """An NNX module split into a graph definition and its state (the variables)."""

    graphdef: Any
    kwargs: tuple = ()

    def __call__(self, variables, x):
        from flax import nnx

        model = nnx.merge(self.graphdef, variables)
        paths, modules = _module_paths(model, lambda m: isinstance(m, nnx.Module), _nnx_children)
        with _scoped_calls(paths, modules):
            return model(x, **dict(self.kwargs))


@dataclasses.dataclass(frozen=True, eq=False)
class EquinoxForward:
    """An Equinox module partitioned into arrays (the variables' ``params``) and the rest."""

    static: Any
    stateful: bool
    batched: bool
    kwargs: tuple = ()

    def __call__(self, variables, x):
        import equinox as eqx

        model = eqx.combine(variables["params"], self.static)
        paths, modules = _module_paths(model, lambda m: isinstance(m, eqx.Module), _eqx_children)
        kwargs = dict(self.kwargs)

        def one(xi):
            if self.stateful:
                return model(xi, variables["state"], **kwargs)[0]
            return model(xi, **kwargs)

        with _scoped_calls(paths, modules):
            return one(x) if self.batched else jax.vmap(one, axis_name="batch")(x)


# ---------------------------------------------------------------------------------------------- statistics


def linen_batch_stats(variables) -> dict[str, tuple[jax.Array, jax.Array]]:
    """``{path: (mean, var)}`` of every linen BatchNorm in ``variables["batch_stats"]``."""
    found: dict[str, tuple[jax.Array, jax.Array]] = {}

    def visit(node, path):
        if isinstance(node, Mapping):
            if "mean" in node and "var" in node and not isinstance(node["mean"], Mapping):
                found[".".join(path)] = (node["mean"], node["var"])
                return
            for key, child in node.items():
                visit(child, path + (str(key),))

    visit(variables.get("batch_stats", {}) if isinstance(variables, Mapping) else {}, ())
    return found


@dataclasses.dataclass(frozen=True)
class HaikuStats:
    root: str | None

    def __call__(self, variables):
        state = variables.get("state") or {}
        found = {}
        for key in state:
            if not key.endswith("/~/mean_ema") or key.replace("/~/mean_ema", "/~/var_ema") not in state:
                continue
            parts = key[: -len("/~/mean_ema")].split("/~/")
            if self.root is not None and parts[0] == self.root:
                parts = parts[1:]
            mean = state[key]["average"]
            var = state[key.replace("/~/mean_ema", "/~/var_ema")]["average"]
            found[".".join(parts)] = (jnp.reshape(mean, (-1,)), jnp.reshape(var, (-1,)))
        return found


@dataclasses.dataclass(frozen=True, eq=False)
class NnxStats:
    graphdef: Any

    def __call__(self, variables):
        from flax import nnx

        model = nnx.merge(self.graphdef, variables)
        paths, modules = _module_paths(model, lambda m: isinstance(m, nnx.Module), _nnx_children)
        return {".".join(paths[id(m)]): (m.mean[...], m.var[...]) for m in modules if isinstance(m, nnx.BatchNorm)}


@dataclasses.dataclass(frozen=True, eq=False)
class EquinoxStats:
    static: Any

    def __call__(self, variables):
        import equinox as eqx

        model = eqx.combine(variables["params"], self.static)
        paths, modules = _module_paths(model, lambda m: isinstance(m, eqx.Module), _eqx_children)
        state = variables.get("state")
        if state is None:
            return {}
        return {".".join(paths[id(m)]): _equinox_running(m, state) for m in modules if isinstance(m, eqx.nn.BatchNorm)}


def _equinox_running(bn, state):
    """The (mean, var) an ``eqx.nn.BatchNorm`` normalizes with in inference mode, in either of its modes."""
    if bn.mode == "ema":
        return state.get(bn.ema_state_index)
    counter = state.get(bn.batch_counter)
    hidden_mean, hidden_var = state.get(bn.batch_state_index)
    scale = jnp.where(counter == 0, 1, 1 - bn.momentum ** counter)
    return hidden_mean / scale, hidden_var / scale
