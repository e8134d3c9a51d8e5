"""Global covariance pooling (models/covpool.py): the Newton-Schulz square root converges, its gradient matches
finite differences in float64, and the digits CNN with the covariance head trains at least as well as with
average pooling (same seed, same steps)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from jaxviz.models import covpool

#: the digits test split: covariance pooling must reach average pooling's accuracy within this
ACCURACY_MARGIN = 0.01


def _spd(key, b=3, c=6, n=40, dtype=jnp.float64):
    x = jax.random.normal(key, (b, n, 1, c), dtype)
    return covpool.covariance(x) + 1e-3 * jnp.eye(c, dtype=dtype)


def test_newton_schulz_square_root_squares_back():
    with jax.enable_x64(True):
        sigma = _spd(jax.random.key(0))
        errors = {}
        for iterations in (5, 30):
            root = covpool.sqrtm(sigma, iterations)
            errors[iterations] = float(jnp.max(jnp.abs(root @ root - sigma)) / jnp.max(jnp.abs(sigma)))
        np.testing.assert_allclose(root, jnp.swapaxes(root, -1, -2), atol=1e-12)  # symmetric
    assert errors[30] < 1e-6, errors  # the iteration converges to the root
    assert errors[5] < 0.5 and errors[30] < errors[5], errors  # iSQRT-COV's 5 are an approximation


def test_the_head_gradient_matches_finite_differences():
    with jax.enable_x64(True):
        x = jax.random.normal(jax.random.key(1), (2, 4, 4, 3), jnp.float64)
        w = jax.random.normal(jax.random.key(2), (2, 6), jnp.float64)

        def head(x):
            return jnp.sum(w * covpool.upper_triangle(covpool.sqrtm(covpool.covariance(x) + 0.1 * jnp.eye(3))))

        check_grads(head, (x,), order=1, modes=("rev",), eps=1e-6, atol=1e-6, rtol=1e-6)


def test_the_covariance_head_trains_digits_at_least_as_well_as_average_pooling():
    from jaxviz.datafree import training
    from jaxviz.experiments import digits
    from jaxviz.models import digits_cnn

    data = digits.load()
    accuracy = {}
    for pool in ("avg", "cov"):
        model = digits_cnn.build(pool=pool)
        variables, _ = training.fit(jax.random.key(0), model, data.train_images, digits.one_hot(data.train_labels),
                                    steps=300, max_shift=2)
        accuracy[pool] = digits.accuracy(model, variables, data.test_images, data.test_labels)
    assert model.layers[-2] == "covpool"
    assert accuracy["cov"] >= accuracy["avg"] - ACCURACY_MARGIN and accuracy["cov"] > 0.9, accuracy
    with pytest.raises(ValueError, match="pool must be 'avg' or 'cov'"):
        digits_cnn.build(pool="max")
