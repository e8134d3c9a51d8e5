"""Feature inversion: deeper layers reconstruct the photo less exactly."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxviz.io import image
from jaxviz.synthesis import inversion

LAYERS = ("stem", "blocks.2", "blocks.5", "blocks.10")


def test_reconstruction_error_grows_with_depth(lite0):
    model, variables = lite0
    x = jnp.asarray(image.sample("chelsea", 128))[None]
    out = inversion.invert(jax.random.key(0), model, variables, x, LAYERS, progress=False)
    assert out.images.shape == (4, 1, 128, 128, 3)
    errors = [float(jnp.mean((out.images[i, 0] - x[0]) ** 2)) for i in range(len(LAYERS))]
    assert all(a < b for a, b in zip(errors, errors[1:], strict=False)), dict(zip(LAYERS, errors, strict=True))
    assert errors[0] < 0.01  # the shallowest layer gives the photo back
    noise = float(jnp.mean((jax.random.uniform(jax.random.key(1), x.shape) - x) ** 2))
    assert errors[-1] < noise  # the deepest still keeps something of it
    assert out.history[-1][1] > out.history[0][1]  # the objective (minus the loss) rose
    assert np.all(np.isfinite(np.asarray(out.images)))
