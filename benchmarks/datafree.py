"""Data-free synthesis on the digits: Fast-DFKD's generator vs DeepInversion, same teacher, same run.

    python benchmarks/datafree.py                         # DeepInversion 300 steps vs the generator's 20 rounds
    python benchmarks/datafree.py --rounds 8 12 20 --repeats 3

One process trains the digits teacher (``jaxviz distill --digits``'s recipe), then synthesizes the same 400
targets (40 per digit) with DeepInversion (the digits settings, ``--di-steps``) and with the meta-learned
generator (``--rounds`` each), and distils the same fresh student on each image set with the same key and
steps. Every synthesis is timed as a whole, wall clock, compilation included (the first call, what a user
waits for), and again on a second, warm call (the steady state; the generator's warm time is the median of
``--repeats``). The student's accuracy is on the 359 held-out real digits. The ratios are DeepInversion's time
over the generator's: above 1, the generator is faster.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from jaxviz.datafree import deepinversion as di  # noqa: E402
from jaxviz.datafree import generator  # noqa: E402
from jaxviz.datafree.distill import distill  # noqa: E402
from jaxviz.experiments import digits  # noqa: E402
from jaxviz.experiments.digits_distill import DIGITS_GENERATOR, DIGITS_SETTINGS  # noqa: E402
from jaxviz.models import digits_cnn as digits_model  # noqa: E402

from harness import RESULTS, device_name  # noqa: E402


def timed(fn):
    """``(seconds, result)`` of ``fn()``, synced on its images."""
    start = time.perf_counter()
    out = fn()
    jax.block_until_ready(out.images)
    return time.perf_counter() - start, out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, nargs="+", default=[20], help="generator rounds to try")
    p.add_argument("--di-steps", type=int, default=300, help="DeepInversion steps (the digits experiment's)")
    p.add_argument("--images-per-class", type=int, default=40)
    p.add_argument("--student-steps", type=int, default=2000)
    p.add_argument("--repeats", type=int, default=3, help="warm generator runs (median)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(RESULTS / "datafree.json"))
    args = p.parse_args(argv)

    k_teacher, k_di, k_gen, k_student, k_adv = jax.random.split(jax.random.key(args.seed), 5)
    data = digits.load()
    teacher, teacher_vars = digits.teacher(k_teacher, data, steps=digits.TEACHER_STEPS)
    student = digits_model.build()
    targets = np.tile(np.arange(10), args.images_per_class)

    def score(images):
        student_vars = distill(k_student, teacher, teacher_vars, student, images, steps=args.student_steps)
        return digits.accuracy(student, student_vars, data.test_images, data.test_labels)

    def deepinversion():
        return di.deepinversion(k_di, teacher, teacher_vars, targets, steps=args.di_steps,
                                settings=DIGITS_SETTINGS, progress=False)

    rows = []
    cold, out = timed(deepinversion)
    warm, _ = timed(deepinversion)
    rows.append({"synth": "deepinversion", "steps": args.di_steps, "cold_s": cold, "warm_s": warm,
                 "student_acc": score(out.images)})
    print(json.dumps(rows[-1]), flush=True)
    adversary = (student, student.init(k_adv, digits_model.INPUT_SIZE))
    for rounds in args.rounds:
        def synthesize(rounds=rounds):
            return generator.synthesize(k_gen, teacher, teacher_vars, targets, rounds=rounds, student=adversary,
                                        settings=DIGITS_GENERATOR, progress=False)
        jax.clear_caches()  # each row's cold time compiles its own programs
        cold, out = timed(synthesize)
        warm = statistics.median(timed(synthesize)[0] for _ in range(args.repeats))
        rows.append({"synth": "generator", "rounds": rounds, "cold_s": cold, "warm_s": warm,
                     "student_acc": score(out.images)})
        print(json.dumps(rows[-1]), flush=True)
    base = rows[0]
    print("\n| synthesis | cold s | warm s | student acc | DI / this, cold | DI / this, warm |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        name = f"DeepInversion, {r['steps']} steps" if r["synth"] == "deepinversion" else \
            f"generator, {r['rounds']} rounds"
        print(f"| {name} | {r['cold_s']:.1f} | {r['warm_s']:.1f} | {r['student_acc']:.3f} | "
              f"{base['cold_s'] / r['cold_s']:.1f}x | {base['warm_s'] / r['warm_s']:.1f}x |")
    result = {"device": device_name(), "jax": jax.__version__, "images": len(targets),
              "student_steps": args.student_steps, "rows": rows}
    Path(args.out).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
