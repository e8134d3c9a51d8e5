"""A torch-free, code-free reader for PyTorch ``.pth`` checkpoints.

PyTorch checkpoints are pickles. Unpickling runs whatever callables the stream
names, so ``torch.load`` on an untrusted file can execute arbitrary code. This
reader unpickles with an allow-list: the only globals it resolves are the
tensor-rebuild functions and storage types, which it maps to its own NumPy
implementations, plus ``collections.OrderedDict``. Any other global refuses the
whole file with :class:`UnsafeCheckpointError` before anything is called.

Two on-disk layouts are supported:

* the zip layout (PyTorch >= 1.6): ``<dir>/data.pkl`` plus one raw file per
  storage under ``<dir>/data/``;
* the legacy layout (before 1.6): a magic number, protocol version and system
  info, the main pickle, a pickled list of storage keys, then each storage as
  an int64 element count followed by its raw bytes.

Example:
    >>> state = read_pth("resnet50-0676ba61.pth")   # doctest: +SKIP
    >>> state["conv1.weight"].shape                # doctest: +SKIP
    (64, 3, 7, 7)
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import struct
import zipfile
from dataclasses import dataclass
from typing import Any

import ml_dtypes
import numpy as np

__all__ = ["read_pth", "UnsafeCheckpointError"]

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "BFloat16Storage": ml_dtypes.bfloat16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class UnsafeCheckpointError(pickle.UnpicklingError, ValueError):
    """The checkpoint names something other than tensors and containers."""


@dataclass(frozen=True)
class _StorageType:
    dtype: Any


@dataclass
class _Storage:
    """A storage whose bytes may arrive after the main pickle (legacy layout)."""

    dtype: Any
    numel: int
    data: np.ndarray | None = None


@dataclass
class _TensorRef:
    storage: _Storage
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]

    def materialize(self) -> np.ndarray:
        if self.storage.data is None:
            raise pickle.UnpicklingError("checkpoint references a storage that was never written")
        base = self.storage.data
        if not self.shape:
            return np.array(base[self.offset])
        itemsize = base.dtype.itemsize
        end = self.offset + sum((n - 1) * s for n, s in zip(self.shape, self.stride, strict=True)) + 1
        if min(self.shape) > 0 and end > base.size:
            raise pickle.UnpicklingError("tensor extends past the end of its storage: file is truncated or corrupt")
        view = np.lib.stride_tricks.as_strided(
            base[self.offset:], shape=self.shape, strides=[s * itemsize for s in self.stride], writeable=False
        )
        return np.array(view, copy=True)


def _rebuild_tensor(storage, storage_offset, size, stride, *_ignored):
    return _TensorRef(storage, int(storage_offset), tuple(size), tuple(stride))


def _rebuild_parameter(data, *_ignored):
    return data


_ALLOWED = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("collections", "OrderedDict"): collections.OrderedDict,
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, load_storage):
        super().__init__(file)
        self._load_storage = load_storage

    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        raise UnsafeCheckpointError(
            f"refusing to load {module}.{name}: a weights file may only contain tensors and dicts "
            "(this checkpoint names other Python objects, which could run code)"
        )

    def persistent_load(self, pid):
        if not isinstance(pid, tuple) or not pid or pid[0] != "storage":
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r:.40}")
        return self._load_storage(pid[1:])


def _storage_dtype(storage_type) -> Any:
    if not isinstance(storage_type, _StorageType):
        raise UnsafeCheckpointError(f"unsupported storage type in checkpoint: {storage_type!r:.80}")
    return storage_type.dtype


def _materialize(obj):
    if isinstance(obj, _TensorRef):
        return obj.materialize()
    if isinstance(obj, dict):
        out = type(obj)((k, _materialize(v)) for k, v in obj.items())
        return out
    if isinstance(obj, (list, tuple)):
        return type(obj)(_materialize(v) for v in obj)
    return obj


def _read_zip(path: str | os.PathLike) -> Any:
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        pkl = [n for n in names if n.endswith("data.pkl")]
        if not pkl:
            raise pickle.UnpicklingError("zip checkpoint has no data.pkl")
        prefix = pkl[0][: -len("data.pkl")]
        byteorder = "little"
        if prefix + "byteorder" in names:
            byteorder = zf.read(prefix + "byteorder").decode().strip()
        storages: dict[str, _Storage] = {}

        def load_storage(args):
            storage_type, key, _location, numel = args[:4]
            dtype = np.dtype(_storage_dtype(storage_type))
            if key not in storages:
                raw = zf.read(f"{prefix}data/{key}")
                arr = np.frombuffer(raw, dtype=dtype.newbyteorder("<" if byteorder == "little" else ">"))
                storages[key] = _Storage(dtype, int(numel), arr.astype(dtype, copy=False))
            return storages[key]

        return _materialize(_RestrictedUnpickler(io.BytesIO(zf.read(pkl[0])), load_storage).load())


def _read_legacy(f) -> Any:
    safe = lambda: _RestrictedUnpickler(f, lambda args: (_ for _ in ()).throw(  # noqa: E731
        UnsafeCheckpointError("unexpected storage in checkpoint header")))
    if safe().load() != _LEGACY_MAGIC:
        raise pickle.UnpicklingError("not a PyTorch checkpoint (bad magic number)")
    if safe().load() != 1001:
        raise pickle.UnpicklingError("unsupported legacy PyTorch protocol version")
    safe().load()  # sys_info: endianness and type sizes
    storages: dict[str, _Storage] = {}
    views: dict[str, tuple[str, int, int]] = {}

    def load_storage(args):
        storage_type, root_key, _location, numel, view_metadata = args
        dtype = _storage_dtype(storage_type)
        if root_key not in storages:
            storages[root_key] = _Storage(np.dtype(dtype), int(numel))
        if view_metadata is not None:
            view_key, offset, view_size = view_metadata
            views[view_key] = (root_key, int(offset), int(view_size))
        return storages[root_key]

    result = _RestrictedUnpickler(f, load_storage).load()
    keys = safe().load()
    for key in keys:
        storage = storages[key]
        (numel,) = struct.unpack("<q", f.read(8))
        nbytes = numel * storage.dtype.itemsize
        raw = f.read(nbytes)
        if len(raw) != nbytes:
            raise pickle.UnpicklingError("checkpoint is truncated: a storage ends early")
        storage.data = np.frombuffer(raw, dtype=storage.dtype.newbyteorder("<")).astype(storage.dtype)
    if views:
        raise pickle.UnpicklingError("legacy storage views are not supported")
    return _materialize(result)


def read_pth(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Reads a PyTorch checkpoint into NumPy arrays without importing torch.

    Args:
        path: a ``.pth``/``.pt`` file written by ``torch.save``.

    Returns:
        The unpickled object with every tensor replaced by a ``np.ndarray``
        (for a state_dict: an ordered mapping from names to arrays). A
        top-level ``{"state_dict": ...}`` or ``{"model": ...}`` wrapper is kept.

    Raises:
        UnsafeCheckpointError: the pickle names anything but tensors and dicts.
        ValueError: the file is not a readable PyTorch checkpoint.
    """
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            is_zip = f.read(4) == b"PK\x03\x04"
        if is_zip:
            if not zipfile.is_zipfile(path):
                raise pickle.UnpicklingError("zip archive is truncated or corrupt")
            return _read_zip(path)
        with open(path, "rb") as f:
            return _read_legacy(f)
    except UnsafeCheckpointError:
        raise
    except (pickle.UnpicklingError, EOFError, zipfile.BadZipFile, struct.error, KeyError, IndexError) as e:
        raise ValueError(f"{path}: not a readable PyTorch checkpoint ({e})") from None
