"""The CPU formulations of the ports' operations (``models.layers.FAST_CPU``) equal the plain ones, in float64."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxviz import models
from jaxviz.models import layers
from jaxviz.models.resnet import Bottleneck

from conftest import assert_close_to_max

#: float64 against float64: the formulations differ only in summation order.
FAST_RTOL = 1e-12


@pytest.fixture(autouse=True)
def float64():
    with jax.enable_x64(True):
        yield


@pytest.fixture
def fast_cpu():
    def set_mode(mode):
        return _Mode(mode)

    return set_mode


class _Mode:
    def __init__(self, mode):
        self.mode = mode

    def __enter__(self):
        self.token = layers.FAST_CPU.set(self.mode)

    def __exit__(self, *exc):
        layers.FAST_CPU.reset(self.token)


@pytest.mark.parametrize("stride, size", [(1, 7), (2, 7)])
def test_1x1_conv_as_product_equals_convolution_with_gradients(stride, size, fast_cpu):
    x = jax.random.normal(jax.random.key(0), (2, size, size + 1, 5), jnp.float64)
    module = layers.conv(6, 1, stride, bias=True)
    variables = jax.eval_shape(module.init, jax.random.key(1), x)
    rng = np.random.default_rng(2)
    variables = jax.tree_util.tree_map(lambda a: jnp.asarray(rng.standard_normal(a.shape)), variables)
    results = {}
    for mode in ("on", "off"):
        def loss(v, x):  # a new function per mode: jax caches traces by function, not by the switch
            return jnp.sum(jnp.tanh(module.apply(v, x)) ** 2)

        with fast_cpu(mode):
            jaxpr = str(jax.make_jaxpr(loss)(variables, x))
            assert ("dot_general" in jaxpr) == (mode == "on") and ("conv_general_dilated" in jaxpr) == (mode == "off")
            results[mode] = jax.jit(lambda v, x: (module.apply(v, x), *jax.grad(loss, argnums=(0, 1))(v, x)))(
                variables, x)
    for what, fast, plain in zip(("forward", "d/dparams", "d/dx"), results["on"], results["off"], strict=True):
        for a, b in zip(jax.tree_util.tree_leaves(fast), jax.tree_util.tree_leaves(plain), strict=True):
            assert_close_to_max(a, b, FAST_RTOL, what)


def test_other_convolutions_stay_convolutions(fast_cpu):
    with fast_cpu("on"):
        for kernel, stride, padding in ((3, 1, 1), (7, 2, 3), (1, 1, 1)):
            module = layers.conv(4, kernel, stride, padding)
            x = jnp.ones((1, 9, 9, 3))
            jaxpr = str(jax.make_jaxpr(lambda x, m=module: m.apply(m.init(jax.random.key(0), x), x))(x))
            assert "conv_general_dilated" in jaxpr and "dot_general" not in jaxpr
    with pytest.raises(ValueError, match="FAST_CPU"), fast_cpu("fast"):
        layers.fast_cpu()


class _Small(nn.Module):
    """A stem, one strided bottleneck with its 1x1 projection (ResNet's), a classifier."""

    @nn.compact
    def __call__(self, x):
        x = nn.relu(layers.batch_norm(name="bn1")(layers.conv(8, 3, 1, 1, name="conv1")(x)))
        x = Bottleneck(4, stride=2, project=True, name="layer1.0")(x)
        with jax.named_scope("avgpool"):
            x = layers.global_avg_pool(x)
        return nn.Dense(5, name="fc")(x)


def test_gradients_and_rules_under_the_switch(fast_cpu):
    """Logits and input gradients agree on and off; the affine-layer rules (LRP) and op rules still see every 1x1
    convolution as a convolution (the interpreter traces for them with the switch off)."""
    module = _Small()
    x = jax.random.uniform(jax.random.key(3), (2, 12, 12, 3), jnp.float64)
    variables = jax.eval_shape(module.init, jax.random.key(4), x)
    rng = np.random.default_rng(5)  # positive BatchNorm variances and scales
    variables = jax.tree_util.tree_map(lambda a: jnp.asarray(rng.uniform(0.5, 1.5, a.shape)), variables)
    model, variables = models.from_linen(module, variables, input_size=12, name="small")
    out = {}
    for mode in ("on", "off"):
        with fast_cpu(mode):
            out[mode] = jax.jit(lambda v, x: (model.apply(v, x), jax.grad(
                lambda x: model.apply(v, x)[:, 3].sum())(x)))(variables, x)
    assert_close_to_max(out["on"][0], out["off"][0], FAST_RTOL, "logits")
    assert_close_to_max(out["on"][1], out["off"][1], FAST_RTOL, "input gradient")

    kinds, convs = [], []

    def affine(layer, z):
        kinds.append(layer.kind)
        return layer.forward(z)

    def op_rule(bind, invals):
        convs.append(invals[1].shape)
        return bind(*invals)

    with fast_cpu("on"):
        jax.make_jaxpr(lambda x: model.apply_preprocessed(variables, x, affine=affine))(x)
        jax.make_jaxpr(lambda x: model.rewrite_ops({"conv": op_rule}).apply(variables, x))(x)
    assert kinds == ["conv"] * 5 + ["pool", "dense"], kinds
    assert len(convs) == 5 and sum(s[:2] == (1, 1) for s in convs) == 3
