"""Weight formats: PyTorch state_dicts, safetensors, and jaxviz's own ``.npz``.

The ports name their Flax modules like the reference's modules, so a PyTorch
key ``layer1.0.conv1.weight`` lands on the Flax leaf ``layer1.0/conv1/kernel``
by a fixed rule (``weight`` is a kernel, a BatchNorm scale or a dense kernel;
``running_mean``/``running_var`` are BatchNorm statistics). Convolution kernels
go from OIHW to HWIO and dense kernels from (out, in) to (in, out).
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
from flax import traverse_util

from .pth import read_pth

__all__ = ["from_torch", "read_safetensors", "read_state_dict", "save_npz", "load_npz"]

_SEP = "/"
_SAFETENSORS_DTYPES = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": ml_dtypes.bfloat16,
    "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_,
}


def _flat(variables: Mapping) -> dict[tuple[str, ...], Any]:
    return traverse_util.flatten_dict(jax.device_get(dict(variables)))


_LEAF_RULES = {  # (PyTorch leaf, Flax leaf) -> layout
    ("weight", "kernel"): "kernel",
    ("weight", "scale"): "as_is",
    ("bias", "bias"): "as_is",
    ("running_mean", "mean"): "as_is",
    ("running_var", "var"): "as_is",
}


def _target(name: str, module_leaves: list[tuple[str, ...]]) -> tuple[tuple[str, ...], Callable] | None:
    """The Flax leaf a PyTorch tensor ``name`` goes to, and how to lay it out."""
    leaf = name.rpartition(".")[2]
    for flat_key in module_leaves:
        rule = _LEAF_RULES.get((leaf, flat_key[-1]))
        if rule:
            return flat_key, (_torch_kernel if rule == "kernel" else np.asarray)
    return None


def _torch_kernel(w: np.ndarray) -> np.ndarray:
    if w.ndim == 4:
        return np.transpose(w, (2, 3, 1, 0))  # OIHW -> HWIO
    if w.ndim == 2:
        return w.T  # (out, in) -> (in, out)
    raise ValueError(f"cannot lay out a {w.ndim}-D weight as a kernel")


def from_torch(state_dict: Mapping[str, np.ndarray], template: Mapping, *,
               rename: Callable[[str], str | None] = lambda k: k) -> dict:
    """Converts a PyTorch state_dict into Flax variables shaped like ``template``.

    Args:
        state_dict: names to arrays, as :func:`read_pth` or ``torch`` give them.
        template: variables of the target port (e.g. a random init), used for
            the tree structure and to check every shape.
        rename: maps a PyTorch key to the port's naming; return None to drop it.

    Returns:
        Variables with the same structure as ``template``.

    Raises:
        ValueError: keys are missing or unexpected, or shapes disagree.
    """
    flat_template = _flat(template)
    by_module = {}
    for flat_key in flat_template:
        by_module.setdefault(".".join(flat_key[1:-1]), []).append(flat_key)
    out: dict[tuple[str, ...], np.ndarray] = {}
    unexpected = []
    for key, value in state_dict.items():
        name = rename(key)
        if name is None or name.endswith("num_batches_tracked"):
            continue
        prefix = name.rpartition(".")[0]
        target = _target(name, by_module.get(prefix, []))
        if target is None:
            unexpected.append(key)
            continue
        flat_key, layout = target
        arr = layout(np.asarray(value, dtype=np.float32))
        expected = tuple(flat_template[flat_key].shape)
        if arr.shape != expected:
            raise ValueError(f"{key}: shape {arr.shape} after conversion, the port expects {expected}")
        out[flat_key] = arr
    missing = [_SEP.join(k) for k in flat_template if k not in out]
    if unexpected or missing:
        raise ValueError(
            "checkpoint does not match the model: "
            + (f"unexpected keys {unexpected[:8]}{' ...' if len(unexpected) > 8 else ''}; " if unexpected else "")
            + (f"missing {missing[:8]}{' ...' if len(missing) > 8 else ''}" if missing else "")
        )
    return _unflatten(out)


def _unflatten(flat: Mapping[tuple[str, ...], np.ndarray]) -> dict:
    return traverse_util.unflatten_dict({k: jnp.asarray(v) for k, v in flat.items()})


def read_safetensors(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Reads a ``.safetensors`` file (an 8-byte header length, a JSON header, raw data)."""
    data = Path(path).read_bytes()
    try:
        (n,) = struct.unpack("<Q", data[:8])
        header = json.loads(data[8:8 + n])
    except (struct.error, ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not a safetensors file ({e})") from None
    body = memoryview(data)[8 + n:]
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] not in _SAFETENSORS_DTYPES:
            raise ValueError(f"{path}: unsupported dtype {info['dtype']} for {name}")
        start, end = info["data_offsets"]
        if end > len(body):
            raise ValueError(f"{path}: truncated (tensor {name} ends past the file)")
        dtype = np.dtype(_SAFETENSORS_DTYPES[info["dtype"]])
        flat = np.frombuffer(body[start:end], dtype=dtype.newbyteorder("<")).astype(dtype)
        tensors[name] = flat.reshape(info["shape"])
    return tensors


def read_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """A PyTorch-style state_dict from a ``.pth``/``.pt``/``.bin`` or ``.safetensors`` file."""
    if str(path).endswith(".safetensors"):
        return read_safetensors(path)
    state = read_pth(path)
    for wrapper in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, Mapping) and isinstance(state.get(wrapper), Mapping):
            state = state[wrapper]
    if not isinstance(state, Mapping):
        raise ValueError(f"{path}: expected a state_dict (a mapping of names to tensors), got {type(state).__name__}")
    return {k: v for k, v in state.items() if isinstance(v, np.ndarray)}


_METADATA = "__metadata__"


def save_npz(path: str | os.PathLike, variables: Mapping, metadata: Mapping | None = None) -> None:
    """Writes variables in jaxviz's cached format, atomically (tmp file + rename); ``metadata``: JSON-able
    settings stored beside them as a string (read back by :func:`npz_metadata`)."""
    flat = {_SEP.join(k): np.asarray(v) for k, v in _flat(variables).items()}
    if metadata is not None:
        flat[_METADATA] = np.array(json.dumps(dict(metadata)))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **flat)
    os.replace(tmp, path)


def load_npz(path: str | os.PathLike, template: Mapping | None = None) -> dict:
    """Reads jaxviz's cached format (never unpickles); checks it against ``template``."""
    try:
        with np.load(path, allow_pickle=False) as z:
            flat = {tuple(k.split(_SEP)): z[k] for k in z.files if k != _METADATA}
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: not a readable jaxviz weights file ({e})") from None
    if template is not None:
        expected = {k: tuple(v.shape) for k, v in _flat(template).items()}
        got = {k: tuple(v.shape) for k, v in flat.items()}
        if expected != got:
            diff = sorted(_SEP.join(k) for k in set(expected) ^ set(got)) or [
                _SEP.join(k) for k in expected if expected[k] != got[k]]
            raise ValueError(f"{path}: weights do not fit this model (first differences: {diff[:5]})")
    return _unflatten(flat)


def npz_metadata(path: str | os.PathLike) -> dict | None:
    """The ``metadata`` :func:`save_npz` stored in ``path`` (None if there is none)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return json.loads(str(z[_METADATA])) if _METADATA in z.files else None
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: not a readable jaxviz weights file ({e})") from None
