"""The one loop driver: every optimization resumes from its checkpoint to the uninterrupted result."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxviz.core import loop
from jaxviz.core import objectives as obj
from jaxviz.datafree import deepinversion as di
from jaxviz.io import image
from jaxviz.models import digits_cnn
from jaxviz.style import fast
from jaxviz.synthesis import render

from conftest import tiny_model


class Interrupted(Exception):
    pass


def _dies_at(step_number: int):
    def callback(step, value):
        if step == step_number:
            raise Interrupted

    return callback


def _descent(x, i, data):
    g = 2 * (x - data["target"])
    return x - 0.1 * g, jnp.sum((x - data["target"]) ** 2)


@pytest.mark.parametrize("mode", loop.MODES)
def test_both_modes_give_the_same_steps_history_and_values(mode):
    data = {"target": jnp.arange(3.0)}
    out = loop.run(_descent, jnp.zeros(3), data, steps=10, chunk=4, boundaries=(5,), mode=mode, progress=False)
    expected = np.arange(3.0) * (1 - 0.8 ** 10)
    np.testing.assert_allclose(out.carry, expected, rtol=1e-6)
    assert [s for s, _ in out.history] == [4, 5, 8, 10] and sorted(out.values) == list(range(1, 11))
    before_last = np.arange(3.0) * (1 - 0.8 ** 9)  # a step's value is its loss before its update
    np.testing.assert_allclose(out.values[10], np.sum((before_last - np.arange(3.0)) ** 2), rtol=1e-5)


def test_progress_is_log_lines_where_stderr_is_not_a_terminal(capsys):
    from jaxviz.core import progress

    progress.log_when_not_a_terminal(every=0.0)
    try:
        loop.run(_descent, jnp.zeros(3), {"target": jnp.ones(3)}, steps=8, chunk=4, desc="descent", progress=None)
    finally:
        progress.log_when_not_a_terminal(False)
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0].startswith("descent: 4/8 (50%)") and lines[-1].startswith("descent: 8/8 (100%)"), lines
    assert "left" in lines[0]


def test_phases_stop_early_and_bad_arguments():
    double = loop.step(lambda x, i, d, *, k: (x * k, x.sum()), k=2.0)
    triple = loop.step(lambda x, i, d, *, k: (x * k, x.sum()), k=3.0)
    out = loop.run([(2, double), (5, triple)], jnp.ones(1), None, steps=5, chunk=4, progress=False)
    np.testing.assert_allclose(out.carry, [2 * 2 * 3 * 3 * 3])
    assert [s for s, _ in out.history] == [2, 4, 5]  # chunks never straddle a phase switch
    early = loop.run(double, jnp.ones(1), None, steps=100, chunk=3, progress=False,
                     stop_when=lambda x: bool(x[0] > 50))
    assert early.history[-1][0] == 6 and float(early.carry[0]) == 64
    assert loop.step(_descent, a=1) == loop.step(_descent, a=1)  # equal bindings share compiled programs
    with pytest.raises(ValueError, match="non-negative integer"):
        loop.run(_descent, jnp.zeros(3), {"target": jnp.zeros(3)}, steps=-1)
    with pytest.raises(ValueError, match="mode must be one of"):
        loop.run(_descent, jnp.zeros(3), {"target": jnp.zeros(3)}, steps=1, mode="turbo")


def test_render_resumes_to_the_uninterrupted_result(tmp_path):
    model, variables = tiny_model(16)
    kwargs = dict(size=16, steps=9, chunk=3, progress=False)
    objective = obj.channel("conv2", 1)
    whole = render.render(jax.random.key(0), model, variables, objective, **kwargs)
    ckpt = tmp_path / "render"
    with pytest.raises(Interrupted):
        render.render(jax.random.key(0), model, variables, objective, checkpoint=ckpt, callback=_dies_at(5),
                      **kwargs)
    assert loop.checkpoint_step(ckpt) == 3
    resumed = render.render(jax.random.key(0), model, variables, objective, checkpoint=ckpt, **kwargs)
    np.testing.assert_allclose(np.asarray(resumed.images), np.asarray(whole.images), atol=1e-6)
    assert [s for s, _ in resumed.history] == [3, 6, 9]  # the checkpoint kept the history before it
    with pytest.raises(ValueError, match="different run"):
        render.render(jax.random.key(1), model, variables, objective, checkpoint=ckpt, **kwargs)


def test_deepinversion_resumes_to_the_uninterrupted_result(tmp_path):
    model = digits_cnn.build()
    variables = model.init(jax.random.key(3), 32)
    kwargs = dict(size=32, steps=6, chunk=2, progress=False,
                  settings=di.Settings(lr=0.05, warmup=2, jitter=2, low_res_fraction=0.5))
    whole = di.deepinversion(jax.random.key(0), model, variables, [1, 2], **kwargs)
    ckpt = tmp_path / "di"
    with pytest.raises(Interrupted):
        di.deepinversion(jax.random.key(0), model, variables, [1, 2], checkpoint=ckpt, callback=_dies_at(3),
                         **kwargs)
    assert loop.checkpoint_step(ckpt) == 2  # inside the low-resolution phase
    resumed = di.deepinversion(jax.random.key(0), model, variables, [1, 2], checkpoint=ckpt, **kwargs)
    np.testing.assert_allclose(np.asarray(resumed.images), np.asarray(whole.images), atol=1e-6)


def test_fast_style_training_resumes_to_the_uninterrupted_result(tmp_path):
    model, variables = tiny_model(32)
    photos = np.random.default_rng(0).uniform(size=(3, 32, 32, 3)).astype(np.float32)
    kwargs = dict(steps=4, size=32, batch_size=2, net=fast.TransformNet((4, 8, 8), 1), style_weight=1e3,
                  style_layers=("conv1", "conv2"), content_layer="conv2", progress=False, checkpoint_every=2)
    style = image.sample("gravel", 32)
    whole = fast.train(jax.random.key(1), model, variables, style, photos, **kwargs)
    ckpt = tmp_path / "fast"
    with pytest.raises(Interrupted):
        fast.train(jax.random.key(1), model, variables, style, photos, checkpoint=ckpt, callback=_dies_at(3),
                   **kwargs)
    resumed = fast.train(jax.random.key(1), model, variables, style, photos, checkpoint=ckpt, **kwargs)
    assert resumed.resumed_from == 2
    for a, b in zip(jax.tree.leaves(resumed.stylizer.params), jax.tree.leaves(whole.stylizer.params), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6)
