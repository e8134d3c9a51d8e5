"""First-layer filters of the embedded default (EfficientNet-Lite0's 32 stem kernels of 3x3x3).

    python examples/filters.py [--model alexnet --weights alexnet.pth] [--out filters.png]
"""

from __future__ import annotations

import argparse

from jaxviz import models
from jaxviz.io import image
from jaxviz.representation import filters


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=models.DEFAULT_MODEL)
    p.add_argument("--weights", default="default")
    p.add_argument("--out", default="filters.png")
    args = p.parse_args(argv)
    model, variables = models.load(args.model, args.weights)
    image.save_png(args.out, filters.filter_grid(model, variables))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
