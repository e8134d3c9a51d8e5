"""Image I/O: every PIL mode to RGB in [0, 1], clear errors for bad files."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from jaxviz.io import image


@pytest.mark.parametrize("mode", ["RGB", "L", "P", "RGBA", "LA", "CMYK", "I;16", "1"])
def test_any_mode_loads_as_rgb_in_unit_range(tmp_path, mode):
    rgb = Image.fromarray((np.random.default_rng(0).uniform(size=(20, 30, 3)) * 255).astype(np.uint8))
    src = rgb.convert(mode) if mode != "I;16" else Image.fromarray(np.arange(600, dtype=np.uint16).reshape(20, 30))
    ext = "tiff" if mode in ("CMYK", "I;16") else "png"
    src.save(tmp_path / f"x.{ext}")
    arr = image.load_image(tmp_path / f"x.{ext}")
    assert arr.shape == (20, 30, 3) and arr.dtype == np.float32
    assert 0.0 <= arr.min() and arr.max() <= 1.0


def test_16_bit_greyscale_is_scaled_by_65535_so_dark_stays_dark(tmp_path):
    levels = np.array([[0, 1000], [4000, 8000]], np.uint16).repeat(8, 0).repeat(8, 1)
    Image.fromarray(levels).save(tmp_path / "dark16.png")  # a 16-bit greyscale PNG
    arr = image.load_image(tmp_path / "dark16.png")
    np.testing.assert_allclose(arr[::8, ::8, 0], levels[::8, ::8] / 65535, rtol=1e-6)
    assert np.all(arr[..., 0] == arr[..., 2])


def test_transparency_is_composited_on_white(tmp_path):
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[..., 0] = 255  # red everywhere; opaque, half and fully transparent columns
    rgba[:, :6, 3], rgba[:, 6:11, 3], rgba[:, 11:, 3] = 255, 128, 0
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    arr = image.load_image(tmp_path / "a.png")
    np.testing.assert_allclose(arr[0, 0], [1, 0, 0])
    np.testing.assert_allclose(arr[0, 8], [1, 127 / 255, 127 / 255], atol=1 / 255)
    np.testing.assert_allclose(arr[0, 15], [1, 1, 1])


def test_rgb_values_survive_a_png_round_trip(tmp_path):
    arr = np.random.default_rng(1).integers(0, 256, (16, 12, 3)).astype(np.float32) / 255
    image.save_png(tmp_path / "a.png", arr)
    np.testing.assert_array_equal(image.load_image(tmp_path / "a.png"), arr)


def test_prepare_resizes_short_side_and_center_crops():
    out = image.prepare(np.zeros((300, 451, 3), np.float32), 224)
    assert out.shape == (224, 224, 3)
    assert image.sample("chelsea", 96).shape == (96, 96, 3)


@pytest.mark.parametrize("name", image.SAMPLES + image.TEXTURES)
def test_samples_are_rgb(name):
    arr = image.sample(name)
    assert arr.ndim == 3 and arr.shape[-1] == 3 and arr.max() <= 1.0


def test_grid_tiles_with_labels():
    tiles = [np.full((10, 12, 3), v, np.float32) for v in (0.0, 0.5, 1.0)]
    out = image.grid(tiles, ["a", "b", "c"], cols=2, pad=2, label_height=5)
    assert out.shape == (2 * (10 + 5 + 2) + 2, 2 * (12 + 2) + 2, 3)
    np.testing.assert_allclose(out[2:12, 16:28], 0.5, atol=1 / 255)  # second tile in place


@pytest.mark.parametrize("content, problem", [
    (None, "no such file"),
    (b"hello, not an image", "not an image"),
    ("truncated", "truncated"),
    ("tiny", "at least"),
])
def test_bad_files_are_clear_errors(tmp_path, content, problem):
    path = tmp_path / "bad.png"
    if content == "truncated":
        Image.new("RGB", (64, 64), "red").save(tmp_path / "full.jpg", quality=95)
        data = (tmp_path / "full.jpg").read_bytes()
        path = tmp_path / "bad.jpg"
        path.write_bytes(data[: len(data) // 3])
    elif content == "tiny":
        Image.new("RGB", (1, 1)).save(path)
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(ValueError, match=problem):
        image.load_image(path)


def test_nan_images_are_refused_when_saving(tmp_path):
    with pytest.raises(ValueError, match="NaN"):
        image.save_png(tmp_path / "n.png", np.full((8, 8, 3), np.nan, np.float32))
    assert not (tmp_path / "n.png").exists()


def test_unknown_sample_lists_names():
    with pytest.raises(ValueError, match="chelsea"):
        image.sample("dog")
