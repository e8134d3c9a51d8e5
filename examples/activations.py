"""Activation maps: the 32 strongest channels of a layer for one photo.

    python examples/activations.py [--layer blocks.2] [--sample chelsea] [--out activations.png]
"""

from __future__ import annotations

import argparse

from jaxviz import models
from jaxviz.io import image
from jaxviz.representation import activations


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--layer", default="blocks.2")
    p.add_argument("--sample", default="chelsea")
    p.add_argument("--out", default="activations.png")
    args = p.parse_args(argv)
    model, variables = models.load()
    photo = image.sample(args.sample, model.input_size)
    grid = activations.activation_grid(model, variables, photo, args.layer, max_channels=32, order="strongest")
    image.save_png(args.out, grid)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
