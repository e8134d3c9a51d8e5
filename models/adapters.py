"""Bring your own model: any JAX network as a jaxviz :class:`~jaxviz.models.Model`, unedited.

Each adapter returns ``(model, variables)`` exactly as :func:`jaxviz.models.load` does, so every technique takes
it unchanged:

* :func:`wrap` for any ``fn(params, images) -> logits``;
* :func:`from_linen` for a Flax linen module and its variables;
* :func:`from_nnx` for a Flax NNX module;
* :func:`from_equinox` for an Equinox module (and its ``State`` if it has BatchNorm);
* :func:`from_haiku` for a ``hk.transform``/``hk.transform_with_state`` pair and its params (and state).

Layers are discovered by tracing once at ``input_size``: module paths joined by ``.`` (``layer1.conv1``,
``block_group_0.block_0``), ``jax.named_scope`` names, and op tags (``conv0``, ``relu3``, ``dense0``) for
operations outside every scope. ``layers`` restricts them (a list) or renames them (``{alias: path}``).

Shared keyword arguments:
    input_size: the native square resolution (required).
    num_classes: checked against the traced output (inferred when None).
    preprocessing: a :class:`~jaxviz.models.Preprocessing` from [0, 1] RGB to what the network wants; the
        default is the identity, i.e. the network is fed [0, 1] images.
    apply_kwargs: extra keyword arguments of the forward pass, e.g. ``{"train": False}``.
    channels_first: the network wants NCHW; jaxviz still takes images and returns activations NHWC.
    layers: None (all discovered), a list of names to keep, or ``{alias: path}``.
    cam_layer: the layer CAM and Grad-CAM use by default (the last spatial layer when None).
    name: a name for messages and file names.

Example:
    >>> model, variables = models.from_linen(MyNet(), variables, input_size=32, apply_kwargs={"train": False})
    >>> maps = jaxviz.guided_backprop(model, variables, images, target=3)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import jax
import jax.numpy as jnp

from . import interpret
from .core import Model, Preprocessing, check_names

__all__ = ["wrap", "from_linen", "from_nnx", "from_equinox", "from_haiku", "linen_batch_stats", "linen_port"]


_LINEN = interpret.Naming(strip_root=True, methods=True)  # names leave out the top module's; methods' scopes
_HAIKU = interpret.Naming(strip_root=True)
_EQUINOX = interpret.Naming(hide=("eqx.",))  # Equinox's layers push their own scopes (eqx.nn.Conv, ...)


def _kwargs(apply_kwargs: Mapping | None) -> tuple:
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
class _HaikuStats:
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
class _NnxStats:
    graphdef: Any

    def __call__(self, variables):
        from flax import nnx

        model = nnx.merge(self.graphdef, variables)
        paths, modules = _module_paths(model, lambda m: isinstance(m, nnx.Module), _nnx_children)
        return {".".join(paths[id(m)]): (m.mean[...], m.var[...]) for m in modules if isinstance(m, nnx.BatchNorm)}


@dataclasses.dataclass(frozen=True, eq=False)
class _EquinoxStats:
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


# ---------------------------------------------------------------------------------------------- adapters


def _adapt(forward, variables, *, name: str, input_size: int, num_classes: int | None,
           preprocessing: Preprocessing | None, layers, cam_layer: str | None, channels_first: bool,
           naming: interpret.Naming, statistics, labels: str) -> tuple[Model, Any]:
    if not isinstance(input_size, int) or isinstance(input_size, bool) or input_size < 1:
        raise ValueError(f"input_size must be a positive int (the native square resolution), got {input_size!r}")
    if preprocessing is not None and not isinstance(preprocessing, Preprocessing):
        raise TypeError(f"preprocessing must be a jaxviz.models.Preprocessing, got {type(preprocessing).__name__}")
    model = Model(name, forward, input_size, num_classes or 0, preprocessing or Preprocessing.identity(), (),
                  channels_first=channels_first, naming=naming, statistics=statistics, labels=labels)
    try:
        graph = _abstract_graph(model, variables)
    except Exception as e:
        raise ValueError(f"{name}: tracing the forward pass on a (1, {input_size}, {input_size}, 3) batch failed "
                         f"({type(e).__name__}: {e}); check input_size, channels_first and apply_kwargs") from e
    out = graph.closed.out_avals
    if graph.out_tree.num_leaves != 1 or len(out[0].shape) != 2 or out[0].shape[0] != 1:
        raise ValueError(f"{name}: the forward pass must return logits of shape (batch, num_classes), got "
                         f"{[tuple(a.shape) for a in out]}; wrap it so that it returns only the logits")
    out = out[0]
    found = tuple(graph.layers)
    if layers is None:
        names, aliases = found, ()
    elif isinstance(layers, Mapping):
        check_names(tuple(layers.values()), found)
        names, aliases = tuple(layers), tuple((k, v) for k, v in layers.items() if k != v)
    else:
        names, aliases = check_names(tuple(layers), found), ()
    path = dict(aliases)
    if cam_layer is None:
        spatial = [n for n in names if len(graph.shapes[path.get(n, n)]) == 4]
        cam_layer = spatial[-1] if spatial else None
    elif cam_layer not in names:
        check_names(cam_layer, names)
    model = dataclasses.replace(model, num_classes=out.shape[1], layers=names, aliases=aliases, cam_layer=cam_layer)
    return model, variables


def linen_port(name: str, module, input_size: int, num_classes: int, preprocessing: Preprocessing,
               layers: tuple[str, ...], *, aliases: Mapping[str, str] | None = None, cam_layer: str | None = None,
               labels: str = "imagenet") -> Model:
    """The :class:`Model` record of one of jaxviz's linen ports: layers listed, so building it traces nothing.

    ``layers`` are module paths and ``jax.named_scope`` names in the module; ``aliases`` name others
    (``{"layer1": "layer1.2"}``: a stage's output is its last block's).
    """
    return Model(name, LinenForward(module), input_size, num_classes, preprocessing, layers, labels=labels,
                 cam_layer=cam_layer, aliases=tuple((aliases or {}).items()), naming=_LINEN,
                 statistics=linen_batch_stats)


def wrap(fn: Callable, params, *, input_size: int, num_classes: int | None = None,
         preprocessing: Preprocessing | None = None, layers=None, cam_layer: str | None = None,
         apply_kwargs: Mapping | None = None, channels_first: bool = False, statistics: Callable | None = None,
         name: str = "wrapped", labels: str = "imagenet") -> tuple[Model, Any]:
    """Any ``fn(params, images, **apply_kwargs) -> logits`` (images preprocessed, NHWC unless channels_first).

    Layers are the ``jax.named_scope`` names ``fn`` uses, and op tags (``conv0``, ``relu1``, ``dense0``) for
    operations outside every scope. ``statistics(params) -> {layer: (mean, var)}`` names the BatchNorm layers
    (scopes) and their running statistics, for DeepInversion.
    """
    forward = FunctionForward(fn, _kwargs(apply_kwargs))
    return _adapt(forward, params, name=name, input_size=input_size, num_classes=num_classes,
                  preprocessing=preprocessing, layers=layers, cam_layer=cam_layer, channels_first=channels_first,
                  naming=interpret.Naming(), statistics=statistics, labels=labels)


def from_linen(module, variables, *, input_size: int, num_classes: int | None = None,
               preprocessing: Preprocessing | None = None, layers=None, cam_layer: str | None = None,
               apply_kwargs: Mapping | None = None, channels_first: bool = False, name: str | None = None,
               labels: str = "imagenet") -> tuple[Model, Any]:
    """A Flax linen module and its variables (``params``, and ``batch_stats`` for BatchNorm).

    The module runs in inference mode as written: pass e.g. ``apply_kwargs={"train": False}`` if its
    ``__call__`` takes a training flag. Layer names are module paths without the top module's own name.
    """
    forward = LinenForward(module, _kwargs(apply_kwargs))
    return _adapt(forward, variables, name=name or type(module).__name__, input_size=input_size,
                  num_classes=num_classes, preprocessing=preprocessing, layers=layers, cam_layer=cam_layer,
                  channels_first=channels_first, naming=_LINEN, statistics=linen_batch_stats, labels=labels)


def from_haiku(transformed, params, state=None, *, input_size: int, num_classes: int | None = None,
               preprocessing: Preprocessing | None = None, layers=None, cam_layer: str | None = None,
               apply_kwargs: Mapping | None = None, channels_first: bool = False, name: str = "haiku",
               labels: str = "imagenet") -> tuple[Model, dict]:
    """A ``hk.transform`` (``state=None``) or ``hk.transform_with_state`` result, its params and state.

    Pass the inference flag your function takes, e.g. ``apply_kwargs={"is_training": False}``. Variables
    become ``{"params": params, "state": state}``; BatchNorm statistics are read from the state's EMAs.
    """
    forward = HaikuForward(transformed.apply, state is not None, _kwargs(apply_kwargs))
    variables = {"params": params, "state": state if state is not None else {}}
    model, variables = _adapt(forward, variables, name=name, input_size=input_size, num_classes=num_classes,
                              preprocessing=preprocessing, layers=layers, cam_layer=cam_layer,
                              channels_first=channels_first, naming=_HAIKU, statistics=None, labels=labels)
    root = _abstract_graph(model, variables).root
    return dataclasses.replace(model, statistics=_HaikuStats(root)), variables


def _abstract_graph(model: Model, variables) -> interpret.Graph:
    """The model traced on a batch of one at its input size, without computing anything."""
    size = model.input_size
    abstract = jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct(jnp.shape(a), jnp.result_type(a)), variables)
    return model.trace(abstract, jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32))


def from_nnx(model, *, input_size: int, num_classes: int | None = None, preprocessing: Preprocessing | None = None,
             layers=None, cam_layer: str | None = None, apply_kwargs: Mapping | None = None,
             channels_first: bool = False, name: str | None = None, labels: str = "imagenet") -> tuple[Model, Any]:
    """A Flax NNX module (put it in eval mode first, e.g. ``model.eval()``). Variables are its ``nnx.State``."""
    from flax import nnx

    graphdef, state = nnx.split(model)
    return _adapt(NnxForward(graphdef, _kwargs(apply_kwargs)), state, name=name or type(model).__name__,
                  input_size=input_size, num_classes=num_classes, preprocessing=preprocessing, layers=layers,
                  cam_layer=cam_layer, channels_first=channels_first, naming=interpret.Naming(),
                  statistics=_NnxStats(graphdef), labels=labels)


def from_equinox(model, state=None, *, input_size: int, num_classes: int | None = None, batched: bool = False,
                 channels_first: bool = True, preprocessing: Preprocessing | None = None, layers=None,
                 cam_layer: str | None = None, apply_kwargs: Mapping | None = None, name: str | None = None,
                 labels: str = "imagenet") -> tuple[Model, dict]:
    """An Equinox module (in inference mode, e.g. ``eqx.nn.inference_mode(model)``) and its ``State``.

    Equinox modules map one example, CHW by convention: the adapter vmaps over the batch (``batched=False``)
    and transposes (``channels_first=True``). With a state, the module is called ``model(x, state)`` and its
    first output is the logits. Variables become ``{"params": arrays, "state": state}``.
    """
    import equinox as eqx

    params, static = eqx.partition(model, eqx.is_array)
    forward = EquinoxForward(static, state is not None, batched, _kwargs(apply_kwargs))
    variables = {"params": params, "state": state}
    return _adapt(forward, variables, name=name or type(model).__name__, input_size=input_size,
                  num_classes=num_classes, preprocessing=preprocessing, layers=layers, cam_layer=cam_layer,
                  channels_first=channels_first, naming=_EQUINOX, statistics=_EquinoxStats(static), labels=labels)
