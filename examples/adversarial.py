"""A fooling image, FGSM and PGD on one photo: what 8/255 of change does to the prediction.

    python examples/adversarial.py [--sample chelsea] [--target 9] [--out adversarial.png]
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

from jaxviz import imagenet_labels, models
from jaxviz.io import image
from jaxviz.synthesis import adversarial


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sample", default="chelsea")
    p.add_argument("--target", type=int, default=9)
    p.add_argument("--out", default="adversarial.png")
    args = p.parse_args(argv)

    model, variables = models.load()
    names = imagenet_labels()
    x = jnp.asarray(image.sample(args.sample, model.input_size))[None]
    label = int(jnp.argmax(model.apply(variables, x)[0]))
    fooled = adversarial.fool(model, variables, x, args.target)
    fgsm = adversarial.fgsm(model, variables, x, label, 8 / 255)
    pgd = adversarial.pgd(jax.random.key(0), model, variables, x, label, radius=8 / 255, step_size=2 / 255, steps=10)
    tiles, captions = [np.asarray(x[0])], [f"input: {names[label]}"]
    for name, im in [("fooled", fooled.images), ("FGSM", fgsm), ("PGD", pgd)]:
        pred = int(jnp.argmax(model.apply(variables, im)[0]))
        tiles.append(np.asarray(im[0]))
        captions.append(f"{name}: {names[pred]}")
    image.save_png(args.out, image.grid(tiles, captions, cols=4))
    print(f"wrote {args.out}; fooling took {int(fooled.steps[0])} steps, Linf {float(fooled.linf[0]) * 255:.1f}/255")


if __name__ == "__main__":
    main()
