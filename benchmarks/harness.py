"""Timing shared by every benchmark suite.

Each row times jaxviz and its peer on the same machine in the same process:
compile (or first-call) time apart from steady state, the median of several
runs, and the ratio jaxviz / peer in throughput (above 1: jaxviz is faster).
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


@dataclass
class Timing:
    first_s: float  # compile (jaxviz) or first call (peer)
    median_s: float
    runs: list[float] = field(default_factory=list)


@dataclass
class Row:
    suite: str
    task: str
    model: str
    batch: int
    dtype: str
    jaxviz: Timing
    peer: Timing | None
    peer_name: str
    note: str = ""
    per_run: int = 0  # units per timed run (e.g. optimizer steps); 0: the batch
    @property
    def ratio(self) -> float | None:
        return self.peer.median_s / self.jaxviz.median_s if self.peer else None

    def items_per_s(self, t: Timing) -> float:
        return (self.per_run or self.batch) / t.median_s


def time_calls(fn: Callable[[], object], sync: Callable[[object], object], repeats: int, warmup: int = 1) -> Timing:
    """``first_s``: the first call, synced; then ``warmup`` unrecorded calls; then the median of ``repeats``."""
    t0 = time.perf_counter()
    sync(fn())
    first = time.perf_counter() - t0
    for _ in range(warmup):
        sync(fn())
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        sync(fn())
        runs.append(time.perf_counter() - t0)
    return Timing(first, statistics.median(runs), runs)


def time_step_runs(run: Callable[[int], object], steps: int, repeats: int) -> Timing:
    """``run(n)`` does n optimizer steps (synced). ``first_s``: ``run(1)`` (compile, or the peer's warm-up);
    then the median of ``repeats`` runs of ``steps`` steps."""
    t0 = time.perf_counter()
    run(1)
    first = time.perf_counter() - t0
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run(steps)
        runs.append(time.perf_counter() - t0)
    return Timing(first, statistics.median(runs), runs)


def time_jax(jitted, args: tuple, repeats: int) -> Timing:
    """Compiles ``jitted`` ahead of time (timed apart), then times the compiled program."""
    import jax

    t0 = time.perf_counter()
    compiled = jitted.lower(*args).compile()
    compile_s = time.perf_counter() - t0
    timing = time_calls(lambda: compiled(*args), jax.block_until_ready, repeats)
    timing.first_s = compile_s
    return timing


def time_jax_interleaved(programs: dict[str, tuple[object, tuple]], repeats: int,
                         tracing: dict[str, Callable] | None = None) -> dict[str, Timing]:
    """Compiles each ``jitted`` of ``{name: (jitted, args)}`` (timed apart), then times them in turns:
    round r runs every program once, so a machine that slows down mid-run slows all of them alike.
    ``tracing[name]()`` is a context manager to trace that program in."""
    import contextlib

    import jax

    compiled, timings = {}, {}
    for name, (jitted, args) in programs.items():
        t0 = time.perf_counter()
        with (tracing or {}).get(name, contextlib.nullcontext)():
            compiled[name] = jitted.lower(*args).compile()
        timings[name] = Timing(time.perf_counter() - t0, 0.0)
        jax.block_until_ready(compiled[name](*args))  # warm-up
    for _ in range(repeats):
        for name, (_, args) in programs.items():
            t0 = time.perf_counter()
            jax.block_until_ready(compiled[name](*args))
            timings[name].runs.append(time.perf_counter() - t0)
    for t in timings.values():
        t.median_s = statistics.median(t.runs)
    return timings


def device_name() -> str:
    import jax

    dev = jax.devices()[0]
    if dev.platform == "cpu":
        import os

        return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"
    return dev.device_kind


def markdown(rows: list[Row], unit: str = "img/s") -> str:
    lines = [f"| task | model | batch | dtype | jaxviz {unit} | peer {unit} | ratio "
             "| jaxviz compile s | peer first call s | peer | note |",
             "|---|---|---:|---|---:|---:|---:|---:|---:|---|---|"]
    for r in rows:
        peer = f"{r.items_per_s(r.peer):.2f}" if r.peer else "-"
        ratio = f"{r.ratio:.2f}x" if r.peer else "-"
        first = f"{r.peer.first_s:.2f}" if r.peer else "-"
        lines.append(f"| {r.task} | {r.model} | {r.batch} | {r.dtype} | {r.items_per_s(r.jaxviz):.2f} | {peer} | "
                     f"{ratio} | {r.jaxviz.first_s:.2f} | {first} | {r.peer_name} | {r.note} |")
    return "\n".join(lines)


def report(rows: list[Row], suite: str, unit: str) -> Path:
    """The end of every suite: the device, the table of all rows, the raw JSON saved."""
    print(f"\n{device_name()}\n")
    print(markdown(rows, unit=unit))
    path = save(rows, suite)
    print(f"saved {path}")
    return path


def save(rows: list[Row], suite: str) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{suite}-{platform.node() or 'host'}.json"
    payload = {"device": device_name(), "rows": [asdict(r) | {"ratio": r.ratio} for r in rows]}
    path.write_text(json.dumps(payload, indent=1))
    return path
