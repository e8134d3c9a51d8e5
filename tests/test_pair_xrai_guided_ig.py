"""Guided IG and XRAI against PAIR's ``saliency`` package (``GuidedIG``, ``XRAI``), in float64.

PAIR's methods are framework-agnostic: they call a ``call_model_function`` for input gradients. Here it is the
PyTorch twin of the port (ResNet-50, random weights, 96 px; see test_attribution_parity.py), so both sides
differentiate the same network at the same points; and, to test the algorithms with nothing else in between,
jaxviz's own gradient of a tiny network (then the two agree to rounding).

The ResNet-50 pair has softplus in place of every ReLU, as in that file's IG test: XRAI's baselines are constant
images, where whole planes of pre-activations are equal, and one IG point (the white baseline at alpha 2/7) puts
one within rounding of 0, so the two sides take different sides of the kink (4e-3 of the gradient's maximum, 1e-4
of XRAI's map). The ReLU gradient itself is what the saliency parity test checks.

PAIR 0.2.1's ``GuidedIG`` calls ``np.quantile(..., interpolation="lower")``, a keyword NumPy 2 removed (it is now
``method=``, same meaning); the tests pass it through.
"""

from __future__ import annotations

import copy

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from test_attribution_parity import ATTR_RTOL, TARGETS, _pair_gradients, _resnet

import jaxviz
from jaxviz.attribution.gradients import saliency
from jaxviz.attribution.guided_ig import guided_integrated_gradients
from jaxviz.attribution.xrai import felzenszwalb_regions, xrai, xrai_integrated_gradients

from conftest import assert_close_to_max, tiny_model

pair = pytest.importorskip("saliency.core")
pair_xrai = pytest.importorskip("saliency.core.xrai")

#: jaxviz's gradients fed to PAIR: the same numbers on both sides, so only the algorithm's rounding differs.
SAME_GRADIENT_RTOL = 1e-12
TINY_SIZE = 32
TINY_TARGETS = (3, 7)


@pytest.fixture(autouse=True)
def float64():
    with jax.enable_x64(True):
        yield


@pytest.fixture(autouse=True)
def numpy_quantile_interpolation(monkeypatch):
    """NumPy 2 spells PAIR's ``interpolation=`` as ``method=``."""
    quantile = np.quantile

    def compat(a, q, *args, interpolation=None, **kw):
        return quantile(a, q, *args, **({"method": interpolation} if interpolation else {}), **kw)

    monkeypatch.setattr(np, "quantile", compat)


@pytest.fixture(scope="module")
def resnet():
    with jax.enable_x64(True):
        torch_net, model, variables, size, _, _ = _resnet()
        photos = np.stack([jaxviz.io.image.sample(n, size) for n in ("chelsea", "coffee")]).astype(np.float64)
        variables = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), variables)
    smooth = copy.deepcopy(torch_net)
    for module in smooth.modules():
        for name, child in module.named_children():
            if isinstance(child, torch.nn.ReLU):
                setattr(module, name, torch.nn.Softplus())
    return dict(torch=smooth.double(), model=model.with_act(jax.nn.softplus), variables=variables, x=photos)


@pytest.fixture(scope="module")
def tiny():
    with jax.enable_x64(True):
        model, variables = tiny_model(TINY_SIZE)
        variables = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), variables)
        photos = np.stack([jaxviz.io.image.sample(n, TINY_SIZE) for n in ("astronaut", "rocket")]).astype(np.float64)
        grad = jax.jit(lambda x, t: saliency(model, variables, x, t))
    return dict(model=model, variables=variables, x=photos, grad=grad)


@pytest.fixture(scope="module")
def pair_regions(tiny):
    """PAIR's own Felzenszwalb regions of the tiny photos."""
    return [pair_xrai._get_segments_felzenszwalb(image) for image in tiny["x"]]


def _jax_gradients(tiny, target):
    """A PAIR ``call_model_function`` returning jaxviz's own input gradients of the tiny network."""
    def call_model_function(batch, call_model_args=None, expected_keys=None):
        g = tiny["grad"](jnp.asarray(batch), jnp.full(len(batch), target))
        return {pair.INPUT_OUTPUT_GRADIENTS: np.asarray(g)}

    return call_model_function


def _pair_guided_ig(s, gradients, targets, baseline=None, **kw):
    return np.stack([pair.GuidedIG().GetMask(s["x"][i], gradients(s, t), x_baseline=baseline, **kw)
                     for i, t in enumerate(targets)])


def test_guided_ig_matches_pair(resnet):
    """PAIR's defaults but 8 steps, on the PyTorch twin's gradients."""
    theirs = _pair_guided_ig(resnet, _pair_gradients, TARGETS, x_steps=8)
    ours = jax.jit(lambda v, x: guided_integrated_gradients(resnet["model"], v, x, jnp.asarray(TARGETS), steps=8))(
        resnet["variables"], resnet["x"])
    assert_close_to_max(ours, theirs, ATTR_RTOL, "guided IG")


@pytest.mark.parametrize("options", [dict(steps=10, fraction=0.1, max_dist=0.1, batch_size=1),
                                     dict(steps=6, fraction=1.0, max_dist=0.0),
                                     dict(steps=5, fraction=0.5, max_dist=1.0)],
                         ids=["narrow", "straight-line", "unbounded"])
def test_guided_ig_walk_matches_pair(tiny, options):
    """The walk itself, on the same gradients, a grey baseline, other fractions and distances."""
    kw = dict(options)
    batch_size = kw.pop("batch_size", None)
    theirs = _pair_guided_ig(tiny, lambda s, t: _jax_gradients(s, t), TINY_TARGETS,
                             baseline=np.full(tiny["x"].shape[1:], 0.5), x_steps=kw["steps"],
                             fraction=kw["fraction"], max_dist=kw["max_dist"])
    ours = jax.jit(lambda x: guided_integrated_gradients(tiny["model"], tiny["variables"], x,
                                                         jnp.asarray(TINY_TARGETS), baseline=0.5,
                                                         batch_size=batch_size, **kw))(tiny["x"])
    assert_close_to_max(ours, theirs, SAME_GRADIENT_RTOL, f"guided IG {options}")


def test_xrai_regions_equal_pairs(tiny, pair_regions):
    """Felzenszwalb at PAIR's six scales on the 224 px resize, back to size, dilated: the same masks."""
    for image, theirs in zip(tiny["x"], pair_regions, strict=True):
        np.testing.assert_array_equal(np.stack(felzenszwalb_regions(image)), np.stack(theirs))


@pytest.mark.parametrize("algorithm, area_threshold", [("full", 1.0), ("full", 0.3), ("fast", 1.0)])
def test_xrai_ranking_matches_pair(tiny, pair_regions, algorithm, area_threshold):
    """The greedy ranking alone: the same base attribution (random, signed) and PAIR's own segments."""
    x, segments = tiny["x"], pair_regions
    base = np.random.default_rng(0).normal(size=x.shape)
    params = pair.XRAIParameters(algorithm=algorithm, area_threshold=area_threshold)
    theirs = np.stack([pair.XRAI().GetMask(x[i], None, segments=segments[i], base_attribution=base[i],
                                           extra_parameters=params) for i in range(len(x))])
    ours = xrai(tiny["model"], tiny["variables"], x, 0, segments=segments, base_attribution=base,
                algorithm=algorithm, area_threshold=area_threshold)
    assert ours.shape == x.shape[:3]
    assert_close_to_max(ours, theirs, SAME_GRADIENT_RTOL, f"XRAI ranking {algorithm} {area_threshold}")


def test_xrai_integrated_gradients_match_pair(tiny):
    """PAIR's IG rule (linspace points, equal weights; 2 and 7 steps) from its min/max baselines, averaged.

    PAIR accumulates the gradients in float32, hence the tolerance."""
    x, xr = tiny["x"], pair.XRAI()
    for steps in (2, 7):
        theirs = np.stack([np.mean(xr._get_integrated_gradients(x[i], _jax_gradients(tiny, t), None,
                                                                xr._make_baselines(x[i], None), steps, 4), axis=0)
                           for i, t in enumerate(TINY_TARGETS)])
        ours = jax.jit(xrai_integrated_gradients, static_argnums=0, static_argnames="steps")(
            tiny["model"], tiny["variables"], x, jnp.asarray(TINY_TARGETS), steps=steps)
        assert_close_to_max(ours, theirs, ATTR_RTOL, f"XRAI IG {steps} steps")


def test_xrai_matches_pair_end_to_end(resnet):
    """IG from PAIR's baselines on the PyTorch twin's gradients (5 steps), Felzenszwalb regions, full ranking."""
    x = resnet["x"]
    params = pair.XRAIParameters(steps=5)
    theirs = np.stack([pair.XRAI().GetMask(x[i], _pair_gradients(resnet, t), batch_size=5, extra_parameters=params)
                       for i, t in enumerate(TARGETS)])
    ours = xrai(resnet["model"], resnet["variables"], x, jnp.asarray(TARGETS), steps=5)
    assert_close_to_max(ours, theirs, ATTR_RTOL, "XRAI")


def test_guided_ig_rejects_a_bad_fraction(tiny):
    with pytest.raises(ValueError, match="fraction"):
        guided_integrated_gradients(tiny["model"], tiny["variables"], tiny["x"], 0, fraction=0.0)


def test_xrai_rejects_bad_inputs(tiny):
    x = tiny["x"]
    with pytest.raises(ValueError, match="algorithm"):
        xrai(tiny["model"], tiny["variables"], x, 0, base_attribution=x, algorithm="greedy")
    with pytest.raises(ValueError, match="base_attribution"):
        xrai(tiny["model"], tiny["variables"], x, 0, base_attribution=x[:, :-1])
    with pytest.raises(ValueError, match="one list of masks per image"):
        xrai(tiny["model"], tiny["variables"], x, 0, base_attribution=x, segments=[[]])
