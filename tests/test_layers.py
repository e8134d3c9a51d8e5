"""Layer helpers: the fast depthwise convolution equals XLA's grouped convolution; max-pool's values and gradient
(to each window's first maximum) equal PyTorch's."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxviz.models.layers import DepthwiseConv, max_pool, same_padding

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


@pytest.mark.parametrize("h, w, kernel, stride, padding, ceil_mode", [
    (112, 112, 3, 2, 1, False),  # ResNet's stem pool
    (13, 11, 3, 2, 0, True),  # AlexNet/GoogLeNet-style ceil mode: a last window hanging over the edge
    (8, 9, 2, 2, 0, False), (9, 7, 3, 1, 1, False), (10, 10, 5, 3, 2, False),
])
def test_max_pool_and_its_gradient_match_pytorch_on_ties(h, w, kernel, stride, padding, ceil_mode):
    """Small integers make most windows tie: the gradient must go to the first maximum in row-major order."""
    import torch

    rng = np.random.default_rng(0)
    x = rng.integers(0, 3, (2, h, w, 3)).astype(np.float64)
    with jax.enable_x64(True):
        out, vjp = jax.vjp(lambda v: max_pool(v, kernel, stride, padding, ceil_mode), jnp.asarray(x))
        g = rng.normal(size=out.shape)
        (dx,) = vjp(jnp.asarray(g))
    tx = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()).requires_grad_(True)
    tout = torch.nn.functional.max_pool2d(tx, kernel, stride, padding, ceil_mode=ceil_mode)
    (tdx,) = torch.autograd.grad(tout, tx, torch.from_numpy(g.transpose(0, 3, 1, 2).copy()))
    np.testing.assert_array_equal(np.asarray(out), tout.detach().numpy().transpose(0, 2, 3, 1))
    np.testing.assert_allclose(np.asarray(dx), tdx.numpy().transpose(0, 2, 3, 1), rtol=0, atol=1e-12)
