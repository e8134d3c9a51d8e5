"""Nearest neighbours in feature space vs pixel space, and PCA / t-SNE of the features (scikit-learn's digits).

    python examples/neighbors.py [--out neighbors.png]

Trains the small digits CNN (about 15 s), then: the label agreement of the 5 nearest training digits of
each shifted held-out digit, by features and by pixels, and a t-SNE of the held-out digits' features.
"""

from __future__ import annotations

import argparse

import jax
import numpy as np

from jaxviz.experiments import digits, digits_neighbors
from jaxviz.io import image
from jaxviz.representation import embedding, neighbors


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="neighbors.png")
    args = p.parse_args(argv)
    r = digits_neighbors.run(jax.random.key(0))
    print(f"5-NN label agreement: features {r['feature_knn_label_agreement']:.3f}, "
          f"pixels {r['pixel_knn_label_agreement']:.3f}")
    data = digits.load()
    model, variables = digits.teacher(jax.random.key(0), data)
    f = neighbors.features(model, variables, data.test_images, digits_neighbors.FEATURE_LAYER)
    pictures = [embedding.scatter(embedding.reduce(f, m), data.test_images, data.test_labels, size=600, thumb=18)
                for m in ("pca", "tsne")]
    image.save_png(args.out, image.grid([np.asarray(x) for x in pictures], ["PCA", "t-SNE"], cols=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
