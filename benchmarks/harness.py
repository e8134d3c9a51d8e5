"""Timing shared by every benchmark suite.

Each row times jaxviz and its peer on the same machine in the same process:
compile (or first-call) time apart from steady state, the median of several
runs, and the ratio jaxviz / peer in throughput (above 1: jaxviz is faster).
"""

from __future__ import annotations

import contextlib
import json
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
#: Set by ``gpu.py --cost-only``: every jaxviz program is lowered and its FLOPs counted, never compiled or run
#: (the count of an accelerator-sized program, on a CPU, in seconds).
COST_ONLY = False


class _Counted(Exception):
    """Stops a loop once its step is recorded (``COST_ONLY``)."""


@dataclass
class Timing:
    first_s: float  # compile (jaxviz) or first call (peer)
    median_s: float
    runs: list[float] = field(default_factory=list)
    flops: float | None = None  # per timed call: XLA's count on the lowered program (:func:`cost`)
    bytes: float | None = None  # bytes accessed per timed call: XLA's count on the compiled program


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


def time_peer(make: Callable[[], tuple[Callable[[], object] | None, str]], sync: Callable[[object], object],
              repeats: int) -> tuple[Timing | None, str]:
    """``make()`` builds the peer's zero-argument call and names it (None: no peer); it is timed as
    :func:`time_calls` does. A peer that cannot run this setting (a dtype, a device) is named as failed in the
    row, not fatal to the suite."""
    try:
        fn, name = make()
        return (time_calls(fn, sync, repeats) if fn else None), name
    except Exception as e:  # noqa: BLE001
        return None, f"- (peer failed: {type(e).__name__}: {str(e)[:80]})"


def time_step_runs(run: Callable[[int], object], steps: int, repeats: int) -> Timing:
    """``run(n)`` does n optimizer steps (synced). ``first_s``: ``run(1)`` (compile, or the peer's warm-up);
    then one untimed run of ``steps`` (a loop compiled per chunk length compiles again here), then the median
    of ``repeats`` runs of ``steps`` steps."""
    if COST_ONLY:  # a LoopCost block records the step and stops the loop
        with contextlib.suppress(_Counted):
            run(1)
        return Timing(0.0, float("nan"))
    t0 = time.perf_counter()
    run(1)
    first = time.perf_counter() - t0
    if steps != 1:
        run(steps)
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
    lowered = jitted.lower(*args)
    if COST_ONLY:
        return Timing(0.0, float("nan"), [], *cost(lowered))
    compiled = lowered.compile()
    compile_s = time.perf_counter() - t0
    timing = time_calls(lambda: compiled(*args), jax.block_until_ready, repeats)
    timing.first_s = compile_s
    timing.flops, timing.bytes = cost(lowered, compiled)
    return timing


def _analysis(stage, key: str) -> float | None:
    analysis = stage.cost_analysis()
    if isinstance(analysis, list | tuple):  # older jax: one dict per computation
        analysis = analysis[0] if analysis else {}
    value = (analysis or {}).get(key)
    return float(value) if value else None


def cost(lowered, compiled=None) -> tuple[float | None, float | None]:
    """FLOPs and bytes accessed of one call, as XLA's cost analysis counts them.

    FLOPs are counted on the lowered program, before any backend has seen it: the same count on every device
    (the GPU's compiled program hides its convolutions in cuDNN custom calls, which the analysis counts as
    none; on the CPU, lowered and compiled counts agree within 5% on ResNet-50 and Lite0). Bytes are the
    compiled program's, after fusion (None without ``compiled``). XLA counts a while loop's body once, whatever
    its trip count: a program with a loop inside is under-counted.
    """
    return _analysis(lowered, "flops"), (_analysis(compiled, "bytes accessed") if compiled is not None else None)


def _compile(jitted, args: tuple, tracing: Callable = contextlib.nullcontext):
    """``jitted`` lowered (inside ``tracing()``) and compiled, and a :class:`Timing` holding the compile time
    and the program's cost, its runs still to come."""
    t0 = time.perf_counter()
    with tracing():
        lowered = jitted.lower(*args)
        compiled = lowered.compile()
    return compiled, Timing(time.perf_counter() - t0, 0.0, [], *cost(lowered, compiled))


def _time_in_turns(calls: dict[str, Callable[[], object]], timings: dict[str, Timing], repeats: int) -> None:
    """Round r times every (synced, warmed-up) call once, so a machine that slows down mid-run slows all of them
    alike; each timing gets its runs and their median."""
    for _ in range(repeats):
        for name, call in calls.items():
            t0 = time.perf_counter()
            call()
            timings[name].runs.append(time.perf_counter() - t0)
    for t in timings.values():
        t.median_s = statistics.median(t.runs)


def time_jax_interleaved(programs: dict[str, tuple[object, tuple]], repeats: int,
                         tracing: dict[str, Callable] | None = None) -> dict[str, Timing]:
    """Compiles each ``jitted`` of ``{name: (jitted, args)}`` (timed apart), then times them in turns.
    ``tracing[name]()`` is a context manager to trace that program in."""
    import jax

    calls, timings = {}, {}
    for name, (jitted, args) in programs.items():
        compiled, timings[name] = _compile(jitted, args, (tracing or {}).get(name, contextlib.nullcontext))
        calls[name] = lambda c=compiled, a=args: jax.block_until_ready(c(*a))
        calls[name]()  # warm-up
    _time_in_turns(calls, timings, repeats)
    return timings


def time_jax_and_peer(jitted, args: tuple, peer: Callable[[], object] | None, sync: Callable[[object], object],
                      repeats: int) -> tuple[Timing, Timing | None]:
    """Compiles ``jitted`` (timed apart) and calls ``peer`` once (its first call, timed), warms both up, then
    times them in turns, so the ratio of the medians is fair on a machine whose speed drifts (:func:`time_jax`
    then :func:`time_calls` is not)."""
    import jax

    if COST_ONLY:
        return Timing(0.0, float("nan"), [], *cost(jitted.lower(*args))), None
    compiled, ours = _compile(jitted, args)
    calls, timings = {"jaxviz": lambda: jax.block_until_ready(compiled(*args))}, {"jaxviz": ours}
    calls["jaxviz"]()  # warm-up
    if peer is not None:
        t0 = time.perf_counter()
        sync(peer())
        timings["peer"] = Timing(time.perf_counter() - t0, 0.0, [])
        calls["peer"] = lambda: sync(peer())
        calls["peer"]()  # warm-up
    _time_in_turns(calls, timings, repeats)
    return ours, timings.get("peer")


class LoopCost:
    """Records the step of the first :func:`jaxviz.core.loop.run` call made inside ``with LoopCost() as c:``;
    then ``c.apply(timing, steps)`` gives ``timing`` that step's FLOPs and bytes times ``steps`` (one timed run).

    The step is compiled on its own (``loop._one``, the stepwise program: the fused chunk is a while loop,
    whose body XLA's cost analysis counts once); of a multi-phase run, the last phase's step is costed.
    """

    def __enter__(self):
        import jax
        import jax.numpy as jnp

        from jaxviz.core import loop

        self.seen, self._run = [], loop.run

        def spy(step, carry, data, **kw):
            if not self.seen:
                try:
                    shapes = jax.tree.map(lambda a: jax.ShapeDtypeStruct(jnp.shape(a), jnp.result_type(a)),
                                          (carry, data))
                except TypeError:  # a leaf that is no array: the row goes without a cost
                    shapes = None
                self.seen.append(shapes and (step[-1][1] if isinstance(step, list | tuple) else step, *shapes))
            if COST_ONLY:
                raise _Counted
            return self._run(step, carry, data, **kw)

        loop.run = spy
        return self

    def __exit__(self, *exc):
        from jaxviz.core import loop

        loop.run = self._run
        return False

    def apply(self, timing: Timing, steps: int) -> Timing:
        import jax.numpy as jnp

        from jaxviz.core import loop

        if self.seen and self.seen[0]:
            step, carry, data = self.seen[0]
            lowered = loop._one.lower(carry, data, jnp.int32(0), step=step)
            flops, accessed = cost(lowered, None if COST_ONLY else lowered.compile())
            timing.flops = flops * steps if flops else None
            timing.bytes = accessed * steps if accessed else None
        return timing


def time_loop(run: Callable[[int], object], steps: int, repeats: int) -> Timing:
    """:func:`time_step_runs` of a jaxviz loop, with its step's FLOPs and bytes (:class:`LoopCost`)."""
    with LoopCost() as step_cost:
        timing = time_step_runs(run, steps, repeats)
    return step_cost.apply(timing, steps)


def matmul_peak(dtype: str = "float32", n: int | None = None, repeats: int = 5) -> float:
    """FLOP/s of an n x n x n matrix product on the default device, median of ``repeats``: the ceiling the
    roofline table compares each row with (n: 8192 on an accelerator, 2048 on a CPU)."""
    import jax
    import jax.numpy as jnp

    n = n or (2048 if jax.default_backend() == "cpu" else 8192)
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.dtype(dtype))
    timing = time_jax(jax.jit(lambda a, b: a @ b), (a, a), repeats)
    return 2 * n**3 / timing.median_s


#: Datasheet ceilings for the estimate beside every row (dense, no sparsity; SXM parts): matrix FLOP/s per
#: dtype and HBM bytes/s. float32 is TF32 on the tensor cores, which XLA and cuDNN use for float32
#: convolutions and products by default on these chips. Estimates, not measurements.
DATASHEETS = {
    "H100": {"float32": 494e12, "bfloat16": 989e12, "hbm": 3.35e12},
    "H200": {"float32": 494e12, "bfloat16": 989e12, "hbm": 4.8e12},
}


def roofline(rows: list[Row], peaks: dict[str, float], unit: str = "img/s") -> str:
    """Per row with a cost: FLOPs and bytes per timed call, arithmetic intensity, the FLOP/s achieved and its
    share of the matmul peak measured in the same run (``peaks[dtype]``), and each datasheet's roofline
    estimate of the same program's throughput, max(FLOPs / peak, bytes / bandwidth)."""
    chips = list(DATASHEETS)
    lines = ["| task | model | batch | dtype | GFLOP | GB | FLOP/byte | achieved TFLOP/s | of measured peak | "
             f"measured {unit} | " + " | ".join(f"{c} estimate {unit}" for c in chips) + " |",
             "|---|---|---:|---|---:|---:|---:|---:|---:|---:|" + "---:|" * len(chips)]
    for r in rows:
        t = r.jaxviz
        if not t.flops:
            continue
        achieved = t.flops / t.median_s
        peak = peaks.get(r.dtype)
        share = f"{achieved / peak:.0%}" if peak else "-"
        nbytes = t.bytes or 0.0
        intensity = f"{t.flops / nbytes:.1f}" if nbytes else "-"
        estimates = []
        for chip in chips:
            sheet = DATASHEETS[chip]
            seconds = max(t.flops / sheet.get(r.dtype, sheet["float32"]), nbytes / sheet["hbm"])
            estimates.append(f"{(r.per_run or r.batch) / seconds:.0f}")
        lines.append(f"| {r.task} | {r.model} | {r.batch} | {r.dtype} | {t.flops / 1e9:.1f} | {nbytes / 1e9:.2f} | "
                     f"{intensity} | {achieved / 1e12:.3f} | {share} | {r.items_per_s(t):.2f} | "
                     + " | ".join(estimates) + " |")
    return "\n".join(lines)


def device_name() -> str:
    import jax

    dev = jax.devices()[0]
    if dev.platform == "cpu":
        import os

        return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"
    return dev.device_kind


def markdown(rows: list[Row], unit: str = "img/s") -> str:
    lines = [f"| task | model | batch | dtype | jaxviz {unit} | peer {unit} | ratio "
             "| jaxviz compile s | peer first call s | GFLOP | GB | peer | note |",
             "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    for r in rows:
        peer = f"{r.items_per_s(r.peer):.2f}" if r.peer else "-"
        ratio = f"{r.ratio:.2f}x" if r.peer else "-"
        first = f"{r.peer.first_s:.2f}" if r.peer else "-"
        gflop = f"{r.jaxviz.flops / 1e9:.1f}" if r.jaxviz.flops else "-"
        gb = f"{r.jaxviz.bytes / 1e9:.2f}" if r.jaxviz.bytes else "-"
        lines.append(f"| {r.task} | {r.model} | {r.batch} | {r.dtype} | {r.items_per_s(r.jaxviz):.2f} | {peer} | "
                     f"{ratio} | {r.jaxviz.first_s:.2f} | {first} | {gflop} | {gb} | {r.peer_name} | {r.note} |")
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
