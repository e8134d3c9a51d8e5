"""Feature inversion at five depths: what each layer keeps of a photo.

    python examples/feature_inversion.py [--sample chelsea] [--out inversion.png]
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

from jaxviz import models
from jaxviz.io import image
from jaxviz.synthesis import inversion


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sample", default="chelsea")
    p.add_argument("--layers", default="stem,blocks.2,blocks.5,blocks.10,blocks.13")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--out", default="inversion.png")
    args = p.parse_args(argv)

    model, variables = models.load()
    x = jnp.asarray(image.sample(args.sample, args.size))
    layers = args.layers.split(",")
    out = inversion.invert(jax.random.key(0), model, variables, x, layers)  # (L, 1, H, W, 3), one vmapped loop
    tiles = [np.asarray(x)] + [np.asarray(o[0]) for o in out.images]
    errors = [float(np.mean((t - tiles[0]) ** 2)) for t in tiles[1:]]
    captions = ["input"] + [f"{n} ({e:.3f})" for n, e in zip(layers, errors, strict=True)]
    image.save_png(args.out, image.grid(tiles, captions, cols=len(tiles)))
    print(f"wrote {args.out}; pixel MSE by layer: {dict(zip(layers, np.round(errors, 4), strict=True))}")


if __name__ == "__main__":
    main()
