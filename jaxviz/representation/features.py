"""Data-set features: a model's activations over a whole data set, batched, jitted and cached on disk.

A data set is anything with ``len`` and integer indexing that returns
``(image, label)``: :class:`Folder` (a folder of images; labels from the first
subfolder level, sorted) or :class:`TfdsSource` (a tensorflow-datasets data set
by name, read through ``tfds.data_source``: random access, no TensorFlow), or
:class:`Arrays` (images already in memory).

:func:`extract` runs the model over it in jitted batches with a progress bar and
writes shards of ``shard`` images atomically under ``cache_dir``; an interrupted
run keeps its finished shards, and a repeated call reads the cache instead of
running the model. The cache key covers the model, a digest of its weights,
the layer, the image size and the data set's identity.

Example:
    >>> src = TfdsSource("imagenette/320px-v2", split="validation", size=224)      # doctest: +SKIP
    >>> f = extract(model, variables, src, "avgpool", cache_dir="~/.cache/jaxviz/features")  # doctest: +SKIP
    >>> f.features.shape, f.labels.shape                                            # doctest: +SKIP
    ((3925, 1280), (3925,))
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxviz.core.progress import progress_bar
from jaxviz.io import image as image_mod

__all__ = ["Folder", "TfdsSource", "Arrays", "Features", "extract", "load_batch"]


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

    def identity(self) -> str:
        stats = [(str(p.relative_to(self.root)), p.stat().st_size, p.stat().st_mtime_ns) for p in self.paths]
        return f"folder:{self.root.resolve()}:{self.size}:{_digest(repr(stats))}"


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
        root = Path(data_dir or os.environ.get("TFDS_DATA_DIR") or Path.home() / "tensorflow_datasets")
        if not (root / name.split(":")[0]).is_dir():  # tfds would try to download it; say what to do instead
            raise ValueError(f"tensorflow-datasets {name!r} is not prepared in {root}: run `tfds build "
                             f"{name} --data_dir {root}` where there is network, or pass data_dir=")
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
        return f"arrays:{_digest(self.images.tobytes())}:{_digest(self.labels.tobytes())}"


class Features(NamedTuple):
    """``features`` (N, D) float32, ``labels`` (N,) int32 (-1: none), in the data set's order."""

    features: np.ndarray
    labels: np.ndarray


def _digest(data) -> str:
    return hashlib.sha256(data if isinstance(data, bytes) else str(data).encode()).hexdigest()[:16]


def _weights_digest(variables) -> str:
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


@functools.partial(jax.jit, static_argnames=("model", "layer", "pool"))
def _batch_features(variables, images, *, model, layer, pool):
    _, acts = model.apply(variables, images, capture=(layer,))
    a = acts[layer]
    if pool and a.ndim == 4:
        a = jnp.mean(a, axis=(1, 2))
    return a.reshape(images.shape[0], -1).astype(jnp.float32)


def _compute(model, variables, source, layer, pool, items: range, batch_size: int, bar):
    """Features and labels of ``source[i]`` for ``i`` in ``items``, ``batch_size`` at a time."""
    fs, ys = [], []
    for b in range(items.start, items.stop, batch_size):
        images, labels = load_batch(source, range(b, min(b + batch_size, items.stop)))
        fs.append(np.asarray(_batch_features(variables, jnp.asarray(images), model=model, layer=layer, pool=pool)))
        ys.append(labels)
        bar.update(len(labels))
    return np.concatenate(fs), np.concatenate(ys)


def extract(model, variables, source, layer: str, *, batch_size: int = 64, shard: int = 1024,
            cache_dir: str | os.PathLike | None = None, pool: bool = True,
            progress: bool | None = None) -> Features:
    """Activations of ``layer`` for every item of ``source`` (spatial maps averaged when ``pool``), ``batch_size``
    images per forward pass.

    With ``cache_dir``, shards of ``shard`` items are written there atomically as they finish and
    reused by later calls (same model, weights, layer, pooling and data set).
    """
    from jaxviz.models import check_names

    check_names(layer, model.layers)
    n = len(source)
    if n == 0:
        raise ValueError("the data set is empty")
    if batch_size < 1 or shard < batch_size:
        raise ValueError(f"need 1 <= batch_size <= shard, got batch_size {batch_size}, shard {shard}")
    folder = None
    if cache_dir is not None:
        key = _digest(f"{model.name}:{_weights_digest(variables)}:{layer}:{pool}:{source.identity()}")
        folder = Path(cache_dir).expanduser() / f"{model.name}-{layer}-{key}"
        folder.mkdir(parents=True, exist_ok=True)
    parts_f, parts_y = [], []
    with progress_bar(n, f"features {layer}", progress) as bar:
        for start in range(0, n, shard):
            stop = min(start + shard, n)
            path = folder / f"{start:09d}-{stop:09d}.npz" if folder is not None else None
            if path is not None and path.is_file():
                with np.load(path, allow_pickle=False) as z:
                    f, y = z["features"], z["labels"]
                bar.update(stop - start)
            else:
                f, y = _compute(model, variables, source, layer, pool, range(start, stop), batch_size, bar)
                if path is not None:
                    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
                    with open(tmp, "wb") as fh:
                        np.savez(fh, features=f, labels=y)
                    os.replace(tmp, path)
            parts_f.append(f)
            parts_y.append(y)
    return Features(np.concatenate(parts_f), np.concatenate(parts_y))
