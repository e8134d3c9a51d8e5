"""PCA and t-SNE of features to 2-D, drawn as a scatter plot of thumbnails.

The reductions are scikit-learn's (``PCA``, ``TSNE``); :func:`scatter` places
each image's thumbnail at its 2-D point on a white canvas, with a coloured
frame per label, so clusters of one class show as patches of one colour.

Example:
    >>> xy = reduce(features, "tsne", seed=0)                          # doctest: +SKIP
    >>> image.save_png("tsne.png", scatter(xy, thumbnails, labels))    # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from jaxviz.io import image

__all__ = ["reduce", "scatter", "PALETTE"]

#: frame colours, one per label (cycled).
PALETTE = ((0.12, 0.47, 0.71), (1.0, 0.5, 0.05), (0.17, 0.63, 0.17), (0.84, 0.15, 0.16), (0.58, 0.4, 0.74),
           (0.55, 0.34, 0.29), (0.89, 0.47, 0.76), (0.5, 0.5, 0.5), (0.74, 0.74, 0.13), (0.09, 0.75, 0.81))


def reduce(features, method: str = "pca", seed: int = 0, perplexity: float = 30.0) -> np.ndarray:
    """(N, D) -> (N, 2) with scikit-learn's PCA or t-SNE (PCA-initialized; perplexity capped below N)."""
    x = np.asarray(features, np.float64).reshape(len(features), -1)
    if len(x) < 3:
        raise ValueError(f"need at least 3 points to embed, got {len(x)}")
    if method == "pca":
        from sklearn.decomposition import PCA

        return PCA(n_components=2, random_state=seed).fit_transform(x).astype(np.float32)
    if method == "tsne":
        from sklearn.manifold import TSNE

        tsne = TSNE(n_components=2, perplexity=min(perplexity, (len(x) - 1) / 3), init="pca", random_state=seed)
        return tsne.fit_transform(x).astype(np.float32)
    raise ValueError(f"method must be 'pca' or 'tsne', got {method!r}")


def scatter(points, thumbnails, labels=None, *, size: int = 800, thumb: int = 40, frame: int = 2) -> np.ndarray:
    """Thumbnails (N, h, w, 3) in [0, 1] at 2-D ``points`` (N, 2) on a (size, size) white canvas."""
    points = np.asarray(points, np.float64)
    if points.ndim != 2 or points.shape[1] != 2 or len(points) != len(thumbnails):
        raise ValueError(f"need (N, 2) points for N thumbnails, got {points.shape} for {len(thumbnails)}")
    lo, hi = points.min(0), points.max(0)
    span = np.where(hi - lo > 0, hi - lo, 1.0)
    room = size - thumb - 2 * frame
    xy = ((points - lo) / span * room).astype(int) + frame
    canvas = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(canvas)
    for i, (x, y) in enumerate(xy):
        y = room - y + 2 * frame  # y up
        if labels is not None:
            colour = tuple(int(255 * c) for c in PALETTE[int(labels[i]) % len(PALETTE)])
            draw.rectangle((x - frame, y - frame, x + thumb + frame - 1, y + thumb + frame - 1), fill=colour)
        canvas.paste(image.to_pil(image.resize(np.asarray(thumbnails[i], np.float32), thumb, thumb)), (x, y))
    return np.asarray(canvas, np.float32) / 255.0
