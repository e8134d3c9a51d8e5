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

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp

from . import interpret
from .core import Model, Preprocessing, check_names
from .frameworks import (
    EquinoxForward,
    EquinoxStats,
    FunctionForward,
    HaikuForward,
    HaikuStats,
    LinenForward,
    NnxForward,
    NnxStats,
    kwargs_key,
    linen_batch_stats,
)

__all__ = ["wrap", "from_linen", "from_nnx", "from_equinox", "from_haiku", "linen_batch_stats", "linen_port"]


_LINEN = interpret.Naming(strip_root=True, methods=True)  # names leave out the top module's; methods' scopes
_HAIKU = interpret.Naming(strip_root=True)
_EQUINOX = interpret.Naming(hide=("eqx.",))  # Equinox's layers push their own scopes (eqx.nn.Conv, ...)


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
    forward = FunctionForward(fn, kwargs_key(apply_kwargs))
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
    forward = LinenForward(module, kwargs_key(apply_kwargs))
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
    forward = HaikuForward(transformed.apply, state is not None, kwargs_key(apply_kwargs))
    variables = {"params": params, "state": state if state is not None else {}}
    model, variables = _adapt(forward, variables, name=name, input_size=input_size, num_classes=num_classes,
                              preprocessing=preprocessing, layers=layers, cam_layer=cam_layer,
                              channels_first=channels_first, naming=_HAIKU, statistics=None, labels=labels)
    root = _abstract_graph(model, variables).root
    return dataclasses.replace(model, statistics=HaikuStats(root)), variables


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
    return _adapt(NnxForward(graphdef, kwargs_key(apply_kwargs)), state, name=name or type(model).__name__,
                  input_size=input_size, num_classes=num_classes, preprocessing=preprocessing, layers=layers,
                  cam_layer=cam_layer, channels_first=channels_first, naming=interpret.Naming(),
                  statistics=NnxStats(graphdef), labels=labels)


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
    forward = EquinoxForward(static, state is not None, batched, kwargs_key(apply_kwargs))
    variables = {"params": params, "state": state}
    return _adapt(forward, variables, name=name or type(model).__name__, input_size=input_size,
                  num_classes=num_classes, preprocessing=preprocessing, layers=layers, cam_layer=cam_layer,
                  channels_first=channels_first, naming=_EQUINOX, statistics=EquinoxStats(static), labels=labels)
