"""DeepDream on a photo at three layers of the embedded default, one vmapped run.

    python examples/dream.py [--sample chelsea] [--out dream.png]
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

from jaxviz import models
from jaxviz.io import image
from jaxviz.synthesis import dream


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sample", default="chelsea")
    p.add_argument("--layers", default="blocks.3,blocks.8,blocks.13")
    p.add_argument("--out", default="dream.png")
    args = p.parse_args(argv)

    model, variables = models.load()
    x = jnp.asarray(image.sample(args.sample, model.input_size))
    layers = args.layers.split(",")
    out = dream.dream(jax.random.key(0), model, variables, x, layers, per_layer=True).images  # (L, 1, H, W, 3)
    tiles = [np.asarray(x)] + [np.asarray(o[0]) for o in out]
    image.save_png(args.out, image.grid(tiles, ["input"] + layers, cols=len(tiles)))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
