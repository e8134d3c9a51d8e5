"""Seeded visualizations: feature accentuation keeps the photo and raises the target; a caricature resembles the
photo at its layer more than noise does; the Fourier parameterization starts from an image exactly."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxviz.core import forward
from jaxviz.core import objectives as objs
from jaxviz.io import image
from jaxviz.synthesis import accentuation
from jaxviz.synthesis.param import Fourier

SIZE = 96
#: the Fourier parameterization's round trip is exact up to float32 FFTs and the logit at the clip
ROUND_TRIP_ATOL = 1e-4


def test_fourier_starts_from_an_image():
    x = jnp.asarray(image.sample("coffee", 32))[None]
    p = Fourier()
    back = p.to_image(p.init(jax.random.key(0), x.shape, x), x.shape)
    np.testing.assert_allclose(np.asarray(back), np.clip(np.asarray(x), 1e-3, 1 - 1e-3), atol=ROUND_TRIP_ATOL)


def test_dot_compare_is_dot_times_cosine_power():
    a = jax.random.normal(jax.random.key(0), (2, 3, 3, 4))
    t = jax.random.normal(jax.random.key(1), (2, 3, 3, 4))
    got = objs.dot_compare("a", t, 2.0)({"a": a})
    fa, ft = np.asarray(a).reshape(2, -1), np.asarray(t).reshape(2, -1)
    dot = (fa * ft).sum(1)
    cos = dot / np.linalg.norm(fa, axis=1) / np.linalg.norm(ft, axis=1)
    np.testing.assert_allclose(np.asarray(got), dot * np.maximum(cos, 0.1) ** 2, rtol=1e-5)


def test_accentuation_raises_the_target_and_keeps_the_photo(lite0):
    model, variables = lite0
    photo = jnp.asarray(image.sample("chelsea", SIZE))[None]
    target = 9  # ostrich: absent from the photo
    out = accentuation.accentuate(jax.random.key(0), model, variables, photo, target, steps=12, progress=False)
    before = forward.logits(model, variables, photo)[0, target]  # compiled: op by op, every operation compiles
    after = forward.logits(model, variables, out.images)[0, target]
    assert float(after) > float(before) + 2.0
    layer = accentuation.default_layer(model)
    acts = forward.capture(model, variables, jnp.concatenate([photo, out.images]), (layer,))[layer]
    drift = float(jnp.sum((acts[1] - acts[0]) ** 2) / jnp.sum(acts[0] ** 2))
    # unanchored, the same ascent moves the layer further from the photo
    free = accentuation.accentuate(jax.random.key(0), model, variables, photo, target, steps=12, weight=0.0,
                                   progress=False)
    free_acts = forward.capture(model, variables, free.images, (layer,))[layer]
    assert drift < float(jnp.sum((free_acts[0] - acts[0]) ** 2) / jnp.sum(acts[0] ** 2))
    with pytest.raises(TypeError, match="class index or an objective"):
        accentuation.accentuate(jax.random.key(0), model, variables, photo, "cat")


def test_caricature_resembles_its_photo_at_the_layer(lite0):
    model, variables = lite0
    photos = jnp.asarray(np.stack([image.sample(n, SIZE) for n in ("chelsea", "coffee")]))
    layer = "blocks.4"
    out = accentuation.caricature(jax.random.key(0), model, variables, photos, layer=layer, steps=16,
                                  progress=False)
    assert out.images.shape == (2, SIZE, SIZE, 3)
    acts = forward.capture(model, variables, jnp.concatenate([photos, out.images]), (layer,))[layer]
    f = np.asarray(acts).reshape(4, -1)
    cos = (f[:2, None] * f[None, 2:]).sum(-1) / np.linalg.norm(f[:2], axis=1)[:, None] / np.linalg.norm(f[2:], axis=1)
    # each caricature is closer to its own photo than to the other one
    assert cos[0, 0] > cos[0, 1] and cos[1, 1] > cos[1, 0], cos
