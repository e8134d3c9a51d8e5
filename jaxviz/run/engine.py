"""A task over a whole data set: batches sharded over devices, shards on disk, resumable, multi-process.

:func:`dataset` runs a :class:`~jaxviz.run.tasks.Task` over every item of a data source
(:mod:`jaxviz.io.datasets`: a folder, a tensorflow-datasets name, arrays) and writes under ``out``::

    run.json                       what was run (task, weights digest, data set, shard and batch sizes, seed)
    shards/000000000-000000256.npz one file per shard: "index" (the items' positions) and one array per output
    index.json                     written last: the shards in order, each output's per-item shape and dtype

Everything is plain ``.npz`` and JSON: ``numpy.load`` reads it without jaxviz (:func:`read` does it for you).

* **Devices**: each batch is split over a 1-axis mesh (:mod:`jaxviz.core.sharding`, the path DeepInversion
  uses too) and the task runs as one compiled program; the last batch is padded to the same shape.
* **Processes**: with ``jax.distributed`` initialized (:mod:`jaxviz.run.distributed`), shard ``i`` belongs to
  process ``i % count``; each writes its own shards, they meet at a barrier, and the index lists them all.
* **Resume**: a shard file is written atomically (a temporary name, then a rename) when all its batches are
  done; a rerun of the same call after a kill skips every shard already on disk and computes only the rest.
  A different call on the same ``out`` is refused rather than mixed in.

While the device works on one batch, the host reads the next (JAX dispatches asynchronously).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import NamedTuple

import jax
import numpy as np

from jaxviz.core import sharding
from jaxviz.core.progress import progress_bar
from jaxviz.io.datasets import load_batch, weights_digest
from jaxviz.run import distributed
from jaxviz.run.tasks import Task

__all__ = ["dataset", "read", "Index", "FORMAT"]

FORMAT = "jaxviz.run/1"
RUN, INDEX, SHARDS = "run.json", "index.json", "shards"


class Index(NamedTuple):
    """What a call did: ``n`` items in ``shards`` shard files under ``out``; this process computed ``computed``
    shards and found ``resumed`` on disk; ``complete`` when ``index.json`` lists every shard."""

    out: Path
    n: int
    shards: int
    computed: int
    resumed: int
    complete: bool


def _write_atomically(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        write(f)
    os.replace(tmp, path)


def _write_json(path: Path, value) -> None:
    _write_atomically(path, lambda f: f.write((json.dumps(value, indent=1) + "\n").encode()))


def _claim(out: Path, spec: dict) -> None:
    """Writes ``run.json``, or checks that the one there describes this same run."""
    path = out / RUN
    if path.is_file():
        try:
            found = json.loads(path.read_text())
        except (OSError, ValueError):
            found = None
        if found != spec:
            differ = sorted(k for k in spec if not isinstance(found, dict) or found.get(k) != spec[k])
            raise ValueError(f"{out} holds a different run (differs in: {', '.join(differ) or 'everything'}); "
                             "delete it or choose another output folder")
        return
    _write_json(path, spec)


def _shard_path(out: Path, start: int, stop: int) -> Path:
    return out / SHARDS / f"{start:09d}-{stop:09d}.npz"


def _finished(path: Path, start: int, stop: int) -> bool:
    """The shard file is there, readable and complete (a damaged one is computed again)."""
    if not path.is_file():
        return False
    try:
        with np.load(path, allow_pickle=False) as z:
            return np.array_equal(z["index"], np.arange(start, stop))
    except (OSError, ValueError, KeyError):
        return False


def _pad(a: np.ndarray, batch: int) -> np.ndarray:
    """``a`` with its last row repeated up to ``batch`` rows (one compiled shape for every batch)."""
    return np.concatenate([a, np.repeat(a[-1:], batch - len(a), axis=0)]) if len(a) < batch else a


def _shard(fn, variables, source, start: int, stop: int, batch_size: int, mesh, key, needs_labels: bool, bar):
    """Every output of the task for items ``start..stop``, ``batch_size`` at a time."""
    parts, pending = [], None

    def collect(result, count):
        parts.append({k: np.asarray(v)[:count] for k, v in result.items()})
        bar.update(count)

    for b in range(start, stop, batch_size):
        count = min(batch_size, stop - b)
        images, labels = load_batch(source, range(b, b + count))  # the host reads while the device works
        if not np.all(np.isfinite(images)):
            raise ValueError(f"item {b + int(np.argwhere(~np.isfinite(images))[0, 0])} of the data set is not finite")
        if needs_labels and labels.min() < 0:
            raise ValueError(f"item {b + int(np.argmin(labels))} has no label (the task's target is the label)")
        if pending is not None:
            collect(*pending)
        x, y = sharding.shard_batch((_pad(images, batch_size), _pad(labels, batch_size)), mesh)
        out = fn(variables, x, y, jax.random.fold_in(key, b))
        pending = ({**out, "label": y}, count)
    collect(*pending)
    result = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    result["index"] = np.arange(start, stop)
    return result


def dataset(task: Task, variables, source, out: str | os.PathLike, *, batch_size: int = 32, shard: int = 256,
            mesh: jax.sharding.Mesh | None = None, seed: int = 0, progress: bool | None = None) -> Index:
    """Runs ``task`` over every item of ``source`` and writes the results under ``out`` (see the module).

    Args:
        task: what to compute per batch (:mod:`jaxviz.run.tasks`).
        variables: the weights ``task.fn`` is called with (replicated on every device).
        source: ``len(source)`` items, ``source[i] -> (image (S, S, 3) in [0, 1], label)``.
        out: the output folder (created; a rerun of the same call resumes in it).
        batch_size: images per compiled call, split over the mesh (a multiple of its size).
        shard: items per shard file: the unit of resuming and of the work split between processes.
        mesh: a 1-axis device mesh (default: every local device, :func:`jaxviz.core.sharding.batch_mesh`).
        seed: the key of tasks that draw random numbers (folded with each batch's first index).
    """
    n = len(source)
    if n == 0:
        raise ValueError("the data set is empty")
    if batch_size < 1 or shard < 1:
        raise ValueError(f"need batch_size >= 1 and shard >= 1, got {batch_size}, {shard}")
    mesh = sharding.batch_mesh() if mesh is None else mesh
    if batch_size % mesh.size:
        raise ValueError(f"batch_size {batch_size} must be a multiple of the {mesh.size} devices it is split over")
    out = Path(out).expanduser()
    (out / SHARDS).mkdir(parents=True, exist_ok=True)
    spec = {"format": FORMAT, "task": task.name, "config": task.config, "weights": weights_digest(variables),
            "source": source.identity(), "n": n, "shard": shard, "batch_size": batch_size, "seed": seed}
    _claim(out, spec)
    ranges = [(s, min(s + shard, n)) for s in range(0, n, shard)]
    mine = ranges[jax.process_index()::jax.process_count()]
    todo = [r for r in mine if not _finished(_shard_path(out, *r), *r)]
    fn = jax.jit(task.fn)
    variables, key = sharding.replicate(variables, mesh), jax.random.key(seed)
    with progress_bar(sum(b - a for a, b in mine), task.name, progress) as bar:
        bar.update(sum(b - a for a, b in mine) - sum(b - a for a, b in todo))
        for start, stop in todo:
            result = _shard(fn, variables, source, start, stop, batch_size, mesh, key, task.needs_labels, bar)
            _write_atomically(_shard_path(out, start, stop), lambda f, r=result: np.savez(f, **r))
    distributed.barrier("jaxviz.run.dataset")
    complete = all(_shard_path(out, *r).is_file() for r in ranges)
    if complete:  # every process may write it: the same content, atomically
        _write_index(out, spec, ranges, source)
    return Index(out, n, len(ranges), len(todo), len(mine) - len(todo), complete)


def _write_index(out: Path, spec: dict, ranges, source) -> None:
    with np.load(_shard_path(out, *ranges[0]), allow_pickle=False) as z:
        outputs = {k: {"shape": list(z[k].shape[1:]), "dtype": str(z[k].dtype)} for k in z.files if k != "index"}
    index = {**spec, "outputs": outputs,
             "shards": [{"file": str(_shard_path(out, a, b).relative_to(out)), "start": a, "stop": b}
                        for a, b in ranges]}
    names = getattr(source, "names", None)
    if callable(names):
        index["items"] = list(names())
    _write_json(out / INDEX, index)


def read(out: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every output of a finished run, in the data set's order (and ``"index"``, the items' positions)."""
    out = Path(out).expanduser()
    if not (out / INDEX).is_file():
        raise ValueError(f"{out}: no {INDEX}; the run has not finished (run the same call again to resume it)")
    index = json.loads((out / INDEX).read_text())
    parts = []
    for s in index["shards"]:
        with np.load(out / s["file"], allow_pickle=False) as z:
            parts.append({k: z[k] for k in z.files})
    return {k: np.concatenate([p[k] for p in parts]) for k in ["index", *index["outputs"]]}
