"""Data-set runs: a method times a data source into result shards on disk, over devices and hosts.

* :mod:`.tasks`: what is computed per batch (attribution maps with metrics, features, or your own function);
* :mod:`.engine`: the run itself (:func:`dataset`): batches sharded over a device mesh, shards written
  atomically, a progress bar, resume after a kill, one JSON index; :func:`read` loads the results;
* :mod:`.distributed`: several processes (hosts) with ``jax.distributed``: each takes its share of the shards.
"""

from jaxviz._lazy import lazy

__getattr__, __dir__ = lazy(__name__, ("tasks", "engine", "distributed"), {
    "dataset": "engine", "read": "engine", "Index": "engine", "Task": "tasks",
})
