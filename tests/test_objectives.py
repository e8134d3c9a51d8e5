"""The objective algebra, and Lucid-style gradient-ascent tests: every objective rises when optimized."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxviz.core import loop
from jaxviz.core import objectives as obj
from jaxviz.synthesis import render
from jaxviz.synthesis import transforms as tfm
from jaxviz.synthesis.param import Pixel

from conftest import tiny_model

#: steps of Adam after which every objective must have risen.
ASCENT_STEPS = 6
ASCENT_OPTIMIZER = optax.adam(0.05)


def _objectives(mid: str, deep: str, channels: int):
    """One of each building block (plus a composite), at a mid and a deep layer of some model."""
    return {
        "channel": obj.channel(mid, 3),
        "neuron": obj.neuron(mid, 1),
        "dream": obj.dream((mid, deep)),
        "class_logit": obj.class_logit(7),
        "direction": obj.direction(mid, np.random.default_rng(0).normal(size=channels).astype(np.float32)),
        "diversity": obj.diversity(mid),
        "total_variation": obj.total_variation(),
        "l2": obj.l2(),
        "composite": obj.channel(mid, 2) - 0.5 * obj.total_variation() + 2 * obj.class_logit(3),
    }


def _rises(model, variables, objective, size, batch=2):
    key = jax.random.key(0)
    start = Pixel(noise=0.1).init(key, (batch, size, size, 3))
    before = obj.evaluate(objective, model, variables, start)
    out = render.render(key, model, variables, objective, image=start, param=Pixel(), transform=tfm.identity(),
                        optimizer=ASCENT_OPTIMIZER, steps=ASCENT_STEPS, progress=False)
    after = obj.evaluate(objective, model, variables, out.images)
    return np.asarray(before), np.asarray(after)


def _assert_rose(name, before, after):
    """Every image at least as good, the batch strictly better (a ReLU unit dead on one image stays at 0)."""
    assert np.all(after >= before - 1e-6) and after.mean() > before.mean(), f"{name}: {before} -> {after}"


TINY = tiny_model()


@pytest.mark.parametrize("name", list(_objectives("conv1", "conv2", 8)))
def test_every_objective_rises_on_a_tiny_model(name):
    model, variables = TINY
    before, after = _rises(model, variables, _objectives("conv1", "conv2", 8)[name], size=16)
    _assert_rose(name, before, after)


@pytest.mark.parametrize("name", ["channel", "neuron", "dream", "class_logit", "direction", "diversity", "composite"])
def test_every_objective_rises_on_the_default_model(name, lite0):
    model, variables = lite0
    objective = _objectives("blocks.5", "blocks.10", 80)[name]
    before, after = _rises(model, variables, objective, size=64)
    _assert_rose(name, before, after)


def _acts(seed=0):
    k = jax.random.split(jax.random.key(seed), 3)
    return {"a": jax.random.normal(k[0], (2, 4, 4, 5)), obj.LOGITS: jax.random.normal(k[1], (2, 10)),
            obj.INPUT: jax.random.uniform(k[2], (2, 6, 6, 3))}


def test_algebra_matches_the_arithmetic_of_its_parts():
    acts = _acts()
    a, b, c = obj.channel("a", 1), obj.class_logit(4), obj.total_variation()
    combined = a + 2 * b - c / 4 - 1.5 + 0.25 * (-a)
    expected = a(acts) + 2 * b(acts) - c(acts) / 4 - 1.5 - 0.25 * a(acts)
    chex.assert_trees_all_close(combined(acts), expected, atol=1e-6)
    assert combined.layers == ("a",)
    with pytest.raises(TypeError, match="scalars"):
        _ = a * b


def test_building_blocks_compute_what_they_say():
    acts = _acts(1)
    a = acts["a"]
    chex.assert_trees_all_close(obj.channel("a", 2)(acts), a[..., 2].mean(axis=(1, 2)), atol=1e-6)
    chex.assert_trees_all_close(obj.neuron("a", 3, 1, 2)(acts), a[:, 1, 2, 3], atol=1e-6)
    chex.assert_trees_all_close(obj.dream("a")(acts), jnp.mean(a ** 2, axis=(1, 2, 3)), atol=1e-6)
    chex.assert_trees_all_close(obj.class_logit(jnp.array([1, 2]))(acts), acts[obj.LOGITS][jnp.arange(2), [1, 2]])
    v = jnp.arange(5.0)
    chex.assert_trees_all_close(obj.direction("a", v)(acts), (a @ (v / jnp.linalg.norm(v))).mean(axis=(1, 2)),
                                atol=1e-5)
    x = acts[obj.INPUT]
    tv = (jnp.abs(jnp.diff(x, axis=1)).sum((1, 2, 3)) + jnp.abs(jnp.diff(x, axis=2)).sum((1, 2, 3))) / 36
    chex.assert_trees_all_close(obj.total_variation()(acts), tv, atol=1e-6)
    chex.assert_trees_all_close(obj.l2(0.5)(acts), jnp.sqrt(((x - 0.5) ** 2).sum((1, 2, 3))), atol=1e-5)
    same = obj.match_features("a", a)(acts)
    chex.assert_trees_all_close(same, jnp.zeros(2), atol=1e-6)
    # Two identical images are the least diverse pair: cosine similarity 1.
    twins = {**acts, "a": jnp.stack([a[0], a[0]])}
    chex.assert_trees_all_close(obj.diversity("a")(twins), -jnp.ones(2), atol=1e-5)


def test_stacked_objectives_vmap_and_share_one_program():
    acts = _acts(2)
    many = [obj.channel("a", c) * w for c, w in [(0, 1.0), (3, 2.0), (4, -1.0)]]
    stacked = obj.stack(many)
    out = jax.vmap(lambda o: o(acts))(stacked)
    chex.assert_trees_all_close(out, jnp.stack([o(acts) for o in many]), atol=1e-6)
    with pytest.raises(ValueError, match="same structure"):
        obj.stack([obj.channel("a", 0), obj.neuron("a", 0)])

    chex.clear_trace_counter()

    @jax.jit
    @chex.assert_max_traces(n=1)
    def value(o, acts):
        return o(acts)

    for o in many:  # different channel and weight values: one trace
        value(o, acts)


def test_render_does_not_recompile_for_new_values_and_is_deterministic():
    model, variables = TINY
    kwargs = dict(size=16, param=Pixel(), transform=tfm.standard(16 / 224), optimizer=ASCENT_OPTIMIZER,
                  steps=4, progress=False)
    first = render.render(jax.random.key(3), model, variables, obj.channel("conv2", 1), **kwargs)
    compiled = loop.compiled_programs()
    again = render.render(jax.random.key(3), model, variables, obj.channel("conv2", 1), **kwargs)
    other = render.render(jax.random.key(4), model, variables, obj.channel("conv2", 5), **{**kwargs, "steps": 9})
    assert loop.compiled_programs() == compiled
    np.testing.assert_array_equal(np.asarray(first.images), np.asarray(again.images))  # same key, same bits
    assert not np.array_equal(np.asarray(first.images), np.asarray(other.images))


def test_render_snapshots_and_unknown_layers():
    model, variables = TINY
    out = render.render(jax.random.key(0), model, variables, obj.channel("conv2", 0), size=16, steps=10,
                        thresholds=(0, 3, 10), chunk=4, progress=False)
    assert sorted(out.snapshots) == [0, 3, 10]
    np.testing.assert_allclose(out.snapshots[10], np.asarray(out.images))
    assert [s for s, _ in out.history] == [3, 4, 8, 10]
    assert np.all((out.images >= 0) & (out.images <= 1))
    with pytest.raises(ValueError, match="valid names: conv1, conv2"):
        render.render(jax.random.key(0), model, variables, obj.channel("conv9", 0), size=16, steps=1)
    with pytest.raises(ValueError, match="thresholds"):
        render.render(jax.random.key(0), model, variables, obj.channel("conv2", 0), size=16, steps=2,
                      thresholds=(5,))


def test_render_many_matches_separate_renders():
    model, variables = TINY
    kwargs = dict(size=16, param=Pixel(), transform=tfm.identity(), optimizer=ASCENT_OPTIMIZER, steps=5,
                  progress=False)
    objectives = [obj.channel("conv2", c) for c in (1, 6)]
    many = render.render_many(jax.random.key(0), model, variables, objectives, **kwargs)
    assert many.images.shape == (2, 1, 16, 16, 3)
    for i, o in enumerate(objectives):
        start = many.snapshots.get(0)
        assert start is None
        key_init, key_loop = jax.random.split(jax.random.key(0))
        k_init = jax.random.split(key_init, 2)[i]
        params = Pixel().init(k_init, (1, 16, 16, 3))
        one = render.optimize(jax.random.split(key_loop, 2)[i], model, variables, o, params, shape=(1, 16, 16, 3),
                              param=Pixel(), transform=tfm.identity(), optimizer=ASCENT_OPTIMIZER, steps=5,
                              progress=False)
        np.testing.assert_allclose(np.asarray(one.images), np.asarray(many.images[i]), atol=1e-5)
