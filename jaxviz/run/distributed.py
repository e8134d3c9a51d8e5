"""Several processes, one run: ``jax.distributed`` set up from flags or the environment.

Each process (one per host, or several on one machine) calls :func:`initialize` with the coordinator's
``host:port``, the process count and its own id, or sets ``JAXVIZ_COORDINATOR``, ``JAXVIZ_NUM_PROCESSES`` and
``JAXVIZ_PROCESS_ID``. :func:`jaxviz.run.dataset` then gives each process its share of the shards (shard ``i``
to process ``i % count``) and meets the others at a barrier before the index is written.

Example (two processes on one machine, CPU collectives over Gloo)::

    JAXVIZ_COORDINATOR=localhost:12355 JAXVIZ_NUM_PROCESSES=2 JAXVIZ_PROCESS_ID=0 jaxviz run saliency ... &
    JAXVIZ_COORDINATOR=localhost:12355 JAXVIZ_NUM_PROCESSES=2 JAXVIZ_PROCESS_ID=1 jaxviz run saliency ...
"""

from __future__ import annotations

import os
from typing import NamedTuple

__all__ = ["Processes", "settings", "initialize", "barrier"]

ENV = {"coordinator": "JAXVIZ_COORDINATOR", "num_processes": "JAXVIZ_NUM_PROCESSES",
       "process_id": "JAXVIZ_PROCESS_ID"}


class Processes(NamedTuple):
    coordinator: str
    num_processes: int
    process_id: int


def _integer(value, what: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be an integer, got {value!r}") from None


def settings(coordinator: str | None = None, num_processes: int | None = None,
             process_id: int | None = None) -> Processes | None:
    """The checked multi-process settings from the arguments, else the environment; None for one process.
    Imports no JAX (the command line checks them before anything loads)."""
    given = {"coordinator": coordinator, "num_processes": num_processes, "process_id": process_id}
    given = {k: os.environ.get(ENV[k]) if v is None else v for k, v in given.items()}
    if all(v is None for v in given.values()):
        return None
    missing = [k for k, v in given.items() if v is None]
    if missing:
        raise ValueError(f"several processes need a coordinator, a process count and a process id: missing "
                         f"{', '.join(missing)} (flags --coordinator/--num-processes/--process-id or "
                         f"{', '.join(ENV[k] for k in missing)})")
    host, _, port = str(given["coordinator"]).rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"the coordinator must be HOST:PORT, got {given['coordinator']!r}")
    count = _integer(given["num_processes"], "the process count")
    pid = _integer(given["process_id"], "the process id")
    if count < 1 or not 0 <= pid < count:
        raise ValueError(f"need 1 <= process count and 0 <= process id < count, got count {count}, id {pid}")
    return Processes(str(given["coordinator"]), count, pid)


def initialize(coordinator: str | None = None, num_processes: int | None = None,
               process_id: int | None = None) -> tuple[int, int]:
    """Joins the run (``jax.distributed.initialize``) and returns ``(process_id, num_processes)``; ``(0, 1)``
    without settings. Call it before anything else uses JAX."""
    found = settings(coordinator, num_processes, process_id)
    if found is None or found.num_processes == 1:
        return 0, 1
    import jax

    # CPU devices of different processes talk over Gloo (the default CPU backend has no cross-process collectives)
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(found.coordinator, num_processes=found.num_processes, process_id=found.process_id)
    return jax.process_index(), jax.process_count()


def barrier(name: str) -> None:
    """Every process waits here until all have arrived (a no-op in a single process)."""
    import jax

    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)
