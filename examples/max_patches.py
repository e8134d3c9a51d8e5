"""Maximally activating patches: for a few channels, the crops of the bundled images that excite them most.

    python examples/max_patches.py [--layer blocks.4] [--channels 3,17,30] [--out patches.png]

The "data set" is 12 random 160 px crops of each of scikit-image's 9 bundled pictures, at 128 px; for a
folder of your own images use ``jaxviz.io.image.load_folder(DIR, 224)`` instead.
"""

from __future__ import annotations

import argparse

from jaxviz import models
from jaxviz.io import image
from jaxviz.representation import patches


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--layer", default="blocks.4")
    p.add_argument("--channels", default="3,17,30")
    p.add_argument("--k", type=int, default=8)
    p.add_argument("--out", default="patches.png")
    args = p.parse_args(argv)
    model, variables = models.load()
    data, origins = image.sample_crops(per_image=12), image.sample_crop_boxes(per_image=12)
    tiles, captions = [], []
    for channel in (int(c) for c in args.channels.split(",")):
        r = patches.top_patches(model, variables, data, args.layer, channel, k=args.k, origins=origins)
        tiles += [image.resize(x, 64, 64) for x in r.patches]
        captions += [f"ch {channel}: {v:.2f}" for v in r.value]
    image.save_png(args.out, image.grid(tiles, captions, cols=args.k))
    print(f"wrote {args.out} (receptive field {r.field.size} px, stride {r.field.stride})")


if __name__ == "__main__":
    main()
