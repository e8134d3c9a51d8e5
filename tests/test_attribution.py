"""Attribution methods: known answers, properties, and the cross-cutting checks every method passes."""

from __future__ import annotations

import functools

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxviz
import jaxviz.core.objectives
from jaxviz import models
from jaxviz.attribution.guided import deconv, guided
from jaxviz.models import Preprocessing

from conftest import assert_close_to_max, tiny_model

IG_COMPLETENESS_RTOL = 0.01  # the 1%
CROSS_RTOL = 1e-4  # jit vs eager, batch vs one image, relative to the largest magnitude


class Linear(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Dense(4, name="fc")(x.reshape(x.shape[0], -1))


class Tiny(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.Conv(6, (3, 3), name="c")(x)
        with jax.named_scope("conv"):
            x = jax.nn.relu(x)
        with jax.named_scope("avgpool"):
            x = x.mean(axis=(1, 2))
        return nn.Dense(5, name="fc")(x)


def _tiny(module, layers):
    variables = module.init(jax.random.key(0), jnp.zeros((1, 8, 8, 3)))
    return models.from_linen(module, variables, input_size=8, name="tiny", preprocessing=Preprocessing.identity(),
                             layers=layers, cam_layer=layers[0])


def test_saliency_of_a_linear_model_is_its_weights():
    model, variables = _tiny(Linear(), ("fc",))
    x = jax.random.uniform(jax.random.key(1), (2, 8, 8, 3))
    kernel = variables["params"]["fc"]["kernel"]  # (8*8*3, 4)
    for c in range(4):
        expected = jnp.broadcast_to(kernel[:, c].reshape(8, 8, 3), x.shape)
        chex.assert_trees_all_close(jaxviz.saliency(model, variables, x, c), expected, atol=1e-6)


@pytest.mark.parametrize("which", ["tiny", "efficientnet_lite0"])
def test_integrated_gradients_are_complete(which, lite0):
    model, variables = _tiny(Tiny(), ("conv", "avgpool", "fc")) if which == "tiny" else lite0
    size = 8 if which == "tiny" else 64
    x = jaxviz.io.image.sample("chelsea", size)[None]
    baseline = jnp.zeros_like(x)
    target = 285 if which != "tiny" else 2
    # ReLU6 kinks along the path make the quadrature converge slowly on Lite0:
    # 7% off at 64 steps, 1.5% at 256, 0.4% at 1024 (measured on this image).
    ig = jax.jit(lambda v, x: jaxviz.integrated_gradients(model, v, x, target, baseline=baseline, steps=1024,
                                                          batch_size=128))
    attr = ig(variables, x)
    score = jaxviz.core.objectives.score
    gap = score(model, variables, x, target) - score(model, variables, baseline, target)
    assert abs(float(attr.sum() - gap[0])) <= IG_COMPLETENESS_RTOL * abs(float(gap[0]))


@pytest.mark.parametrize("act, forward_mask", [
    (jax.nn.relu, lambda x: x > 0), (jax.nn.relu6, lambda x: (x > 0) & (x < 6))])
def test_modified_relu_gradients_follow_their_formulas(act, forward_mask):
    x = jax.random.normal(jax.random.key(0), (1000,)) * 4
    g = jax.random.normal(jax.random.key(1), (1000,))
    (guided_grad,) = jax.vjp(guided(act), x)[1](g)
    (deconv_grad,) = jax.vjp(deconv(act), x)[1](g)
    np.testing.assert_array_equal(guided_grad, jnp.where(forward_mask(x), jnp.maximum(g, 0), 0))
    np.testing.assert_array_equal(deconv_grad, jnp.maximum(g, 0))
    np.testing.assert_array_equal(guided(act)(x), act(x))  # the forward pass is untouched


def test_occlusion_finds_the_cat(lite0):
    """Chelsea (224 px crop): the biggest score drop is where the cat's face is, not the background."""
    model, variables = lite0
    x = jnp.asarray(jaxviz.io.image.sample("chelsea", 224))[None]
    heat = jaxviz.reduce_channels(jaxviz.occlusion(model, variables, x, 285, patch=32, stride=32, batch_size=49))[0]
    y, x_ = np.unravel_index(int(jnp.argmax(heat)), heat.shape)
    assert 60 <= y <= 200 and 40 <= x_ <= 200, (y, x_)  # eyes-to-nose box of the 224 px crop
    assert float(heat.max()) > 0


def test_ig_memory_does_not_grow_with_steps():
    """ResNet-50 at 224 px: compiled scratch memory is the same for 20 and 200 steps (compile only)."""
    model = models.build("resnet50")
    variables = jax.eval_shape(model.init, jax.random.key(0))
    x = jax.ShapeDtypeStruct((1, 224, 224, 3), jnp.float32)
    temp = {}
    for steps in (20, 200):
        fn = jax.jit(functools.partial(jaxviz.integrated_gradients, model, target=1, steps=steps, batch_size=8))
        temp[steps] = fn.lower(variables, x).compile().memory_analysis().temp_size_in_bytes
    assert temp[200] <= temp[20] + 1024  # only the scan's loop-index vector grows


METHODS = {
    "saliency": jaxviz.saliency,
    "guided_backprop": jaxviz.guided_backprop,
    "deconvnet": jaxviz.deconvnet,
    "smoothgrad": None,  # built per batch below: one key per image makes its noise batch-independent
    "integrated_gradients": functools.partial(jaxviz.integrated_gradients, steps=4, batch_size=8),
    "occlusion": functools.partial(jaxviz.occlusion, patch=32, stride=32, batch_size=8),
    "grad_cam": functools.partial(jaxviz.grad_cam, layer="conv2"),
    "cam": jaxviz.cam,
    "score_cam": functools.partial(jaxviz.score_cam, layer="conv2", batch_size=4),
}


KEYS = jax.random.split(jax.random.key(0), 2)


def _method(name, keys=KEYS):
    if name == "smoothgrad":
        return functools.partial(jaxviz.smoothgrad, keys, samples=3, batch_size=6)
    return METHODS[name]


@pytest.fixture(scope="module")
def small_batch():
    return jnp.asarray(np.stack([jaxviz.io.image.sample(n, 64) for n in ("chelsea", "coffee")]))


@pytest.fixture(scope="module")
def small_bn():
    """What the cross-cutting checks exercise (jit, batching, targets) is the method's code, not the network's
    size: a two-conv BatchNorm network compiles in a fraction of a second where EfficientNet-Lite0 took 15-70 s
    per method (every method is checked against Captum on Lite0 and ResNet-50 in test_attribution_parity.py)."""
    return tiny_model(64, classes=1000, batchnorm=True)


@pytest.mark.parametrize("name", list(METHODS))
def test_cross_cutting(name, small_bn, small_batch):
    """jit == eager, batch == one image at a time, int == array target, finite, no retrace for a new target."""
    model, variables = small_bn
    method = _method(name)
    chex.clear_trace_counter()

    @jax.jit
    @chex.assert_max_traces(n=1)
    def jitted(v, x, t):
        return method(model, v, x, t)

    targets = jnp.asarray([285, 967])
    batched = jitted(variables, small_batch, targets)
    expected_shape = small_batch.shape if not name.endswith("cam") else small_batch.shape[:3]
    assert batched.shape == expected_shape and bool(jnp.all(jnp.isfinite(batched)))
    jitted(variables, small_batch, jnp.asarray([1, 2]))  # new target values: no retrace
    if name in ("cam", "grad_cam", "saliency"):  # eager runs op by op: slow, so only for the cheapest methods
        assert_close_to_max(method(model, variables, small_batch, targets), batched, CROSS_RTOL, "eager")
    single = jax.jit(lambda v, x, t, k: _method(name, k)(model, v, x, t))  # one compile for both images
    for i in range(2):
        one = single(variables, small_batch[i:i + 1], targets[i:i + 1], KEYS[i:i + 1])
        assert_close_to_max(one[0], batched[i], CROSS_RTOL, f"image {i} alone")
    same = jitted(variables, small_batch, jnp.asarray([285, 285]))
    assert_close_to_max(jax.jit(lambda v, x: method(model, v, x, 285))(variables, small_batch), same, CROSS_RTOL,
                        "int target")


def test_neuron_target_explains_a_mid_level_unit(small_bn, small_batch):
    """A unit's map lies inside its receptive field: conv2's centre unit (16, 16) of the 64 px network (3x3
    convolutions, SAME padding, the second with stride 2) sees input rows and columns 31 to 35."""
    model, variables = small_bn
    _, acts = model.apply(variables, small_batch, capture=("conv2",))
    channel = int(jnp.argmax(acts["conv2"][:, 16, 16].max(axis=0)))  # a unit that fires (random weights: few do)
    maps = jaxviz.guided_backprop(model, variables, small_batch, jaxviz.Neuron("conv2", channel=channel))
    assert maps.shape == small_batch.shape
    support = np.argwhere(np.asarray(jnp.abs(maps).sum(axis=(0, 3))) > 0)
    assert support.size and support.min() >= 31 and support.max() <= 35, support
    with pytest.raises(ValueError, match="unknown layer"):
        jaxviz.saliency(model, variables, small_batch, jaxviz.Neuron("blocks.99", 0))


def test_bad_targets_are_clear_errors(small_bn, small_batch):
    model, variables = small_bn
    with pytest.raises(ValueError, match="one int per image"):
        jaxviz.saliency(model, variables, small_batch, jnp.asarray([1, 2, 3]))
    with pytest.raises(TypeError, match="integer"):
        jaxviz.saliency(model, variables, small_batch, 2.5)
    # ... before the forward pass (on Lite0 the length error used to come after 17 s of eager forward pass)
    calls = []

    def forward(params, images):
        calls.append(images.shape)
        return images.mean(axis=(1, 2)) @ params["w"]

    plain, params = models.wrap(forward, {"w": jnp.ones((3, 5))}, input_size=64)
    calls.clear()
    for bad in (jnp.asarray([1, 2, 3]), 2.5, jnp.zeros((2, 1), jnp.int32)):
        with pytest.raises((ValueError, TypeError), match="target must be"):
            jaxviz.saliency(plain, params, small_batch, bad)
    assert calls == []
    with pytest.raises(ValueError, match="patch"):
        jaxviz.occlusion(model, variables, small_batch, 1, patch=100)
    with pytest.raises(ValueError, match="unknown layer"):
        jaxviz.grad_cam(model, variables, small_batch, 1, layer="nope")


def test_rise_finds_the_pixels_a_linear_score_reads():
    """Known answer: the score is the sum of the image's left half, so RISE's map (the expected score where a
    pixel was visible) is higher on the left half (seen: 612-630 per column on the left, 566-573 on the right);
    the masks are the paper's (mean ``keep``, in [0, 1]); the
    same key gives the same map in any batch and chunk size."""
    size = 28
    left = jnp.zeros((size, size, 3)).at[:, : size // 2].set(1.0)
    model, params = models.wrap(lambda p, x: jnp.stack([jnp.sum(x * p, axis=(1, 2, 3)), jnp.zeros(x.shape[0])], 1),
                                left, input_size=size, num_classes=2)
    x = jnp.ones((2, size, size, 3))
    key = jax.random.key(3)
    rise = jax.jit(lambda x, bs: jaxviz.rise(key, model, params, x, 0, masks=256, cells=4, probability=False,
                                             batch_size=bs), static_argnums=1)
    maps = np.asarray(rise(x, 64))
    # The map carries a large constant (every mask shows half the read pixels); the read half stands above it.
    columns = maps.mean(axis=(0, 1))
    indicator = np.arange(size) < size // 2
    assert maps.shape == (2, size, size) and columns[: size // 3].min() > columns[-size // 3:].max(), columns
    assert np.corrcoef(maps.reshape(2, -1)[0], np.broadcast_to(indicator, (size, size)).ravel())[0, 1] > 0.6
    np.testing.assert_allclose(np.asarray(rise(x[:1], 16))[0], maps[0], rtol=1e-5)
    masks = jax.vmap(lambda i: jaxviz.rise_masks(key, i, size, size, 4, 0.5))(jnp.arange(256))
    assert 0.0 <= float(masks.min()) and float(masks.max()) <= 1.0 and abs(float(masks.mean()) - 0.5) < 0.05
    with pytest.raises(ValueError, match="keep"):
        jaxviz.rise(key, model, params, x, 0, keep=0.0)


class PoolNet(nn.Module):
    """conv-ReLU, a max-pool inside a jitted call (the op rule must reach into it), conv-ReLU, dense."""

    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Conv(6, (3, 3), name="c1")(x))
        x = jax.jit(lambda z: nn.max_pool(z, (2, 2), (2, 2)))(x)
        x = nn.relu(nn.Conv(6, (3, 3), name="c2")(x))
        return nn.Dense(5, name="fc")(x.reshape(x.shape[0], -1))


def test_deeplift_is_complete_and_differs_from_gradient_x_delta():
    """Rescale's multipliers (through ReLUs and the max-pool) sum to the score difference exactly, in float64;
    the plain gradient times the input difference does not."""
    with jax.enable_x64(True):
        module = PoolNet()
        variables = module.init(jax.random.key(0), jnp.zeros((1, 8, 8, 3), jnp.float64))
        model, variables = models.from_linen(module, variables, input_size=8, name="pool",
                                             preprocessing=Preprocessing.identity())
        x = jax.random.uniform(jax.random.key(1), (3, 8, 8, 3), jnp.float64)
        ref = 0.5 * jax.random.uniform(jax.random.key(2), (3, 8, 8, 3), jnp.float64)
        dl = jax.jit(lambda v, x, r: jaxviz.deeplift(model, v, x, 2, baselines=r))(variables, x, ref)
        delta = model.apply(variables, x)[:, 2] - model.apply(variables, ref)[:, 2]
        np.testing.assert_allclose(dl.sum(axis=(1, 2, 3)), delta, rtol=1e-10)
        naive = ((x - ref) * jaxviz.saliency(model, variables, x, 2)).sum(axis=(1, 2, 3))
        assert float(jnp.max(jnp.abs(naive - delta))) > 1e-3 * float(jnp.max(jnp.abs(delta)))
        with pytest.raises(ValueError, match="broadcast"):
            jaxviz.deeplift(model, variables, x, 2, baselines=jnp.zeros((4, 4, 3)))


class ResidualNet(nn.Module):
    """conv-BN-ReLU, a max-pool and a residual block inside jitted calls, global mean, dense; no biases."""

    @nn.compact
    def __call__(self, x):
        bn = lambda name: nn.BatchNorm(use_running_average=True, name=name)  # noqa: E731
        x = nn.relu(bn("bn1")(nn.Conv(6, (3, 3), use_bias=False, name="c1")(x)))
        x = jax.jit(lambda z: nn.max_pool(z, (2, 2), (2, 2)))(x)
        y = bn("bn2")(nn.Conv(6, (3, 3), use_bias=False, name="c2")(x))
        x = nn.relu(x + y)
        return nn.Dense(5, use_bias=False, name="fc")(x.mean(axis=(1, 2)))


def test_lrp_epsilon_is_gradient_x_input_and_conserves_the_logit_without_biases():
    """Known answers, float64. LRP-0 on a ReLU network is Gradient x Input, with BatchNorm, a residual sum, pools
    and jitted calls in the way (the affine layers, sums and ReLUs are all read from the jaxpr); without biases and
    BatchNorm shifts, LRP-epsilon and z+ conserve the target logit."""
    with jax.enable_x64(True):
        module = ResidualNet()
        variables = module.init(jax.random.key(0), jnp.zeros((1, 8, 8, 3), jnp.float64))
        k = iter(jax.random.split(jax.random.key(5), 8))
        stats = {"bn1": {}, "bn2": {}}
        for name in stats:  # scales of both signs; nonzero means and shifts for the first check
            c = variables["params"][name]["scale"].shape
            variables["params"][name] = {"scale": jax.random.normal(next(k), c, jnp.float64),
                                         "bias": jax.random.normal(next(k), c, jnp.float64)}
            stats[name] = {"mean": jax.random.normal(next(k), c, jnp.float64), "var": jnp.full(c, 2.0, jnp.float64)}
        variables = {"params": variables["params"], "batch_stats": stats}
        model, variables = models.from_linen(module, variables, input_size=8, name="res",
                                             preprocessing=Preprocessing.identity())
        x = jax.random.uniform(jax.random.key(1), (3, 8, 8, 3), jnp.float64)
        run = jax.jit(lambda v, comp: jaxviz.lrp(model, v, x, 2, composite=comp, epsilon=1e-13, stabilizer=1e-13),
                      static_argnums=1)
        assert_close_to_max(run(variables, "epsilon"), jaxviz.gradient_x_input(model, variables, x, 2), 1e-9,
                            "LRP-0 vs Gradient x Input")
        unbiased = jax.tree_util.tree_map(lambda a: a, variables)
        for name in ("bn1", "bn2"):
            unbiased["params"][name]["bias"] = jnp.zeros_like(unbiased["params"][name]["bias"])
            unbiased["batch_stats"][name]["mean"] = jnp.zeros_like(unbiased["batch_stats"][name]["mean"])
        logit = model.apply(unbiased, x)[:, 2]
        for comp in ("epsilon", "epsilon_plus"):
            np.testing.assert_allclose(run(unbiased, comp).sum(axis=(1, 2, 3)), logit, rtol=1e-9, err_msg=comp)
        with pytest.raises(ValueError, match="epsilon_plus_flat"):
            jaxviz.lrp(model, variables, x, 2, composite="plus")
        with pytest.raises(TypeError, match="class logit"):
            jaxviz.lrp(model, variables, x, jaxviz.Channel("fc", 0))
        with pytest.raises(ValueError, match="alpha - beta"):
            jaxviz.attribution.lrp.AlphaBeta(2.0, 2.0)
