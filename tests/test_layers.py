"""Layer helpers: the fast depthwise convolution equals XLA's grouped convolution."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest

from jaxviz.models.layers import DepthwiseConv, same_padding

from conftest import assert_close_to_max

DEPTHWISE_RTOL = 1e-5


@pytest.mark.parametrize("h, w, k, stride, padding", [
    (9, 11, 3, 1, "SAME"), (9, 11, 3, 2, "SAME"), (10, 7, 5, 2, "SAME"), (8, 8, 5, 1, "SAME"), (12, 9, 3, 2, 1),
])
def test_shift_and_conv_agree_with_gradients(h, w, k, stride, padding):
    x = jax.random.normal(jax.random.key(0), (2, h, w, 4))
    fast = DepthwiseConv(k, stride, padding, impl="shift")
    ref = DepthwiseConv(k, stride, padding, impl="conv")
    variables = fast.init(jax.random.key(1), x)
    assert_close_to_max(fast.apply(variables, x), ref.apply(variables, x), DEPTHWISE_RTOL, "forward")

    def loss(module):
        return lambda x, v: jnp.sum(jnp.tanh(module.apply(v, x)) ** 2)

    gx, gv = jax.grad(loss(fast), argnums=(0, 1))(x, variables)
    rx, rv = jax.grad(loss(ref), argnums=(0, 1))(x, variables)
    assert_close_to_max(gx, rx, DEPTHWISE_RTOL, "d/dx")
    assert_close_to_max(gv["params"]["kernel"], rv["params"]["kernel"], DEPTHWISE_RTOL, "d/dkernel")


def test_shift_is_vmappable_and_differentiable_twice():
    x = jax.random.normal(jax.random.key(0), (3, 1, 8, 8, 2))
    conv = DepthwiseConv(3, 2, impl="shift")
    variables = conv.init(jax.random.key(1), x[0])
    out = jax.vmap(lambda xi: conv.apply(variables, xi))(x)
    assert out.shape == (3, 1, 4, 4, 2)
    hvp = jax.grad(lambda x: jnp.sum(jax.grad(lambda y: jnp.sum(jnp.sin(conv.apply(variables, y))))(x) ** 2))(x[0])
    assert jnp.all(jnp.isfinite(hvp))


@pytest.mark.parametrize("size, k, s, expected", [(224, 3, 2, (0, 1)), (112, 3, 1, (1, 1)), (14, 5, 2, (1, 2))])
def test_same_padding_is_tensorflows(size, k, s, expected):
    assert same_padding(size, k, s) == expected
