"""DeepDream: it amplifies the layer, compiles once for a batch x layers, and handles large images by octaves."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxviz.core import loop
from jaxviz.core import objectives as obj
from jaxviz.io import image
from jaxviz.synthesis import dream

LAYERS = ("blocks.3", "blocks.8", "blocks.13")


def _batch(size: int) -> jnp.ndarray:
    photos = [image.sample(n, size) for n in ("chelsea", "coffee", "astronaut", "rocket")]
    return jnp.asarray(np.stack(photos + [p[:, ::-1] for p in photos]))  # 8 images


def test_batch_of_8_images_by_3_layers_compiles_once(lite0):
    model, variables = lite0
    x = _batch(48)
    kwargs = dict(per_layer=True, steps=3, octaves=2, jitter=4, progress=False)
    before = loop.compiled_programs()
    out = dream.dream(jax.random.key(0), model, variables, x, LAYERS, **kwargs).images
    compiled = loop.compiled_programs() - before
    assert out.shape == (3, 8, 48, 48, 3)
    assert compiled <= 2  # one program per octave size, shared by all 8 x 3 dreams
    again = dream.dream(jax.random.key(1), model, variables, x, LAYERS, **{**kwargs, "step_size": 0.02}).images
    assert loop.compiled_programs() - before == compiled  # new key and step size: no recompile
    assert not np.allclose(np.asarray(out), np.asarray(again))
    # Each instance dreamed its own layer: the three results differ.
    assert np.abs(np.asarray(out[0] - out[2])).mean() > 1e-3


def test_dream_amplifies_its_layer(lite0):
    model, variables = lite0
    x = _batch(64)[:2]
    out = dream.dream(jax.random.key(0), model, variables, x, "blocks.8", steps=10, octaves=1, progress=False).images
    before = obj.evaluate(obj.dream("blocks.8"), model, variables, x)
    after = obj.evaluate(obj.dream("blocks.8"), model, variables, out)
    assert np.all(np.asarray(after) > 1.1 * np.asarray(before)), (before, after)
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_octave_dream_on_a_512px_image(lite0):
    model, variables = lite0
    x = jnp.asarray(image.sample("astronaut", 512))
    out = dream.dream(jax.random.key(0), model, variables, x, steps=2, octaves=3, progress=False).images
    assert out.shape == (1, 512, 512, 3)
    assert np.all(np.isfinite(np.asarray(out)))
    change = np.abs(np.asarray(out[0]) - np.asarray(x)).mean()
    assert 0.005 < change < 0.2  # visibly dreamed, still the photo


def test_dream_from_noise_and_bad_input(lite0):
    model, variables = lite0
    out = dream.dream(jax.random.key(0), model, variables, None, size=32, num_images=2, steps=1, octaves=1,
                      progress=False).images
    assert out.shape == (2, 32, 32, 3)
    import pytest

    with pytest.raises(ValueError, match="valid names"):
        dream.dream(jax.random.key(0), model, variables, None, "blocks.99", size=32)
    with pytest.raises(ValueError, match="octave"):
        dream.dream(jax.random.key(0), model, variables, None, size=32, octaves=0)
