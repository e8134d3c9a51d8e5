"""Classify scikit-image's sample photos with the embedded default and save a labeled grid.

    python examples/classify.py [--model resnet50] [--out docs/images/classify.png]
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

import jaxviz
from jaxviz import models
from jaxviz.io import image


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=models.DEFAULT_MODEL)
    p.add_argument("--out", default="classify.png")
    args = p.parse_args(argv)

    model, variables = models.load(args.model)
    photos = np.stack([image.sample(name, model.input_size) for name in image.SAMPLES])
    logits = jax.jit(model.apply)(variables, jnp.asarray(photos))
    best = [preds[0] for preds in jaxviz.top_k(model, logits, k=1)]
    captions = [f"{b['label']} {b['prob']:.0%}" for b in best]
    for name, caption in zip(image.SAMPLES, captions, strict=True):
        print(f"{name:10s} {caption}")
    image.save_png(args.out, image.grid(list(photos), captions, cols=len(photos), label_height=16))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
