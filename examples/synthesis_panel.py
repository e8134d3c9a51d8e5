"""The README's synthesis figure: DeepDream, class models, a fooling image, feature inversion.

    python examples/synthesis_panel.py [--out synthesis.png]
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxviz import imagenet_labels, models
from jaxviz.io import image
from jaxviz.synthesis import adversarial, classviz, dream, inversion


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="synthesis.png")
    args = p.parse_args(argv)

    model, variables = models.load()
    names = imagenet_labels()
    key = jax.random.key(0)
    x = jnp.asarray(image.sample("chelsea", model.input_size))
    tiles, captions = [np.asarray(x)], ["input"]
    t0 = time.perf_counter()
    tiles.append(np.asarray(dream.dream(key, model, variables, x, "blocks.8").images[0]))
    captions.append("DeepDream, blocks.8")
    fooled = adversarial.fool(model, variables, x[None], 9)
    tiles.append(np.asarray(fooled.images[0]))
    captions.append(f"fooled: {names[int(fooled.pred[0])]} ({float(fooled.linf[0]) * 255:.0f}/255)")
    small = jnp.asarray(image.sample("chelsea", 128))
    inv = inversion.invert(key, model, variables, small, ["blocks.2", "blocks.10"])
    for layer, im in zip(["blocks.2", "blocks.10"], inv.images[:, 0], strict=True):
        tiles.append(np.asarray(jax.image.resize(im, (224, 224, 3), "bilinear")))
        captions.append(f"inverted from {layer}")
    classes = [9, 130, 949]
    cls = classviz.class_visualization(key, model, variables, classes)
    tiles += list(np.asarray(cls.images[:, 0]))
    captions += [f"class model: {names[c]}" for c in classes]
    image.save_png(args.out, image.grid(tiles, captions, cols=4, label_height=16))
    print(f"wrote {args.out} in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
