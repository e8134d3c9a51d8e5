"""From a saliency map to an object mask, with GrabCut (weakly supervised segmentation).

Simonyan et al. seed GrabCut with the most salient pixels as foreground and the
least salient as background, then let its colour models decide the rest. OpenCV's
GrabCut does the segmentation.

Reference: Simonyan et al., "Deep Inside Convolutional Networks", ICLR 2014
workshop, section 6; Rother et al., "GrabCut", SIGGRAPH 2004.
"""

from __future__ import annotations

import numpy as np

__all__ = ["saliency_to_mask"]


def _cv2():
    try:
        import cv2
    except ImportError:  # pragma: no cover - a dependency, but keep the message actionable
        raise ImportError("saliency_to_mask needs OpenCV: pip install opencv-python-headless") from None
    return cv2


def saliency_to_mask(img: np.ndarray, saliency: np.ndarray, *, foreground: float = 0.95,
                     background: float = 0.30, iterations: int = 5) -> np.ndarray:
    """A boolean object mask from an image and its (H, W) saliency map.

    Args:
        img: (H, W, 3) RGB in [0, 1].
        saliency: (H, W) non-negative map, e.g. ``reduce_channels(saliency(...))[b]``.
        foreground: quantile above which pixels are seeded as sure foreground.
        background: quantile below which pixels are seeded as sure background.
        iterations: GrabCut iterations.

    Returns:
        (H, W) bool, True on the object.
    """
    cv2 = _cv2()
    img = np.asarray(img, np.float32)
    sal = np.asarray(saliency, np.float64)
    if img.ndim != 3 or img.shape[-1] != 3 or sal.shape != img.shape[:2]:
        raise ValueError(f"need an (H, W, 3) image and an (H, W) map; got {img.shape} and {sal.shape}")
    if not np.all(np.isfinite(sal)):
        raise ValueError("saliency map contains NaN or infinite values")
    if not 0 < background < foreground < 1:
        raise ValueError(f"need 0 < background < foreground < 1, got {background}, {foreground}")
    hi, mid, lo = np.quantile(sal, [foreground, 0.5 * (foreground + background), background])
    seeds = np.where(sal >= mid, cv2.GC_PR_FGD, cv2.GC_PR_BGD).astype(np.uint8)
    seeds[sal >= hi] = cv2.GC_FGD
    seeds[sal <= lo] = cv2.GC_BGD
    bgr = np.ascontiguousarray((np.clip(img, 0, 1) * 255).astype(np.uint8)[..., ::-1])
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.grabCut(bgr, seeds, None, bgd, fgd, iterations, cv2.GC_INIT_WITH_MASK)
    return (seeds == cv2.GC_FGD) | (seeds == cv2.GC_PR_FGD)
