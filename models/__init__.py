"""Pretrained CNN ports and adapters for any JAX model, under one protocol (imported as ``jaxviz.models``).

Example:
    >>> from jaxviz import models
    >>> model, variables = models.load("efficientnet_lite0")      # doctest: +SKIP
    >>> logits = model.apply(variables, images)                    # doctest: +SKIP
    >>> logits, acts = model.apply(variables, images, capture=["blocks.10"])  # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path

import jax
import jax.numpy as jnp

from . import hub
from .adapters import from_equinox, from_haiku, from_linen, from_nnx, wrap
from .convert import from_torch, load_npz, npz_metadata, read_safetensors, read_state_dict, save_npz
from .core import IMAGENET_MEAN, IMAGENET_STD, Model, ModelLike, Preprocessing, bn_inputs, check_names, hashable
from .hub import WeightsNotFoundError, cache_dir
from .keras_h5 import KERAS_NAMES, keras_state_dict, read_keras_h5
from .pth import UnsafeCheckpointError, read_pth
from .receptive import ReceptiveField, receptive_field
from .registry import DEFAULT_MODEL, REGISTRY

__all__ = [
    "load", "build", "available", "convert_state_dict", "Model", "ModelLike", "Preprocessing", "bn_inputs", "hashable",
    "wrap", "from_linen", "from_nnx", "from_equinox", "from_haiku",
    "check_names", "read_pth", "read_keras_h5", "read_safetensors", "read_state_dict", "save_npz", "load_npz",
    "npz_metadata", "cache_dir", "receptive_field", "ReceptiveField",
    "WeightsNotFoundError", "UnsafeCheckpointError", "DEFAULT_MODEL", "IMAGENET_MEAN", "IMAGENET_STD",
]


def available() -> tuple[str, ...]:
    """Names :func:`load` accepts."""
    return tuple(REGISTRY)


def _entry(name: str):
    if name not in REGISTRY:
        raise ValueError(f"unknown model {name!r}; available models: {', '.join(REGISTRY)}")
    return REGISTRY[name]


def build(name: str) -> Model:
    """The :class:`Model` record for ``name``, without weights."""
    return _entry(name).build()


def _shapes(model: Model):
    dummy = jax.ShapeDtypeStruct((1, 64, 64, 3), jnp.float32)
    return jax.eval_shape(model.module.init, jax.random.key(0), dummy)


def convert_state_dict(name: str, state_dict) -> dict:
    """Converts a reference (PyTorch-layout) state_dict into ``name``'s variables."""
    model = build(name)
    return from_torch(state_dict, _shapes(model), rename=_entry(name).rename)


def _from_file(name: str, model: Model, path: Path) -> dict:
    if not path.exists():
        raise WeightsNotFoundError(f"weights file {path} does not exist")
    if path.suffix == ".npz":
        return load_npz(path, _shapes(model))
    if path.suffix in (".pth", ".pt", ".bin", ".safetensors"):
        return convert_state_dict(name, read_state_dict(path))
    if path.suffix in (".h5", ".hdf5"):
        if name not in KERAS_NAMES:
            raise ValueError(f"{path}: Keras .h5 weights load into {', '.join(KERAS_NAMES)}, not {name}")
        return convert_state_dict(name, keras_state_dict(name, read_keras_h5(path)))
    raise ValueError(f"{path}: unknown weights format; use .pth/.pt (PyTorch), .safetensors, .h5 (Keras) "
                     "or .npz (jaxviz)")


def _default(name: str, model: Model) -> dict:
    entry = _entry(name)
    if entry.weights is None:
        raise ValueError(f"{name} has no default weights; pass weights=PATH or weights=None")
    record = hub.manifest()[entry.weights]
    if not record.get("sha256"):
        hub.fetch(entry.weights)  # raises: a file without a published digest is never trusted
    cached = hub.cache_dir() / "converted" / f"{name}-{record['sha256'][:16]}.npz"
    if cached.exists():
        try:
            return load_npz(cached, _shapes(model))
        except ValueError:
            cached.unlink(missing_ok=True)  # stale or partial: convert again
    variables = convert_state_dict(name, read_state_dict(hub.fetch(entry.weights)))
    try:
        save_npz(cached, variables)
    except OSError:
        pass  # a read-only cache only costs speed
    return variables


def load(name: str = DEFAULT_MODEL, weights: str | os.PathLike | None = "default", *,
         key: jax.Array | None = None) -> tuple[Model, dict]:
    """Builds a port and its variables.

    Args:
        name: one of :func:`available`.
        weights: ``"default"`` for the published ImageNet weights (converted once,
            then cached), ``None`` for a random init, or a path to a PyTorch
            ``.pth``/``.pt`` state_dict, a ``.safetensors`` file or jaxviz's ``.npz``.
        key: PRNG key for ``weights=None`` (default ``jax.random.key(0)``).

    Returns:
        ``(model, variables)``; ``model.apply(variables, images)`` gives logits.
    """
    model = build(name)
    if weights is None:
        return model, model.init(key if key is not None else jax.random.key(0))
    if isinstance(weights, str) and weights == "default":
        return model, _default(name, model)
    return model, _from_file(name, model, Path(weights))
