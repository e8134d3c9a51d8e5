"""Data-set features, cached on disk: a folder of images or a tensorflow-datasets data set by name.

    python examples/dataset_features.py                                   # the bundled pictures, as a folder
    python examples/dataset_features.py --folder ~/photos                 # subfolders are the labels
    python examples/dataset_features.py --tfds imagenette/320px-v2 --split validation   # prepared tfds data

Runs EfficientNet-Lite0 over the data set in jitted batches with a progress bar; features of ``avgpool``
(1280-D) are cached under ``--cache`` in shards, so a second run, or one after an interruption, reads them.
Then prints each image's nearest neighbour in feature space.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from jaxviz import models
from jaxviz.io import image
from jaxviz.representation import features, neighbors


def bundled_folder(root: Path) -> Path:
    """scikit-image's 9 pictures as a folder, one subfolder (label) each."""
    for name in image.SAMPLES + image.TEXTURES + image.STYLES:
        if not (root / name / f"{name}.png").is_file():  # keep mtimes: they are part of the cache key
            image.save_png(root / name / f"{name}.png", image.sample(name, 256))
    return root


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--folder", default=None)
    p.add_argument("--tfds", default=None)
    p.add_argument("--split", default="train")
    p.add_argument("--cache", default="~/.cache/jaxviz/features")
    args = p.parse_args(argv)
    model, variables = models.load()
    if args.tfds:
        source = features.TfdsSource(args.tfds, split=args.split, size=model.input_size)
    else:
        folder = args.folder or bundled_folder(Path(args.cache).expanduser().parent / "bundled-images")
        source = features.Folder(folder, model.input_size)
    f = features.extract(model, variables, source, "avgpool", cache_dir=args.cache, progress=True)
    print(f"features {f.features.shape}, labels {f.labels.shape}")
    idx, dist = neighbors.knn(f.features, f.features, k=1, exclude_self=True)
    for i, (j, d) in enumerate(zip(idx[:, 0], dist[:, 0], strict=True)):
        print(f"{i:4d} (label {f.labels[i]}) -> {j:4d} (label {f.labels[j]}), distance {d:.2f}")


if __name__ == "__main__":
    main()
