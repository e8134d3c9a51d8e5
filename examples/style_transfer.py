"""Gram losses on the embedded default: a texture, a Gatys style transfer and a fast (feed-forward) one.

    python examples/style_transfer.py [--out style.png] [--train-steps 200]

The style is scikit-image's immunohistochemistry slide, the content chelsea; the texture source is brick.
About 2 minutes on 2 CPU cores (most of it training the feed-forward network).
"""

from __future__ import annotations

import argparse

import jax
import numpy as np

from jaxviz import models
from jaxviz.io import image
from jaxviz.style import fast as fast_style
from jaxviz.style import texture
from jaxviz.style import transfer as style


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="style.png")
    p.add_argument("--size", type=int, default=192)
    p.add_argument("--train-steps", type=int, default=200)
    args = p.parse_args(argv)

    model, variables = models.load()
    key = jax.random.key(0)
    content = image.sample("chelsea", args.size)
    painting = image.sample("immunohistochemistry", args.size)
    brick = image.sample("brick", 128)

    tex = texture.synthesize(key, model, variables, brick, size=args.size, progress=True)
    gatys = style.transfer(key, model, variables, content, painting, progress=True)
    kept = style.transfer(key, model, variables, content, painting, preserve_colors=True, progress=True)
    trained = fast_style.train(key, model, variables, painting, fast_style.builtin_images(128),
                               steps=args.train_steps, progress=True)
    fast = fast_style.stylize(trained.stylizer, content)

    panels = [image.resize(brick, args.size, args.size), tex.images[0], content, painting, gatys.images[0],
              kept.images[0], fast]
    captions = ["texture source", "synthesized texture", "content", "style", "Gatys transfer",
                "colours preserved", f"fast ({args.train_steps} steps)"]
    image.save_png(args.out, image.grid([np.asarray(x) for x in panels], captions, cols=4, label_height=14))
    print(f"wrote {args.out}: texture style loss {tex.style_loss_start[0]:.3g} -> {tex.style_loss_end[0]:.3g}, "
          f"transfer {gatys.style_loss_start[0]:.3g} -> {gatys.style_loss_end[0]:.3g}")


if __name__ == "__main__":
    main()
