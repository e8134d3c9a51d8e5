"""The one sharding path: a batch axis split over a 1-axis device mesh, everything else replicated.

DeepInversion and the data-set runner both put their image batch here; a jitted function then follows
the input shardings (XLA inserts the cross-device reductions a batch statistic or a mean needs), so the
same code runs on one device and on many, and gives the same numbers.

Example:
    Every local device, axis "batch"; the (B, ...) batch split over the devices; the weights on every device:

    >>> mesh = batch_mesh()                                   # doctest: +SKIP
    >>> images = shard_batch(images, mesh)                    # doctest: +SKIP
    >>> variables = replicate(variables, mesh)                # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

__all__ = ["batch_mesh", "check_batch", "shard_batch", "replicate"]

AXIS = "batch"


def batch_mesh(devices: int | Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-axis mesh named ``"batch"`` over ``devices`` (default: every local device; an int: the first n)."""
    local = jax.local_devices()
    if devices is None:
        devices = local
    elif isinstance(devices, int):
        if not 1 <= devices <= len(local):
            raise ValueError(f"devices must be in [1, {len(local)}] (this process sees {len(local)} "
                             f"{local[0].platform} device(s)), got {devices}")
        devices = local[:devices]
    return Mesh(np.array(list(devices)), (AXIS,))


def check_batch(batch: int, mesh: Mesh) -> None:
    """A clear error unless ``mesh`` is 1-axis and its size divides ``batch``."""
    if len(mesh.axis_names) != 1 or batch % mesh.size:
        raise ValueError(f"need a 1-axis mesh whose size divides the batch ({batch}); got {dict(mesh.shape)}")


def shard_batch(tree, mesh: Mesh):
    """Every array of ``tree`` split over ``mesh`` along its first (batch) axis."""
    spec = NamedSharding(mesh, PartitionSpec(mesh.axis_names[0]))
    for leaf in jax.tree.leaves(tree):
        check_batch(np.shape(leaf)[0], mesh)
    return jax.device_put(tree, spec)


def replicate(tree, mesh: Mesh):
    """Every array of ``tree`` copied whole to each device of ``mesh`` (weights, keys)."""
    return jax.device_put(tree, NamedSharding(mesh, PartitionSpec()))
