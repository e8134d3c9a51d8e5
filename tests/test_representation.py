"""Representation tools: filters, activation maps, data-set features (folder, tfds), neighbours,
PCA/t-SNE, maximally activating patches, the digits neighbours experiment."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxviz import cli, models
from jaxviz.io import image
from jaxviz.representation import activations, embedding, features, filters, neighbors, patches

from conftest import assert_close_to_max, tiny_model


def test_first_layer_filters_are_the_first_convolution_each_normalized(lite0):
    model = models.build("alexnet")
    variables = model.init(jax.random.key(0), 64)
    k = filters.first_conv_kernel(model, variables)
    np.testing.assert_array_equal(k, np.asarray(variables["params"]["features.0"]["kernel"]))
    assert k.shape == (11, 11, 3, 64)
    tiles = filters.filter_images(k, tile=33)
    assert len(tiles) == 64 and tiles[0].shape == (33, 33, 3)
    inner = tiles[5][:33, :33]  # 11 x 3 = 33: the filter fills the tile
    assert inner.min() == 0.0 and inner.max() == 1.0
    np.testing.assert_allclose(inner[::3, ::3], (k[..., 5] - k[..., 5].min()) / np.ptp(k[..., 5]), rtol=1e-6)
    assert filters.filter_grid(model, variables).shape[2] == 3
    assert filters.first_conv_kernel(*lite0).shape == (3, 3, 3, 32)
    from jaxviz.models import digits_cnn as digits_model

    grey = digits_model.build()  # averages RGB to grey first: its filters are grey
    assert filters.first_conv_kernel(grey, grey.init(jax.random.key(0), 32)).shape[2] == 1


def test_activation_maps_are_the_layers_and_reject_bad_layers():
    model, variables = tiny_model(32)
    photo = image.sample("chelsea", 32)
    maps = activations.activation_maps(model, variables, photo, "conv2")
    _, acts = model.apply(variables, jnp.asarray(photo)[None], capture=("conv2",))
    assert_close_to_max(maps, acts["conv2"][0], 1e-5, "jitted vs eager")
    grid = activations.activation_grid(model, variables, photo, "conv2", max_channels=6, order="strongest")
    assert grid.ndim == 3 and grid.shape[2] == 3
    with pytest.raises(ValueError, match="not spatial"):
        activations.activation_maps(model, variables, photo, "fc")
    with pytest.raises(ValueError, match="conv2"):  # the valid names are listed
        activations.activation_maps(model, variables, photo, "conv9")


class _Counting:
    """A data set that counts reads and can fail at an index (an interrupted run)."""

    def __init__(self, inner, fail_at=None):
        self.inner, self.fail_at, self.reads = inner, fail_at, 0

    def __len__(self):
        return len(self.inner)

    def __getitem__(self, i):
        if self.fail_at is not None and i >= self.fail_at:
            raise KeyboardInterrupt
        self.reads += 1
        return self.inner[i]

    def identity(self):
        return self.inner.identity()


def test_folder_features_are_cached_in_shards_and_resume(tmp_path):
    model, variables = tiny_model(32)
    rng = np.random.default_rng(0)
    for cls in ("ants", "bees"):
        for i in range(5):
            image.save_png(tmp_path / "data" / cls / f"{i}.png", rng.uniform(size=(40, 36, 3)))
    src = features.Folder(tmp_path / "data", 32)
    assert len(src) == 10 and src.classes == ["ants", "bees"] and list(src.labels) == [0] * 5 + [1] * 5
    images, _ = features.load_batch(src, range(10))
    _, acts = model.apply(variables, jnp.asarray(images), capture=("conv2",))
    expected = np.asarray(acts["conv2"]).mean(axis=(1, 2))
    cache = tmp_path / "cache"
    with pytest.raises(KeyboardInterrupt):
        features.extract(model, variables, _Counting(src, fail_at=6), "conv2", batch_size=2, shard=4, cache_dir=cache)
    resumed = _Counting(src)
    f = features.extract(model, variables, resumed, "conv2", batch_size=2, shard=4, cache_dir=cache, progress=False)
    assert resumed.reads == 6  # the first shard (4 images) came from the cache
    np.testing.assert_allclose(f.features, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(f.labels, src.labels)
    again = _Counting(src)
    np.testing.assert_array_equal(features.extract(model, variables, again, "conv2", batch_size=2, shard=4,
                                                   cache_dir=cache).features, f.features)
    assert again.reads == 0
    with pytest.raises(ValueError, match="no such folder"):
        features.Folder(tmp_path / "nothing", 32)


def test_tfds_data_source_path_with_mock_data(tmp_path):
    import tensorflow_datasets as tfds

    model, variables = tiny_model(32)
    (tmp_path / "cifar10").mkdir()  # as `tfds build` leaves it; the records come from the mock
    with tfds.testing.mock_data(num_examples=12, policy=tfds.testing.MockPolicy.USE_CODE):
        src = features.TfdsSource("cifar10", split="train", size=32, data_dir=str(tmp_path))
        assert len(src) == 12
        f = features.extract(model, variables, src, "avgpool", batch_size=5, progress=False)
        img, label = src[3]
    assert f.features.shape == (12, 8) and img.shape == (32, 32, 3) and 0 <= img.min() <= img.max() <= 1
    assert set(f.labels.tolist()) <= set(range(10)) and f.labels[3] == label


def test_an_unprepared_tfds_data_set_is_one_line_and_downloads_nothing(tmp_path):
    with pytest.raises(ValueError, match=r"not prepared in .*tfds build imagenette/320px-v2") as e:
        features.TfdsSource("imagenette/320px-v2", split="validation", data_dir=str(tmp_path / "tfds"))
    assert "\n" not in str(e.value) and not (tmp_path / "tfds").exists()


def test_knn_matches_brute_force_and_agreement_counts():
    rng = np.random.default_rng(1)
    db, q = rng.normal(size=(50, 7)), rng.normal(size=(9, 7))
    idx, dist = neighbors.knn(q, db, k=4, block=4)
    d = np.linalg.norm(q[:, None] - db[None], axis=-1)
    np.testing.assert_array_equal(idx, np.argsort(d, axis=1)[:, :4])
    np.testing.assert_allclose(dist, np.sort(d, axis=1)[:, :4], rtol=1e-4, atol=1e-4)
    self_idx, _ = neighbors.knn(db, db, k=3, exclude_self=True)
    assert not np.any(self_idx == np.arange(50)[:, None])
    labels = np.arange(50) % 2
    assert neighbors.label_agreement(np.array([[0, 2], [0, 1]]), np.array([0, 1]), labels) == 0.75
    with pytest.raises(ValueError, match="features"):
        neighbors.knn(q, db[:, :3])


def test_pca_and_tsne_separate_two_blobs_and_scatter_draws_them():
    rng = np.random.default_rng(2)
    x = np.concatenate([rng.normal(0, 1, (20, 10)), rng.normal(8, 1, (20, 10))])
    labels = np.repeat([0, 1], 20)
    for method in ("pca", "tsne"):
        xy = embedding.reduce(x, method, seed=0)
        centre = [xy[labels == c].mean(0) for c in (0, 1)]
        spread = max(xy[labels == c].std(0).max() for c in (0, 1))
        assert np.linalg.norm(centre[0] - centre[1]) > 3 * spread, method
    thumbs = np.ones((40, 8, 8, 3), np.float32) * 0.5
    canvas = embedding.scatter(embedding.reduce(x, "pca"), thumbs, labels, size=200, thumb=10)
    assert canvas.shape == (200, 200, 3)
    frame0 = np.asarray(embedding.PALETTE[0], np.float32)
    assert np.any(np.all(np.abs(canvas - frame0) < 0.01, axis=-1))  # label 0's frame colour is drawn


def test_top_patches_are_receptive_field_crops_at_the_maxima():
    model, variables = tiny_model(32)
    images = np.random.default_rng(3).uniform(size=(12, 32, 32, 3)).astype(np.float32)
    p = patches.top_patches(model, variables, images, "conv2", channel=1, k=4, batch_size=5, inside=False,
                            distinct=None)
    _, acts = model.apply(variables, jnp.asarray(images), capture=("conv2",))
    a = np.asarray(acts["conv2"][..., 1])
    best = a.reshape(12, -1).max(1)
    np.testing.assert_array_equal(p.index, np.argsort(-best, kind="stable")[:4])
    np.testing.assert_allclose(p.value, best[p.index], rtol=1e-5)
    field = models.receptive_field(model, "conv2", 32)
    assert p.patches.shape == (4, field.size, field.size, 3)
    for n, i in enumerate(p.index):
        assert a[i, p.y[n], p.x[n]] == pytest.approx(p.value[n], rel=1e-5)
        top, left = field.offset + p.y[n] * field.stride, field.offset + p.x[n] * field.stride
        np.testing.assert_array_equal(p.patches[n], patches.crop(images[i], top, left, field.size))
    grey = patches.crop(images[0], -3, 30, 5)
    assert np.all(grey[:3] == 0.5) and np.all(grey[:, 2:] == 0.5)
    np.testing.assert_array_equal(grey[3:, :2], images[0][:2, 30:32])


def test_top_patches_stay_inside_and_skip_near_duplicates():
    model, variables = tiny_model(32)
    images = np.random.default_rng(4).uniform(size=(6, 32, 32, 3)).astype(np.float32)
    again = np.clip(images + 0.01 * np.random.default_rng(5).normal(size=images.shape), 0, 1).astype(np.float32)
    twice = np.concatenate([images, again])  # each image again with a little noise: a near-duplicate
    field = models.receptive_field(model, "conv2", 32)
    p = patches.top_patches(model, variables, twice, "conv2", channel=1, k=6)
    assert sorted(int(i) % 6 for i in p.index) == list(range(6))  # one patch per picture, never its copy
    for y, x in zip(p.y, p.x, strict=True):
        top, left = field.offset + y * field.stride, field.offset + x * field.stride
        assert 0 <= top and top + field.size <= 32 and 0 <= left and left + field.size <= 32
    every = patches.top_patches(model, variables, twice, "conv2", channel=1, k=12, distinct=None)
    assert len(every.index) == 12
    with pytest.raises(ValueError, match="distinct"):
        patches.top_patches(model, variables, twice, "conv2", channel=1, distinct=2.0)


def test_top_patches_skip_the_same_spot_of_a_picture_at_another_zoom_or_mirrored():
    """With ``origins`` (where each crop was cut), two patches of one spot of one picture are duplicates even when
    their pixels differ; here every patch is its whole crop (a 32 px field), so its region is the crop's box."""
    model, variables = tiny_model(32)
    images = np.random.default_rng(6).uniform(size=(6, 32, 32, 3)).astype(np.float32)  # pixels never correlate
    origins = np.array([[0, 0, 0, 160, 0],       # picture 0, top-left quarter
                        [0, 40, 40, 80, 1],      # inside 0's region, zoomed in and mirrored: a duplicate of 0
                        [0, 160, 160, 160, 0],   # picture 0, the opposite quarter: new
                        [1, 0, 0, 160, 0],       # picture 1, same coordinates: new
                        [0, 100, 0, 160, 0],     # shares 60/160 of 0's rows: 37% of the smaller region: new
                        [0, 0, 60, 160, 0]])     # shares 62% with 0 and 75% with 1: a duplicate
    whole = models.ReceptiveField(32, 1, 0, False)
    p = patches.top_patches(model, variables, images, "conv2", channel=1, k=6, field=whole, origins=origins)
    chosen = {int(i) for i in p.index}
    assert {2, 3, 4} <= chosen and len(chosen & {0, 1, 5}) == 1, chosen
    assert len(patches.top_patches(model, variables, images, "conv2", channel=1, k=6, field=whole).index) == 6
    # the patch's region follows the crop's mirroring and zoom
    assert patches._source_box(origins[1], 0, 0, 8, 32) == (40.0, 100.0, 20.0)  # left 8 px of a mirror: the right
    with pytest.raises(ValueError, match="origins"):
        patches.top_patches(model, variables, images, "conv2", channel=1, k=6, origins=origins[:3])
    boxes = image.sample_crop_boxes(per_image=2)
    assert boxes.shape == (18, 5) and np.all(boxes[:, 1:3] + boxes[:, 3:4] <= image.CROP_SOURCE_SIDE)
    first = image.sample_crops(per_image=1, size=32)[0]
    source, top, left, side, mirrored = image.sample_crop_boxes(per_image=1)[0]
    expected = image.resize(image.sample(image.SAMPLES[source], image.CROP_SOURCE_SIDE)[top:top + side,
                                                                                          left:left + side], 32, 32)
    np.testing.assert_array_equal(first, expected[:, ::-1] if mirrored else expected)


def test_digits_neighbours_agree_far_more_in_feature_space(capsys):
    code = cli.main(["neighbors", "--digits", "--json"])
    out = capsys.readouterr().out
    r = json.loads(out)
    assert code == 0 and set(r) == {"feature_knn_label_agreement", "pixel_knn_label_agreement"}
    feature, pixel = r["feature_knn_label_agreement"], r["pixel_knn_label_agreement"]
    # Measured 0.950 vs 0.731 (queries rolled by up to 4 px): five times fewer wrong neighbours.
    assert feature > pixel + 0.15 and 1 - feature < 0.5 * (1 - pixel) and feature > 0.9, r
