"""Data-set features: a model's activations over a whole data set, batched, jitted and cached on disk.

A data set is anything with ``len`` and integer indexing that returns
``(image, label)``: the sources of :mod:`jaxviz.io.datasets` (:class:`Folder`,
:class:`TfdsSource`, :class:`Arrays`; importable from here too).

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
import os
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxviz.core.progress import progress_bar
from jaxviz.io.datasets import Arrays, Folder, TfdsSource, digest, load_batch, weights_digest

__all__ = ["Folder", "TfdsSource", "Arrays", "Features", "extract", "layer_features", "load_batch"]


class Features(NamedTuple):
    """``features`` (N, D) float32, ``labels`` (N,) int32 (-1: none), in the data set's order."""

    features: np.ndarray
    labels: np.ndarray


def layer_features(model, variables, images, layer: str, pool: bool = True) -> jax.Array:
    """(B, D) float32: the activations of ``layer``, flattened (spatial maps averaged first when ``pool``)."""
    _, acts = model.apply(variables, images, capture=(layer,))
    a = acts[layer]
    if pool and a.ndim == 4:
        a = jnp.mean(a, axis=(1, 2))
    return a.reshape(images.shape[0], -1).astype(jnp.float32)


@functools.partial(jax.jit, static_argnames=("model", "layer", "pool"))
def _batch_features(variables, images, *, model, layer, pool):
    return layer_features(model, variables, images, layer, pool)


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
        key = digest(f"{model.name}:{weights_digest(variables)}:{layer}:{pool}:{source.identity()}")
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
