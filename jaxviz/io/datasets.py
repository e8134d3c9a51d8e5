"""Data sources: anything with ``len`` and integer indexing that returns ``(image, label)``.

* :class:`Folder`: a folder of images (labels from the first subfolder level, sorted);
* :class:`TfdsSource`: a tensorflow-datasets data set by name, read through ``tfds.data_source`` (random
  access, no TensorFlow, nothing downloaded);
* :class:`Arrays`: images already in memory.

Each has an ``identity()`` string, so a cache or a resumable run can tell one data set from another;
:func:`open_source` picks one from a command-line argument (a folder or a tfds name).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from jaxviz.io import image as image_mod

__all__ = ["Folder", "TfdsSource", "Arrays", "load_batch", "open_source", "tfds_root", "digest", "weights_digest"]


class Folder:
    """Images under ``root``, resized and center-cropped to ``size``; label = index of the first-level
    subfolder in sorted order (-1 for images directly in ``root``)."""

    def __init__(self, root: str | os.PathLike, size: int):
        self.root, self.size = Path(root), size
        self.paths = image_mod.list_images(root)
        folders = [p.relative_to(self.root).parts[0] if p.parent != self.root else None for p in self.paths]
        self.classes = sorted({f for f in folders if f is not None})
        index = {c: i for i, c in enumerate(self.classes)}
        self.labels = np.array([index.get(f, -1) for f in folders], np.int32)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        return image_mod.load_image(self.paths[i], self.size), int(self.labels[i])

    def names(self) -> list[str]:
        """Each item's path relative to ``root``."""
        return [str(p.relative_to(self.root)) for p in self.paths]

    def identity(self) -> str:
        stats = [(str(p.relative_to(self.root)), p.stat().st_size, p.stat().st_mtime_ns) for p in self.paths]
        return f"folder:{self.root.resolve()}:{self.size}:{digest(repr(stats))}"


def tfds_root(name: str, data_dir: str | os.PathLike | None = None) -> Path:
    """The folder that holds the prepared tensorflow-datasets ``name``, or a one-line error saying how to
    prepare it (tfds would try to download it). Imports nothing heavy."""
    root = Path(data_dir or os.environ.get("TFDS_DATA_DIR") or Path.home() / "tensorflow_datasets").expanduser()
    if not (root / name.split(":")[0]).is_dir():
        raise ValueError(f"tensorflow-datasets {name!r} is not prepared in {root}: run `tfds build {name} "
                         f"--data_dir {root}` where there is network, or give its folder (data_dir=, --data-dir)")
    return root


class TfdsSource:
    """A tensorflow-datasets data set by name through ``tfds.data_source`` (random access, no TensorFlow).

    The data set must be prepared already (``tfds build NAME`` or a previous ``tfds.load``) in
    ``data_dir`` (default ``$TFDS_DATA_DIR`` or ``~/tensorflow_datasets``): a missing one is a one-line
    ``ValueError`` naming the folder and the ``tfds build`` command; nothing is downloaded or written.
    """

    def __init__(self, name: str, split: str = "train", size: int = 224, data_dir: str | None = None,
                 image_key: str = "image", label_key: str = "label"):
        self.name, self.split, self.size = name, split, size
        self.image_key, self.label_key = image_key, label_key
        root = tfds_root(name, data_dir)
        import tensorflow_datasets as tfds

        try:
            self.source = tfds.data_source(name, split=split, data_dir=str(root), download=False)
        except Exception as e:  # tfds raises its own errors for unknown names and missing files
            raise ValueError(f"tensorflow-datasets {name!r} split {split!r}: {str(e).splitlines()[0]}") from None

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, i: int):
        record = self.source[i]
        img = np.asarray(record[self.image_key])
        img = img.astype(np.float32) / 255.0 if img.dtype == np.uint8 else img.astype(np.float32)
        if img.ndim == 2 or img.shape[-1] == 1:
            img = np.repeat(img.reshape(*img.shape[:2], 1), 3, axis=-1)
        return image_mod.prepare(img, self.size), int(record.get(self.label_key, -1))

    def identity(self) -> str:
        return f"tfds:{self.name}:{self.split}:{len(self)}:{self.size}"


class Arrays:
    """Images (N, H, W, 3) in [0, 1] and labels already in memory."""

    def __init__(self, images, labels=None):
        self.images = np.asarray(images, np.float32)
        self.labels = np.full(len(self.images), -1, np.int32) if labels is None else np.asarray(labels, np.int32)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return self.images[i], int(self.labels[i])

    def identity(self) -> str:
        return f"arrays:{digest(self.images.tobytes())}:{digest(self.labels.tobytes())}"


def digest(data) -> str:
    """16 hex digits of the sha256 of ``data`` (bytes, or its ``str``)."""
    return hashlib.sha256(data if isinstance(data, bytes) else str(data).encode()).hexdigest()[:16]


def weights_digest(variables) -> str:
    """A short digest of a pytree of arrays (shapes and a sample of each): a cache key for weights."""
    import jax

    h = hashlib.sha256()
    for leaf in jax.tree.leaves(variables):
        a = np.asarray(leaf)
        h.update(str(a.shape).encode())
        h.update(np.ascontiguousarray(a.reshape(-1)[:: max(1, a.size // 256)]).tobytes())  # a sample of each
    return h.hexdigest()[:16]


def load_batch(source, indices: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Images (n, S, S, 3) and labels (n,) of ``source[i]`` for ``i`` in ``indices``."""
    items = [source[int(i)] for i in indices]
    return np.stack([x for x, _ in items]), np.array([y for _, y in items], np.int32)


def open_source(spec: str | os.PathLike, size: int, *, split: str = "train", data_dir: str | None = None,
                check_only: bool = False) -> Folder | TfdsSource | None:
    """A folder of images if ``spec`` is a directory, else a prepared tensorflow-datasets name (``split``,
    ``data_dir``). ``check_only``: raise the error a missing one would, open nothing heavy, return None."""
    path = Path(spec).expanduser()
    if path.is_dir():
        return None if check_only and image_mod.list_images(path) else Folder(path, size)
    if str(spec).startswith((".", "/", "~")) or str(spec).endswith(("/", os.sep)) or path.suffix:
        raise ValueError(f"{spec}: no such folder (and not a tensorflow-datasets name)")
    if check_only:
        tfds_root(str(spec), data_dir)
        return None
    return TfdsSource(str(spec), split=split, size=size, data_dir=data_dir)
