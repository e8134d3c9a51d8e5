"""Pictures of attributions: heat maps, overlays, panels. NumPy in, NumPy out.

Example:
    >>> sal = jaxviz.reduce_channels(jaxviz.saliency(model, variables, x, 285))  # doctest: +SKIP
    >>> image.save_png("sal.png", overlay(x[0], sal[0]))                        # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from jaxviz.io import image as _image

__all__ = ["colorize", "overlay", "signed", "panel", "transparent", "scale01", "line_chart", "COLOURS"]

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


def transparent(img: np.ndarray, importance: np.ndarray, background: float = 1.0, percentile: float = 99.0
                ) -> np.ndarray:
    """An (H, W, 3) picture shown through an (H, W) importance map as its opacity, over a plain ``background``
    (MACO's transparency view: where the picture does not matter to the objective, it fades out)."""
    img = np.asarray(img, np.float32)
    if img.shape[:2] != np.shape(importance):
        raise ValueError(f"importance map {np.shape(importance)} does not match the image {img.shape[:2]}")
    alpha = scale01(importance, percentile)[..., None]
    return alpha * img + (1 - alpha) * np.float32(background)


#: distinguishable line colours (RGB in [0, 1]), cycled by :func:`line_chart`.
COLOURS = ((0.12, 0.47, 0.71), (1.0, 0.50, 0.05), (0.17, 0.63, 0.17), (0.84, 0.15, 0.16), (0.58, 0.40, 0.74),
           (0.55, 0.34, 0.29), (0.89, 0.47, 0.76), (0.50, 0.50, 0.50), (0.74, 0.74, 0.13), (0.09, 0.75, 0.81),
           (0.10, 0.10, 0.45), (0.0, 0.40, 0.35), (0.0, 0.0, 0.0), (0.98, 0.60, 0.60))


def line_chart(curves: Mapping[str, tuple[Sequence[float], Sequence[float]]], *, title: str = "",
               x_label: str = "", y_range: tuple[float, float] | None = None, size: tuple[int, int] = (320, 240),
               legend: bool = True) -> np.ndarray:
    """Curves ``{name: (x, y)}`` drawn as lines on white, axes and a legend: (H, W, 3) in [0, 1] (PIL only)."""
    from PIL import Image, ImageDraw, ImageFont

    if not curves:
        raise ValueError("line_chart needs at least one curve")
    xs = np.concatenate([np.asarray(x, np.float64) for x, _ in curves.values()])
    ys = np.concatenate([np.asarray(y, np.float64) for _, y in curves.values()])
    if not (np.all(np.isfinite(xs)) and np.all(np.isfinite(ys))):
        raise ValueError("curves contain NaN or infinite values")
    (x0, x1), (y0, y1) = (xs.min(), xs.max()), y_range or (ys.min(), ys.max())
    x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 1)
    w, h = size
    left, right, top, bottom = 34, 8, 18, 30
    canvas = Image.new("RGB", (w, h), "white")
    draw, font = ImageDraw.Draw(canvas), ImageFont.load_default()

    def at(x, y):
        return (left + (x - x0) / (x1 - x0) * (w - left - right),
                h - bottom - (y - y0) / (y1 - y0) * (h - top - bottom))

    draw.rectangle([left, top, w - right, h - bottom], outline=(0, 0, 0))
    for value, anchor in ((y0, "rm"), (y1, "rm")):
        draw.text((left - 3, at(x0, value)[1]), f"{value:.2g}", fill="black", font=font, anchor=anchor)
    for value, anchor in ((x0, "lt"), (x1, "rt")):
        draw.text((at(value, y0)[0], h - bottom + 3), f"{value:.2g}", fill="black", font=font, anchor=anchor)
    draw.text((w // 2, h - 4), x_label, fill="black", font=font, anchor="mb")
    draw.text((w // 2, 3), title, fill="black", font=font, anchor="mt")
    for k, (name, (x, y)) in enumerate(curves.items()):
        colour = tuple(int(255 * c) for c in COLOURS[k % len(COLOURS)])
        points = [at(a, b) for a, b in zip(np.asarray(x, np.float64), np.asarray(y, np.float64), strict=True)]
        draw.line(points, fill=colour, width=2) if len(points) > 1 else draw.point(points, fill=colour)
        if legend:
            draw.line([(w - right - 70, top + 6 + 11 * k), (w - right - 58, top + 6 + 11 * k)], fill=colour, width=2)
            draw.text((w - right - 55, top + 6 + 11 * k), name[:10], fill="black", font=font, anchor="lm")
    return np.asarray(canvas, np.float32) / 255.0
