"""Any JAX model: techniques on networks jaxviz did not write, against each framework's own computation.

Third-party definitions (Haiku's ``hk.nets.ResNet18``, jax-resnet's linen ``ResNet18``) and small networks in each
framework's usual style (linen with functional ReLUs, ``jnp.maximum`` and ``nn.remat``; NNX; Equinox with
``eqx.nn.BatchNorm``; a plain ``lax.conv`` function with ``jnp.maximum(x, 0)`` and ``jnp.clip``). References:
``jax.grad`` of the direct function; the same network with its ReLUs replaced *by hand* (constructor arguments,
or patching ``jax.nn.relu`` while Haiku traces); activations and their gradients read with the framework's own
tools (linen's and Haiku's method interceptors) or a hand-split forward pass.
"""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxviz
from jaxviz import models
from jaxviz.attribution.cam import resize
from jaxviz.attribution.guided import deconv, guided
from jaxviz.datafree import deepinversion as di

from adapter_cases import CASES, CLASSES, SIZE, random_images
from conftest import assert_close_to_max

ATOL = 1e-6  # the float32 tolerance, relative to the largest magnitude


@functools.cache
def _built(name):
    """Each case is built once per worker: the module fixture and the DeepInversion test share it (the
    techniques only read a case)."""
    return CASES[name]()


@pytest.fixture(scope="module", params=list(CASES))
def case(request):
    return _built(request.param)


def _score(f, target):
    return lambda images: jnp.sum(f(images)[:, target])


def test_saliency_is_the_gradient_of_the_direct_function(case):
    x = random_images(size=case.model.input_size)
    assert_close_to_max(jaxviz.saliency(case.model, case.variables, x, 3),
                        jax.grad(_score(case.direct(), 3))(x), ATOL, "saliency")


@pytest.mark.parametrize("method, rule", [(jaxviz.guided_backprop, guided), (jaxviz.deconvnet, deconv)])
def test_modified_gradients_equal_hand_replaced_relus(case, method, rule):
    x = random_images(1, size=case.model.input_size)
    hand = case.direct(rule(jax.nn.relu), rule(jax.nn.relu6))
    expected = jax.grad(_score(hand, 2))(x)
    plain = jax.grad(_score(case.direct(), 2))(x)
    # The rule changes the gradient (so this comparison can fail):
    assert np.abs(np.asarray(expected - plain)).max() > 0.05 * np.abs(np.asarray(plain)).max() > 0
    assert_close_to_max(method(case.model, case.variables, x, 2), expected, ATOL, method.__name__)


def test_capture_returns_each_layer_output_in_forward_order(case):
    x = random_images(2, size=case.model.input_size)
    logits, acts = case.model.apply(case.variables, x, capture=case.layers)
    chex.assert_trees_all_close(logits, case.direct()(x), atol=1e-5)
    for layer in case.layers:
        _, expected = case.reference(x, layer)
        assert_close_to_max(acts[layer], expected, ATOL, layer)
    order = [case.model.layers.index(n) for n in case.layers]
    assert order == sorted(order), case.model.layers


def test_grad_cam_equals_a_hand_grad_cam(case):
    x = random_images(3, size=case.model.input_size)
    layer = case.cam_layer
    _, acts = case.reference(x, layer)
    grads = jax.grad(lambda d: jnp.sum(case.reference(x, layer, d)[0][:, 1]))(jnp.zeros_like(acts))
    hand = jax.nn.relu(jnp.sum(jnp.mean(grads, axis=(1, 2), keepdims=True) * acts, axis=-1))
    hand = resize(hand, x.shape[1], x.shape[2])
    assert_close_to_max(jaxviz.grad_cam(case.model, case.variables, x, 1, layer=layer), hand, ATOL, "grad_cam")


def test_transforms_nest_without_retracing(case):
    model, variables = case.model, case.variables
    chex.clear_trace_counter()

    @jax.jit
    @chex.assert_max_traces(n=1)
    def explain(v, x, target):
        return jaxviz.guided_backprop(model, v, x, target), model.apply(v, x, capture=[case.cam_layer])[1]

    x = random_images(4, size=model.input_size)
    first = explain(variables, x, jnp.asarray([0, 1]))
    explain(variables, x + 0.01, jnp.asarray([2, 3]))  # new values, same shapes: no retrace
    per_image = jax.vmap(lambda xi, t: jaxviz.guided_backprop(model, variables, xi[None], t)[0])(
        x, jnp.asarray([0, 1]))
    assert_close_to_max(per_image, first[0], 1e-5, "vmap over images")
    second_order = jax.grad(lambda x: jnp.sum(jaxviz.saliency(model, variables, x, 0) ** 2))(x)
    assert second_order.shape == x.shape and bool(jnp.all(jnp.isfinite(second_order)))


BN_CASES = ("linen", "jax_resnet", "haiku", "nnx", "equinox")


def test_bn_statistic_loss_equals_a_hand_computation(case, request):
    if case.bn_reference is None:
        pytest.skip("no BatchNorm")
    x = random_images(5, size=case.model.input_size)
    stats = case.model.batch_norm_stats(case.variables)
    expected_inputs = case.bn_reference(x)
    _, seen = models.bn_inputs(case.model, case.variables, x)
    assert set(seen) == set(expected_inputs) == set(stats) and stats
    total = 0.0
    for i, name in enumerate(seen):
        assert_close_to_max(seen[name], expected_inputs[name], ATOL, name)
        inp = expected_inputs[name]
        mu = inp.mean(axis=(0, 1, 2))
        var = ((inp - mu) ** 2).mean(axis=(0, 1, 2))
        mean, running_var = stats[name]
        total += (10.0 if i == 0 else 1.0) * (jnp.linalg.norm(mu - mean) + jnp.linalg.norm(var - running_var))
    loss, _ = di.bn_statistics_loss(case.model, case.variables, x, first_bn_weight=10.0)
    np.testing.assert_allclose(loss, total, rtol=1e-5)


@pytest.mark.parametrize("which", ["linen", "haiku", "equinox"])
def test_deepinversion_lowers_its_loss_on_adapted_models(which):
    c = _built(which)
    settings = di.Settings(warmup=2, jitter=2, low_res_fraction=0.0, lr=0.1)
    targets = jnp.asarray([0, 1])
    run = di.deepinversion(jax.random.key(0), c.model, c.variables, targets, steps=20, settings=settings,
                           chunk=1, progress=False)
    assert run.history[-1][1] < run.history[0][1], run.history


def test_unreachable_relu_is_a_warning_naming_it():
    @jax.custom_vjp
    def opaque(x):
        return jax.nn.relu(x)

    opaque.defvjp(lambda x: (opaque(x), x), lambda x, g: (g * (x > 0),))
    params = {"w": jax.random.normal(jax.random.key(0), (SIZE * SIZE * 3, CLASSES))}
    model, params = models.wrap(lambda p, x: opaque(x.reshape(x.shape[0], -1)) @ p["w"], params, input_size=SIZE)
    with pytest.warns(UserWarning, match="custom_vjp"):
        jaxviz.guided_backprop(model, params, random_images(), 0)


def _one_line_error(match, fn, *args, **kwargs):
    with pytest.raises(ValueError, match=match) as error:
        fn(*args, **kwargs)
    assert "\n" not in str(error.value)


def test_user_mistakes_are_one_line_errors():
    params = {"w": jnp.ones((SIZE * SIZE * 3, CLASSES))}
    flat = lambda x: x.reshape(x.shape[0], -1)
    _one_line_error("must return logits of shape", models.wrap, lambda p, x: (flat(x) @ p["w"], x), params,
                    input_size=SIZE)
    _one_line_error("must return logits of shape", models.wrap, lambda p, x: x, params, input_size=SIZE)
    _one_line_error("input_size must be a positive int", models.wrap, lambda p, x: x, params, input_size=0)
    _one_line_error("tracing the forward pass", models.wrap, lambda p, x: flat(x) @ p["w"], params, input_size=8)
    model, params = models.wrap(lambda p, x: jax.nn.relu(flat(x)) @ p["w"], params, input_size=SIZE)
    _one_line_error("unknown layer 'nope'; valid names: relu0, dense0", model.apply, params, random_images(),
                    capture=["nope"])
    _one_line_error("no BatchNorm layers", di.deepinversion, jax.random.key(0), model, params, [0], steps=1)


def _ratio_rule(act):
    """A ReLU-like ``act`` whose derivative is ``act(z) / z``: Gradient x Input through it is what LRP's ``Pass``
    hands on (``act(z) * g``), also where ReLU6 saturates."""
    f = jax.custom_vjp(act)
    f.defvjp(lambda z: (act(z), z), lambda z, g: (g * act(z) / jnp.where(z == 0, 1, z),))
    return f


def test_lrp_zero_is_gradient_x_input_through_every_framework(case):
    """Known answer, float64: LRP-0 is Gradient x Input (with ``act(z) / z`` as each ReLU-like derivative), however
    the framework wrote its convolutions, biases, BatchNorms (merged into the affine layers), pools and residual
    sums (Equinox's vmapped layers put reshapes between a convolution and its bias)."""
    with jax.enable_x64(True):
        v = jax.tree_util.tree_map(
            lambda a: a.astype(jnp.float64) if jnp.issubdtype(getattr(a, "dtype", int), jnp.floating) else a,
            case.variables)
        x = random_images(size=case.model.input_size).astype(jnp.float64)
        ours = jaxviz.lrp(case.model, v, x, 2, composite="epsilon", epsilon=1e-13, stabilizer=1e-13)
        expected = jaxviz.gradient_x_input(case.model.rewrite_relus(_ratio_rule), v, x, 2)
    assert_close_to_max(ours, expected, 1e-6, "LRP-0")
