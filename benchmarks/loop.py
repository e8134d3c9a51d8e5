"""The loop driver's one policy: a whole chunk as one compiled ``fori_loop`` ("fused") or one compiled step
called from Python per step ("stepwise"), measured on the library's own loops, steps/s.

    python benchmarks/loop.py                     # every loop, 3 interleaved rounds
    python benchmarks/loop.py --task training --rounds 5

XLA:CPU was reported to run some convolutions (weight gradients of small convolutions, jax-ml/jax#12868) several
times slower inside a while loop; the earlier modules each chose a Python loop for that. This measures it on
the steps jaxviz runs, in the same process, the two modes in turns, compile excluded (each call is timed after
a first call of the same shape). ``jaxviz.core.loop.default_mode`` is set from this table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import jax

sys.path.insert(0, str(Path(__file__).parent))
from jaxviz import models  # noqa: E402
from jaxviz.core import loop  # noqa: E402
from jaxviz.core import objectives as obj  # noqa: E402
from jaxviz.datafree import deepinversion as di  # noqa: E402
from jaxviz.datafree import training  # noqa: E402
from jaxviz.experiments import digits  # noqa: E402
from jaxviz.io import image  # noqa: E402
from jaxviz.models import digits_cnn  # noqa: E402
from jaxviz.style import transfer  # noqa: E402
from jaxviz.synthesis import render  # noqa: E402

from harness import Row, Timing, report  # noqa: E402


def tasks(size: int):
    """{name: (model name, steps, run(steps))}: each run is one library call of ``steps`` steps."""
    lite, lite_vars = models.load("efficientnet_lite0", weights=None)
    data = digits.load()
    dmodel = digits_cnn.build()
    photo, painting = image.sample("chelsea", size), image.sample("gravel", size)
    key = jax.random.key(0)
    settings = di.Settings(low_res_fraction=0.0, warmup=5)
    return {
        "render": ("efficientnet_lite0", 32, lambda n: render.render(
            key, lite, lite_vars, obj.channel("blocks.8", 3), size=size, steps=n, progress=False).images),
        "deepinversion": ("efficientnet_lite0", 20, lambda n: di.deepinversion(
            key, lite, lite_vars, [1, 2, 3, 4], size=size, steps=n, chunk=n, settings=settings,
            progress=False).images),
        "style": ("efficientnet_lite0", 20, lambda n: transfer.transfer(
            key, lite, lite_vars, photo, painting, steps=n, progress=False).images),
        "training": ("digits_cnn", 100, lambda n: training.fit(
            key, dmodel, data.train_images, digits.one_hot(data.train_labels), steps=n)[0]),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", nargs="+", default=None)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size", type=int, default=128)
    args = parser.parse_args(argv)
    rows = []
    for name, (model, steps, run) in tasks(args.size).items():
        if args.task and name not in args.task:
            continue
        timings = {}
        for mode in loop.MODES:  # compile both first
            os.environ["JAXVIZ_LOOP_MODE"] = mode
            t0 = time.perf_counter()
            jax.block_until_ready(run(steps))
            timings[mode] = Timing(time.perf_counter() - t0, 0.0)
        for _ in range(args.rounds):
            for mode in loop.MODES:
                os.environ["JAXVIZ_LOOP_MODE"] = mode
                t0 = time.perf_counter()
                jax.block_until_ready(run(steps))
                timings[mode].runs.append(time.perf_counter() - t0)
        for t in timings.values():
            t.median_s = statistics.median(t.runs)
        rows.append(Row("loop", f"{name} (fused vs stepwise)", model, steps, "float32", timings["fused"],
                        timings["stepwise"], "stepwise", f"{args.size} px" if name != "training" else "batch 64",
                        per_run=steps))
    os.environ.pop("JAXVIZ_LOOP_MODE", None)
    report(rows, "loop", "steps/s")
    print("fused/stepwise:", {r.task.split()[0]: round(r.ratio, 2) for r in rows})


if __name__ == "__main__":
    main()
