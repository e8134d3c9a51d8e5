"""The one loop every optimization in jaxviz runs on: a step function, run in compiled chunks.

Rendering, DeepDream, class visualization, fooling, feature inversion, texture and style transfer, fast-style
training, DeepInversion, distillation and training are all ``carry, value = step(carry, i, data)`` repeated.
:func:`run` does the repeating, with one progress bar, one history format, one checkpoint format (orbax) and
one policy for how the steps are compiled:

* ``step(carry, i, data) -> (carry, value)``: ``carry`` is what changes (parameters, optimizer state),
  ``i`` the step index (a traced int32), ``data`` a pytree of arrays that stays fixed (weights, targets,
  keys: derive per-step keys as ``fold_in(key, i)``). ``value`` is a number or one per item; its mean is
  what the history and the progress bar show.
* ``step`` is static: hashable, e.g. a module-level function or a ``functools.partial`` of one with hashable
  arguments (a model, an optax optimizer, layer names). New ``data`` values do not recompile.
* The steps run in chunks of at most ``chunk``; the host waits once per chunk (for the bar, the history, a
  checkpoint), never per step. How a chunk is compiled is :func:`default_mode`'s choice, made from the
  measurement in benchmarks/README.md ("The loop driver"): ``"fused"`` (the whole chunk is one program, a
  ``lax.fori_loop``) or ``"stepwise"`` (one compiled step, called from Python).
* ``phases``: a run may switch between static variants of its step at given steps (DeepInversion's
  low-resolution warm-up); chunks never straddle a switch.
* ``checkpoint``: an orbax checkpoint directory written at chunk ends (atomically: orbax writes a temporary
  directory and renames it); a run that finds one made with the same ``fingerprint`` resumes from it and
  ends with exactly the uninterrupted result.

Example:
    >>> def step(x, i, data):  # gradient descent on (x - target)^2
    ...     g = 2 * (x - data["target"])
    ...     return x - 0.1 * g, jnp.sum((x - data["target"]) ** 2)
    >>> out = run(step, jnp.zeros(3), {"target": jnp.ones(3)}, steps=50, progress=False)
    >>> bool(out.history[-1][1] < 1e-3)
    True
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxviz.core.progress import progress_bar

__all__ = ["run", "step", "LoopResult", "default_mode", "checkpoint_step", "compiled_programs", "saved_stage",
           "MODES", "KINDS", "DEFAULT_CHUNK"]

MODES = ("fused", "stepwise")
DEFAULT_CHUNK = 32

Step = Callable[[Any, jax.Array, Any], tuple[Any, jax.Array]]


class LoopResult(NamedTuple):
    """What :func:`run` returns.

    Attributes:
        carry: the final carry.
        history: ``[(step, value)]`` at every chunk end, the mean of the last step's value (this call's steps
            and, after a resume, the history the checkpoint kept).
        values: ``{step: value}`` for every step this call ran: the mean of what step ``k`` returned (for a loss from
            ``value_and_grad``, the loss before step ``k``'s update).
        resumed_from: the step a checkpoint resumed from (0: a fresh start).
    """

    carry: Any
    history: list[tuple[int, float]]
    values: dict[int, float]
    resumed_from: int


@dataclasses.dataclass(frozen=True)
class _Bound:
    fn: Callable
    static: tuple

    def __call__(self, *args, **kwargs):
        return self.fn(*args, **kwargs, **dict(self.static))


def step(fn: Callable, **static) -> Step:
    """``fn`` with its static keyword arguments bound, equal to any other binding of the same values: a loop
    step, or any function a compiled step holds (a loss).

    (A ``functools.partial`` is hashable but compares by identity: each new one would compile anew.)
    """
    return _Bound(fn, tuple(sorted(static.items())))


#: The kinds of loop, one per row of the measurement: a run declares which it is (what its step computes),
#: and :func:`default_mode` looks the mode up. "render": an image optimized through a frozen network
#: (render, render_many, DeepDream, class visualization, feature inversion, fooling); "deepinversion";
#: "style": Gram-matrix losses (texture, Gatys transfer); "training": network weights (fit, distillation,
#: fast-style training).
KINDS = ("render", "deepinversion", "style", "training")

#: benchmarks/README.md, "The loop driver" (2-core CPU, fused / stepwise throughput): render 0.92x for one
#: objective and 1.2x vmapped over ten (class visualization), DeepInversion 1.20x, style 0.81x (and 8x the
#: compile time), training 0.07x (XLA:CPU's weight-gradient convolutions inside a while loop, jax-ml/jax#12868).
_CPU_MODES = {"render": "fused", "deepinversion": "fused", "style": "stepwise", "training": "stepwise"}


def default_mode(kind: str = "render", backend: str | None = None) -> str:
    """How a loop of ``kind`` (:data:`KINDS`) compiles its chunks: the one place this is decided.

    * CPU: from the measurement above (:data:`_CPU_MODES`): a ``fori_loop`` chunk where it was as fast or
      faster, one compiled step per call where the while loop cost more (training, style).
    * GPU, TPU: ``"fused"`` for every kind, one program per chunk (no per-step dispatch; not measured yet).

    ``JAXVIZ_LOOP_MODE`` (``fused`` or ``stepwise``) overrides it, for measuring.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    mode = os.environ.get("JAXVIZ_LOOP_MODE")
    if mode is None:
        return _CPU_MODES[kind] if (backend or jax.default_backend()) == "cpu" else "fused"
    if mode not in MODES:
        raise ValueError(f"JAXVIZ_LOOP_MODE must be one of {', '.join(MODES)}, got {mode!r}")
    return mode


def _strong_copy(x) -> jax.Array:
    x = jnp.asarray(x)
    return jnp.array(x, dtype=x.dtype, copy=True) if x.weak_type else jnp.copy(x)


def _mean(value) -> jax.Array:
    return jnp.mean(jnp.asarray(value, jnp.float32))


@functools.partial(jax.jit, static_argnames=("step", "size"), donate_argnums=(0,))
def _fused(carry, data, start, stop, *, step, size):
    """Steps [start, stop) in one program; the per-step values in a (size,) buffer."""

    def body(i, state):
        carry, values = state
        carry, value = step(carry, i, data)
        return carry, values.at[i - start].set(_mean(value))

    return jax.lax.fori_loop(start, stop, body, (carry, jnp.zeros(size, jnp.float32)))


@functools.partial(jax.jit, static_argnames=("step",), donate_argnums=(0,))
def _one(carry, data, i, *, step):
    carry, value = step(carry, i, data)
    return carry, _mean(value)


def compiled_programs() -> int:
    """How many chunk programs have been compiled so far (in this process): tests check that new values, keys
    or step counts compile nothing."""
    return _fused._cache_size() + _one._cache_size()


def _chunk(step, carry, data, start: int, stop: int, size: int, mode: str):
    if mode == "fused":
        carry, values = _fused(carry, data, jnp.int32(start), jnp.int32(stop), step=step, size=size)
        return carry, np.asarray(values)[: stop - start]
    values = []
    for i in range(start, stop):
        carry, value = _one(carry, data, jnp.int32(i), step=step)
        values.append(value)
    return carry, np.asarray(jnp.stack(values))


def _phase(phases: Sequence[tuple[int, Step]], i: int) -> Step:
    for until, step in phases:
        if i < until:
            return step
    return phases[-1][1]


def _stops(steps: int, chunk: int, start: int, extra: Iterable[int]) -> list[int]:
    return sorted({*range(chunk, steps, chunk), *(int(b) for b in extra if 0 < int(b) <= steps), steps}
                  - set(range(start + 1)))


def run(step: Step | Sequence[tuple[int, Step]], carry, data, *, steps: int, chunk: int = DEFAULT_CHUNK,
        boundaries: Iterable[int] = (), on_boundary: Callable[[int, Any], None] | None = None,
        callback: Callable[[int, float], None] | None = None, desc: str = "", progress: bool | None = None,
        checkpoint: str | os.PathLike | None = None, fingerprint: Any = None, kind: str = "render",
        mode: str | None = None,
        offset: int = 0, stop_when: Callable[[Any], bool] | None = None, what: str = "run") -> LoopResult:
    """Runs ``steps`` steps of ``step`` from ``carry``.

    Args:
        step: the static step function, or phases ``[(until, step), ...]``: each step applies up to (not
            including) its ``until``; the last applies to the rest.
        carry: the initial carry (its buffers may be donated: do not reuse them).
        data: fixed pytree of arrays the step reads.
        steps: how many steps in all (a resumed run continues up to this count).
        chunk: steps per compiled call (between progress updates and checkpoints).
        boundaries: extra steps to stop at (e.g. snapshots); ``on_boundary(step, carry)`` is called at every
            stop, chunk ends included (not after a resume's restore).
        callback: ``callback(step, value)`` for every step, called at the end of its chunk before the chunk's
            checkpoint is written; an exception from it stops the run (the previous checkpoint stays).
        desc, progress: the progress bar's label; show it (None: only on a terminal).
        checkpoint: an orbax checkpoint directory (written at every stop, kept last one only).
        fingerprint: a JSON-able description of the run; a checkpoint with another is refused.
        kind: what the step optimizes (:data:`KINDS`); it chooses the mode.
        mode: ``"fused"`` or ``"stepwise"`` (default :func:`default_mode` of ``kind``).
        offset: added to step numbers in the history, values and callbacks (several runs in a row).
        stop_when: ``stop_when(carry) -> bool`` at every stop: True ends the run early (e.g. every image fooled).
        what: what a run is called in the error for a checkpoint of another one ("training run").

    Returns:
        A :class:`LoopResult`.
    """
    if isinstance(steps, bool) or int(steps) != steps or steps < 0:
        raise ValueError(f"steps must be a non-negative integer, got {steps!r}")
    if chunk < 1:
        raise ValueError(f"chunk must be positive, got {chunk}")
    mode = mode or default_mode(kind)
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    phases = [(steps, step)] if callable(step) else [(int(u), s) for u, s in step]
    history: list[tuple[int, float]] = []
    values: dict[int, float] = {}
    start = 0
    manager = None
    # A copy (the chunks donate their carry: never the caller's own buffers), strongly typed: a weakly typed
    # leaf (a Python-float optimizer hyperparameter) would come back strong and compile the step a second time.
    carry = jax.tree.map(_strong_copy, carry)
    if checkpoint is not None:
        manager = _Checkpoints(checkpoint, fingerprint, what)
        restored = manager.restore(carry)
        if restored is not None:
            start, carry, history = restored
    stops = _stops(steps, chunk, start, [*boundaries, *(u for u, _ in phases[:-1])])
    try:
        with progress_bar(steps, desc, progress) as bar:
            bar.update(start)
            begin = start
            for stop in stops:
                carry, chunk_values = _chunk(_phase(phases, begin), carry, data, begin, stop, chunk, mode)
                for k, v in enumerate(chunk_values, start=begin + 1):
                    values[offset + k] = float(v)
                history.append((offset + stop, float(chunk_values[-1])))
                if callback is not None:
                    for k in range(begin + 1, stop + 1):
                        callback(offset + k, values[offset + k])
                if manager is not None:
                    manager.save(stop, carry, history)
                bar.set_postfix(value=f"{history[-1][1]:.4g}")
                bar.update(stop - begin)
                if on_boundary is not None:
                    on_boundary(offset + stop, carry)
                begin = stop
                if stop_when is not None and stop_when(carry):
                    break
    finally:
        if manager is not None:
            manager.close()
    return LoopResult(carry, history, values, start)


class _Checkpoints:
    """The newest checkpoint of one run in an orbax directory: the carry, the step, the history."""

    def __init__(self, directory, fingerprint, what: str):
        import orbax.checkpoint as ocp

        self._ocp = ocp
        self.what = what
        self.directory = Path(directory).absolute()
        self.meta = json.loads(json.dumps(fingerprint, default=str))
        if self.directory.exists() and not self.directory.is_dir():
            raise ValueError(f"checkpoint {directory} is unreadable (not a directory); delete it to start over")
        options = ocp.CheckpointManagerOptions(max_to_keep=1, enable_async_checkpointing=False)
        self.manager = ocp.CheckpointManager(self.directory, options=options)

    def restore(self, template):
        ocp = self._ocp
        latest = self.manager.latest_step()
        if latest is None:
            return None
        try:
            restored = self.manager.restore(latest, args=ocp.args.Composite(
                state=ocp.args.StandardRestore(template), meta=ocp.args.JsonRestore()))
        except Exception as e:  # orbax raises many kinds for a damaged directory
            raise ValueError(f"checkpoint {self.directory} is unreadable ({type(e).__name__}); delete it to "
                             "start over") from None
        meta = restored["meta"]
        if meta.get("fingerprint") != self.meta:
            raise ValueError(f"checkpoint {self.directory} belongs to a different {self.what} (settings, inputs or "
                             "key differ); delete it or choose another directory")
        self.info = meta.get("info")
        return latest, restored["state"], [tuple(h) for h in meta["history"]]

    def save(self, step: int, carry, history, info=None) -> None:
        ocp = self._ocp
        meta = {"fingerprint": self.meta, "history": [[int(s), float(v)] for s, v in history], "info": info}
        self.manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(carry),
                                                        meta=ocp.args.JsonSave(meta)), force=True)
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.close()


def saved_stage(directory: str | os.PathLike | None, name: str, compute: Callable[[], tuple[Any, Any]], *,
                template: Any = None, fingerprint: Any = None, what: str = "run") -> tuple[Any, Any]:
    """``compute()``'s ``(tree, info)``, or what a call with the same ``fingerprint`` saved in ``directory/name``.

    The stages of a long experiment (a teacher, a synthesis, a model after each task) go through this, so a run
    stopped between stages resumes after the last finished one and ends with the uninterrupted run's results.
    Each stage is an orbax checkpoint written atomically once it is computed; a stage saved by a run with
    another ``fingerprint`` is refused with a clear error.

    Args:
        directory: the experiment's checkpoint directory (None: no saving, just ``compute()``).
        name: the stage's name, a subdirectory.
        compute: ``() -> (tree, info)``: a pytree of arrays (or None) and a JSON-able value (scores, seconds).
        template: a pytree with the tree's structure, shapes and dtypes, to restore it (None: compute's tree is
            None).
        fingerprint: a JSON-able description of the run.
        what: what a run is called in that error.
    """
    if directory is None:
        return compute()
    manager = _Checkpoints(Path(directory) / name, fingerprint, what)
    try:
        restored = manager.restore({"tree": template})
        if restored is not None:
            return restored[1]["tree"], manager.info
        tree, info = compute()
        manager.save(1, {"tree": tree}, [], info)
        return tree, info
    finally:
        manager.close()


def checkpoint_step(directory: str | os.PathLike) -> int | None:
    """The step of the newest checkpoint in ``directory`` (None if there is none)."""
    import orbax.checkpoint as ocp

    if not Path(directory).is_dir():
        return None
    manager = ocp.CheckpointManager(Path(directory).absolute())
    try:
        return manager.latest_step()
    finally:
        manager.close()
