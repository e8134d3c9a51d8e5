"""Feature accentuation and caricatures on the embedded default: visualizations that keep a photo's structure.

    python examples/accentuation.py [--steps 64] [--out docs/images/accentuation.png]

Row 1: chelsea, then chelsea accentuated toward three classes it is not (Hamblin et al. 2024: the target's logit
pushed up while the activations at the middle layer are held near the photo's). Row 2: coffee and its
accentuations. Row 3: Lucid's caricature of each photo at two layers (from noise, the dot product with the
photo's activations maximized). Prints each accentuated picture's target probability before and after.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

from jaxviz import imagenet_labels, models
from jaxviz.io import image
from jaxviz.synthesis import accentuation

TARGETS = (9, 309, 949)  # ostrich, bee, strawberry
LAYERS = ("blocks.4", "blocks.8")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=accentuation.DEFAULT_STEPS)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--out", default="accentuation.png")
    args = p.parse_args(argv)

    model, variables = models.load()
    names = imagenet_labels()
    apply = jax.jit(model.apply)
    tiles, captions = [], []
    photos = {n: image.sample(n, args.size) for n in ("chelsea", "coffee")}
    for name, photo in photos.items():
        tiles.append(photo)
        captions.append(name)
        for target in TARGETS:
            out = accentuation.accentuate(jax.random.key(0), model, variables, photo, target, steps=args.steps,
                                          progress=True)
            before, after = (float(jax.nn.softmax(apply(variables, x))[0, target])
                             for x in (jnp.asarray(photo)[None], out.images))
            print(f"{name} -> {names[target]}: p = {before:.4f} -> {after:.3f}")
            tiles.append(np.asarray(out.images[0]))
            captions.append(f"+ {names[target][:16]}")
    for name, photo in photos.items():
        for layer in LAYERS:
            out = accentuation.caricature(jax.random.key(0), model, variables, photo, layer=layer,
                                          steps=4 * args.steps, progress=True)
            tiles.append(np.asarray(out.images[0]))
            captions.append(f"{name}: caricature, {layer}")
    image.save_png(args.out, image.grid(tiles, captions, cols=4, label_height=14))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
