"""Image I/O at jaxviz's boundary: NHWC float32 RGB in [0, 1].

Loading accepts any PIL mode (palette, grey, RGBA, 16-bit) and turns it into
RGB; a missing, unreadable, truncated or degenerate file raises ValueError
naming the file and the problem.

Example:
    >>> img = load_image("cat.jpg", size=224)      # doctest: +SKIP
    >>> save_png("out.png", img)                  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont, UnidentifiedImageError

__all__ = [
    "SAMPLES", "TEXTURES", "load_image", "sample", "to_pil", "resize", "center_crop", "prepare",
    "save_png", "grid", "LUMA",
]

#: scikit-image's bundled photos and textures.
SAMPLES = ("chelsea", "coffee", "astronaut", "rocket")
TEXTURES = ("brick", "grass", "gravel")
STYLES = ("immunohistochemistry", "hubble_deep_field")  # style sources for style transfer
MIN_SIDE = 8
#: ITU-R BT.601 luma weights: ``rgb @ LUMA`` is an image's luminance.
LUMA = np.array([0.299, 0.587, 0.114])
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def _from_pil(img: Image.Image, source: str) -> np.ndarray:
    if min(img.size) < MIN_SIDE:
        raise ValueError(f"{source}: image is {img.size[0]}x{img.size[1]} pixels; need at least {MIN_SIDE}x{MIN_SIDE}")
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit greyscale (PIL reads 16-bit PNGs as "I" or "I;16"): scaled by the type's range, 65535, not by
        # the picture's own maximum, so a dark picture stays dark.
        arr = np.asarray(img, np.float32)
        return np.repeat(np.clip(arr / 65535.0, 0.0, 1.0)[..., None], 3, axis=-1)
    if img.mode in ("RGBA", "LA", "P", "PA"):
        img = img.convert("RGBA")
        white = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, img)
    return np.asarray(img.convert("RGB"), np.float32) / 255.0


def load_image(path: str | os.PathLike, size: int | None = None) -> np.ndarray:
    """Reads an image file as (H, W, 3) float32 RGB in [0, 1].

    Args:
        path: any format PIL reads. Transparency is composited on white.
        size: if given, resize the short side to ``size`` and center-crop to
            ``size`` x ``size`` (see :func:`prepare`).

    Raises:
        ValueError: the file is missing, not an image, truncated, or tiny.
    """
    source = str(path)
    if not Path(path).is_file():
        raise ValueError(f"{source}: no such file")
    try:
        with Image.open(path) as img:
            img.load()
            arr = _from_pil(img, source)
    except UnidentifiedImageError:
        raise ValueError(f"{source}: not an image PIL can read") from None
    except (OSError, SyntaxError) as e:
        raise ValueError(f"{source}: unreadable or truncated image ({e})") from None
    return prepare(arr, size) if size else arr


def list_images(folder: str | os.PathLike) -> list[Path]:
    """The image files (by suffix, :data:`IMAGE_SUFFIXES`) in ``folder`` and its subfolders, sorted."""
    root = Path(folder)
    if not root.is_dir():
        raise ValueError(f"{folder}: no such folder")
    paths = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise ValueError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)})")
    return paths


def load_folder(folder: str | os.PathLike, size: int) -> np.ndarray:
    """Every image in ``folder`` (see :func:`list_images`), resized and center-cropped: (N, size, size, 3)."""
    return np.stack([load_image(p, size) for p in list_images(folder)])


def sample(name: str, size: int | None = None) -> np.ndarray:
    """One of scikit-image's bundled photos or textures, as (H, W, 3) in [0, 1]."""
    if name not in SAMPLES + TEXTURES + STYLES:
        raise ValueError(f"unknown sample {name!r}; samples: {', '.join(SAMPLES + TEXTURES + STYLES)}")
    import skimage.data

    arr = np.asarray(getattr(skimage.data, name)(), np.float32) / 255.0
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=-1)
    return prepare(arr, size) if size else arr


#: the side of the bundled pictures that :func:`sample_crops` cuts from (the unit of :func:`sample_crop_boxes`)
CROP_SOURCE_SIDE = 320


def sample_crop_boxes(per_image: int = 6, seed: int = 0) -> np.ndarray:
    """Where :func:`sample_crops` cuts (same ``per_image`` and ``seed``): (9 * per_image, 5) ints, one row per
    crop: the picture's index in ``SAMPLES + TEXTURES + STYLES``, top, left and side in its
    :data:`CROP_SOURCE_SIDE` px version, and 1 where the crop is mirrored. Pass it as ``origins`` to
    :func:`jaxviz.representation.patches.top_patches`, which then skips patches of the same spot of one picture."""
    if per_image < 1:
        raise ValueError(f"per_image must be at least 1, got {per_image}")
    rng = np.random.default_rng(seed)
    boxes = []
    for source in range(len(SAMPLES + TEXTURES + STYLES)):
        for _ in range(per_image):
            side = int(rng.integers(80, 241))
            top, left = rng.integers(0, CROP_SOURCE_SIDE - side + 1, 2)
            boxes.append((source, top, left, side, int(rng.random() < 0.5)))
    return np.asarray(boxes, np.int64)


def sample_crops(per_image: int = 6, size: int = 128, seed: int = 0) -> np.ndarray:
    """Random square crops of every bundled picture (photos, textures, styles) from 320 px versions, each a
    random quarter to three quarters of the side and mirrored at random, resized to ``size``:
    (9 * per_image, size, size, 3), a small, varied data set for data-set tools without a download
    (:func:`sample_crop_boxes`: where each was cut)."""
    names = SAMPLES + TEXTURES + STYLES
    big = {}
    crops = []
    for source, top, left, side, mirrored in sample_crop_boxes(per_image, seed):
        if source not in big:
            big[source] = sample(names[source], CROP_SOURCE_SIDE)
        piece = resize(big[source][top:top + side, left:left + side], size, size)
        crops.append(piece[:, ::-1] if mirrored else piece)
    return np.stack(crops)


def to_pil(image: np.ndarray) -> Image.Image:
    """(H, W, 3) or (H, W) in [0, 1] -> 8-bit PIL image (values are clipped)."""
    arr = np.asarray(image, np.float32)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] != 3):
        raise ValueError(f"expected (H, W, 3) or (H, W), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("image contains NaN or infinite values")
    return Image.fromarray(np.round(np.clip(arr, 0.0, 1.0) * 255).astype(np.uint8))


def resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of (H, W, 3) in [0, 1] (PIL's, on float32 data)."""
    arr = np.asarray(image, np.float32)
    channels = [Image.fromarray(arr[..., c], mode="F").resize((width, height), Image.BILINEAR)
                for c in range(arr.shape[-1])]
    return np.stack([np.asarray(c, np.float32) for c in channels], axis=-1)


def center_crop(image: np.ndarray, height: int, width: int | None = None) -> np.ndarray:
    width = width or height
    h, w = image.shape[:2]
    top, left = max((h - height) // 2, 0), max((w - width) // 2, 0)
    return image[top:top + height, left:left + width]


def prepare(image: np.ndarray, size: int) -> np.ndarray:
    """Resize the short side to ``size`` then center-crop a ``size`` square."""
    h, w = image.shape[:2]
    scale = size / min(h, w)
    image = resize(image, max(size, round(h * scale)), max(size, round(w * scale)))
    return center_crop(image, size)


def save_png(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Writes (H, W, 3) or (H, W) in [0, 1] as PNG, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    to_pil(image).save(tmp, format="PNG")
    os.replace(tmp, path)
    return path


def grid(images: Sequence[np.ndarray] | np.ndarray, labels: Sequence[str] | None = None, *,
         cols: int | None = None, pad: int = 4, label_height: int = 14) -> np.ndarray:
    """Tiles images (each (H, W, 3) in [0, 1], same size) into one, with optional captions.

    Returns:
        (rows * (H + label + pad) + pad, cols * (W + pad) + pad, 3) in [0, 1],
        white background.
    """
    images = [np.asarray(i, np.float32) for i in images]
    if not images:
        raise ValueError("grid needs at least one image")
    images = [np.repeat(i[..., None], 3, -1) if i.ndim == 2 else i for i in images]
    h, w = images[0].shape[:2]
    if any(i.shape[:2] != (h, w) for i in images):
        raise ValueError("grid images must all have the same size")
    if labels is not None and len(labels) != len(images):
        raise ValueError(f"{len(labels)} labels for {len(images)} images")
    cols = cols or int(np.ceil(np.sqrt(len(images))))
    rows = int(np.ceil(len(images) / cols))
    lh = label_height if labels is not None else 0
    canvas = Image.new("RGB", (cols * (w + pad) + pad, rows * (h + lh + pad) + pad), "white")
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    for k, img in enumerate(images):
        r, c = divmod(k, cols)
        x, y = pad + c * (w + pad), pad + r * (h + lh + pad)
        canvas.paste(to_pil(img), (x, y))
        if labels is not None:
            draw.text((x, y + h + 1), str(labels[k])[: max(w // 6, 4)], fill="black", font=font)
    return np.asarray(canvas, np.float32) / 255.0
