"""Feature visualization: eight channels of one layer, rendered in one vmapped loop (Lucid's recipe).

    python examples/feature_visualization.py [--layer blocks.8] [--steps 256] [--out channels.png]
"""

from __future__ import annotations

import argparse

import jax
import numpy as np

from jaxviz import models
from jaxviz.core import objectives as obj
from jaxviz.io import image
from jaxviz.synthesis import render


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--layer", default="blocks.8")
    p.add_argument("--channels", default="0,1,2,3,4,5,6,7")
    p.add_argument("--steps", type=int, default=256)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--out", default="channels.png")
    args = p.parse_args(argv)

    model, variables = models.load()
    channels = [int(c) for c in args.channels.split(",")]
    # Objectives that differ only in the channel index share one compiled, vmapped loop.
    objectives = [obj.channel(args.layer, c) - 0.05 * obj.total_variation() for c in channels]
    out = render.render_many(jax.random.key(0), model, variables, objectives, size=args.size, steps=args.steps)
    tiles = [np.asarray(im[0]) for im in out.images]
    image.save_png(args.out, image.grid(tiles, [f"{args.layer}:{c}" for c in channels], cols=4))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
