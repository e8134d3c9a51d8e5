"""Pictures of attributions: heat maps, overlays, panels. NumPy in, NumPy out.

Example:
    >>> sal = jaxviz.reduce_channels(jaxviz.saliency(model, variables, x, 285))  # doctest: +SKIP
    >>> image.save_png("sal.png", overlay(x[0], sal[0]))                        # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from jaxviz.io import image as _image

__all__ = ["colorize", "overlay", "signed", "panel", "scale01"]

# Anchors of a perceptually ordered black-purple-orange-yellow map (inferno-like).
_ANCHORS = np.array([
    [0.001, 0.000, 0.014], [0.258, 0.039, 0.406], [0.576, 0.149, 0.404],
    [0.865, 0.317, 0.226], [0.988, 0.645, 0.040], [0.988, 0.998, 0.645],
])


def scale01(heat: np.ndarray, percentile: float = 99.5) -> np.ndarray:
    """Map (H, W) values to [0, 1]: min to 0, the ``percentile`` to 1 (robust to a few hot pixels)."""
    heat = np.asarray(heat, np.float64)
    if not np.all(np.isfinite(heat)):
        raise ValueError("heat map contains NaN or infinite values")
    low, high = heat.min(), np.percentile(heat, percentile)
    return np.clip((heat - low) / max(high - low, 1e-12), 0, 1).astype(np.float32)


def colorize(heat: np.ndarray, percentile: float = 99.5) -> np.ndarray:
    """(H, W) -> (H, W, 3) RGB in [0, 1] with an inferno-like colour map."""
    t = scale01(heat, percentile) * (len(_ANCHORS) - 1)
    i = np.minimum(t.astype(int), len(_ANCHORS) - 2)
    frac = (t - i)[..., None]
    return ((1 - frac) * _ANCHORS[i] + frac * _ANCHORS[i + 1]).astype(np.float32)


def signed(maps: np.ndarray) -> np.ndarray:
    """(H, W, 3) gradient-type map -> RGB centred on grey (0.5), as guided-backprop figures show them."""
    maps = np.asarray(maps, np.float64)
    scale = np.percentile(np.abs(maps), 99.5) or 1.0
    return np.clip(0.5 + 0.5 * maps / scale, 0, 1).astype(np.float32)


def overlay(img: np.ndarray, heat: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend a colourized (H, W) heat map over an (H, W, 3) image in [0, 1]."""
    img = np.asarray(img, np.float32)
    if img.shape[:2] != np.shape(heat):
        raise ValueError(f"heat map {np.shape(heat)} does not match the image {img.shape[:2]}")
    return (1 - alpha) * img + alpha * colorize(heat)


def panel(img: np.ndarray, heats: Mapping[str, np.ndarray], alpha: float = 0.5) -> np.ndarray:
    """The image, then one overlay per named (H, W) map, side by side with captions."""
    tiles = [np.asarray(img, np.float32)] + [overlay(img, h, alpha) for h in heats.values()]
    return _image.grid(tiles, ["input", *heats], cols=len(tiles))
