"""Generator synthesis (Fast-DFKD) and data-free class-incremental learning (ABD) on the digits, at a small scale.

One module-scoped first task (digits 0-4) serves both halves: it is the generator's teacher and the frozen
previous model of the second task (digits 5-9).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxviz import cli
from jaxviz.datafree import distill, generator, incremental
from jaxviz.datafree.deepinversion import js_divergence
from jaxviz.experiments import digits, digits_distill, digits_incremental
from jaxviz.models import digits_cnn

FIRST, SECOND = (0, 1, 2, 3, 4), (5, 6, 7, 8, 9)
#: the small runs: 150 steps of 32 real images per task, 20 generator rounds of 30 images (6 per old digit).
SETTINGS = incremental.Settings(steps=150, batch_size=32)
GEN = dataclasses.replace(digits_distill.DIGITS_GENERATOR, batch_size=30, adv=0.0)
ROUNDS = 20
CHUNK = 5
TARGETS = np.tile(np.asarray(FIRST), 6)
#: the first task's floor on its own held-out digits (150 steps gave 0.98 here).
MIN_FIRST_ACC = 0.9
#: how much more of the old digits ABD must keep than fine-tuning (0.0 for fine-tuning; see the test).
MIN_RETENTION_GAIN = 0.2


@pytest.fixture(scope="module")
def first():
    data = digits.load()
    model = digits_cnn.build()
    keep = np.isin(data.train_labels, FIRST)
    init = model.init(jax.random.key(0), digits_cnn.INPUT_SIZE)
    variables = incremental.learn_task(jax.random.key(1), model, init, data.train_images[keep],
                                       data.train_labels[keep], new=FIRST, settings=SETTINGS).variables
    return data, model, variables


@pytest.fixture(scope="module")
def synthesized(first):
    _, model, variables = first
    return generator.synthesize(jax.random.key(2), model, variables, TARGETS, rounds=ROUNDS, settings=GEN, chunk=CHUNK,
                                progress=False)


def _held_out(data, classes):
    keep = np.isin(data.test_labels, classes)
    return data.test_images[keep], data.test_labels[keep]


def test_the_first_task_is_learned(first):
    data, model, variables = first
    assert digits_incremental.seen_accuracy(model, variables, *_held_out(data, FIRST), FIRST) >= MIN_FIRST_ACC


def test_generator_images_raise_the_teachers_target_probability_over_noise(first, synthesized):
    _, model, variables = first
    images = np.asarray(synthesized.images)
    assert images.shape == (len(TARGETS), 32, 32, 3) and images.min() >= 0.0 and images.max() <= 1.0
    noise = distill.noise_images(jax.random.key(3), len(TARGETS), 32)

    def target_prob(x):
        p = jax.nn.softmax(digits.predict(model, variables, x))
        return float(np.mean(p[np.arange(len(TARGETS)), TARGETS]))

    gen, base = target_prob(images), target_prob(noise)
    assert gen > base + 0.3, (gen, base)
    assert synthesized.student is None and len(synthesized.history) == ROUNDS // CHUNK


def test_an_interrupted_generator_run_resumes_to_the_same_images(first, synthesized, tmp_path):
    _, model, variables = first

    def stop(r, _):
        if r == CHUNK + 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        generator.synthesize(jax.random.key(2), model, variables, TARGETS, rounds=ROUNDS, settings=GEN, chunk=CHUNK,
                             progress=False, checkpoint=tmp_path / "ckpt", callback=stop)
    resumed = generator.synthesize(jax.random.key(2), model, variables, TARGETS, rounds=ROUNDS, settings=GEN,
                                   chunk=2, progress=False, checkpoint=tmp_path / "ckpt")
    assert resumed.resumed_from == CHUNK
    np.testing.assert_array_equal(np.asarray(resumed.images), np.asarray(synthesized.images))
    jax.tree.map(np.testing.assert_array_equal, resumed.generator, synthesized.generator)


def test_the_generator_maximizes_the_students_disagreement(first):
    """The adversarial term is minus ``adv`` times the teacher-student JS divergence: the generator's loss is
    lowered by exactly ``adv * JS`` (so descending it raises the disagreement)."""
    _, model, variables = first
    module = generator._module(10, 32, GEN)
    params = generator.init_generator(jax.random.key(4), 10, 32, GEN)
    z = jax.random.normal(jax.random.key(5), (10, GEN.noise_dim))
    targets = jnp.asarray(TARGETS[:10])
    other = model.init(jax.random.key(6), 32)

    def loss(adv):
        settings = dataclasses.replace(GEN, adv=adv, jitter=0)
        return float(generator.generator_loss(params, z, targets, jax.random.key(7), variables, other,
                                              module=module, teacher=model, student=model, settings=settings))

    x = module.apply({"params": params}, z, targets)
    js = float(jnp.mean(js_divergence(model.apply(variables, x), model.apply(other, x))))
    assert js > 1e-3
    np.testing.assert_allclose(loss(2.0), loss(0.0) - 2.0 * js, rtol=1e-4)


def test_the_reptile_step_moves_the_meta_init_toward_the_adapted_weights():
    meta = {"w": jnp.array([0.0, 2.0]), "b": jnp.array(1.0)}
    adapted = {"w": jnp.array([4.0, 2.0]), "b": jnp.array(-1.0)}
    moved = generator.reptile(meta, adapted, 0.25)
    np.testing.assert_allclose(moved["w"], [1.0, 2.0])
    np.testing.assert_allclose(moved["b"], 0.5)
    jax.tree.map(np.testing.assert_array_equal, generator.reptile(meta, adapted, 0.0), meta)


def test_abd_replay_keeps_the_old_digits_that_fine_tuning_forgets(first, synthesized):
    data, model, variables = first
    keep = np.isin(data.train_labels, SECOND)
    x, y = data.train_images[keep], data.train_labels[keep]
    common = dict(new=SECOND, seen=range(10), previous=variables, settings=SETTINGS)
    tuned = incremental.learn_task(jax.random.key(8), model, variables, x, y, **common).variables
    abd = incremental.learn_task(jax.random.key(8), model, variables, x, y, method="abd",
                                 synthetic=(synthesized.images, TARGETS), **common).variables
    old = {name: digits_incremental.seen_accuracy(model, v, *_held_out(data, FIRST), range(10))
           for name, v in (("finetune", tuned), ("abd", abd))}
    new = {name: digits_incremental.seen_accuracy(model, v, *_held_out(data, SECOND), range(10))
           for name, v in (("finetune", tuned), ("abd", abd))}
    assert old["abd"] > old["finetune"] + MIN_RETENTION_GAIN, (old, new)
    assert new["abd"] > 0.5 and new["finetune"] > 0.9, (old, new)


def test_features_are_the_heads_input(first):
    data, model, variables = first
    x = data.test_images[:4]
    feats, logits, stats = incremental.features_and_logits(model, variables, x)
    ref_logits, acts = model.apply(variables, x, capture=["avgpool"])
    np.testing.assert_allclose(np.asarray(feats), np.asarray(acts["avgpool"]), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(logits), np.asarray(ref_logits), rtol=1e-5, atol=1e-5)
    assert stats is None
    with pytest.raises(ValueError, match="no module named 'head'"):
        incremental.features_and_logits(model, variables, x, head="head")


def test_the_losses_on_hand_set_values():
    logits = jnp.array([[2.0, 1.0, 5.0], [0.0, 3.0, 1.0]])
    mask = jnp.array([True, True, False])  # the third class is left out of the softmax
    expected = -np.log(np.exp([2.0, 3.0]) / np.exp([[2.0, 1.0], [0.0, 3.0]]).sum(1))
    np.testing.assert_allclose(incremental.local_cross_entropy(logits, jnp.array([0, 1]), mask), expected, rtol=1e-6)
    kernel = jnp.array([[1.0, -3.0, 9.0], [1.0, 1.0, 9.0]])  # features x classes; class 2 is not old
    w = incremental.feature_importance(kernel, jnp.array([True, True, False]))
    np.testing.assert_allclose(w, [4 / 3, 2 / 3], rtol=1e-6)
    f, p = jnp.array([[1.0, 1.0]]), jnp.array([[0.0, 3.0]])
    np.testing.assert_allclose(incremental.feature_distillation(f, p, w), (4 / 3 * 1 + 2 / 3 * 4) / 2, rtol=1e-6)
    # three old classes and one new: a batch of one image of each old class and three of the new one gives
    # every class the same total weight
    labels = jnp.array([0, 1, 2, 3, 3, 3])
    balance = incremental.class_balance(labels, jnp.array([True, True, True, False]), jnp.ones(4, bool))
    np.testing.assert_allclose(balance, [0.75, 0.75, 0.75, 0.25, 0.25, 0.25], rtol=1e-6)
    np.testing.assert_allclose(np.bincount(np.asarray(labels), weights=np.asarray(balance)), 0.75, rtol=1e-6)


def test_learn_task_refuses_what_it_cannot_do(first):
    data, model, variables = first
    x, y = data.train_images[:8], data.train_labels[:8]
    with pytest.raises(ValueError, match="method must be one of"):
        incremental.learn_task(jax.random.key(0), model, variables, x, y, new=range(10), method="ewc")
    with pytest.raises(ValueError, match="synthetic"):
        incremental.learn_task(jax.random.key(0), model, variables, x, y, new=range(10), method="replay")
    with pytest.raises(ValueError, match="every label must be a new class"):
        incremental.learn_task(jax.random.key(0), model, variables, x, y, new=[0])
    with pytest.raises(ValueError, match="needs a student"):
        generator.synthesize(jax.random.key(0), model, variables, [0], settings=generator.Settings())
    with pytest.raises(ValueError, match="divisible by 8"):
        generator.synthesize(jax.random.key(0), model, variables, [0], size=36, settings=GEN)


class _Stop(Exception):
    """Stands for a run stopped between two stages (Ctrl-C, a killed job)."""


def test_an_interrupted_incremental_run_resumes_after_its_last_stage(tmp_path, monkeypatch):
    config = digits_incremental.IncrementalConfig(images_per_class=6, generator_rounds=2, generator_settings=GEN,
                                                  settings=dataclasses.replace(SETTINGS, steps=20),
                                                  methods=("finetune", "abd"))
    data, key = digits.load(), jax.random.key(5)
    whole = digits_incremental.run(key, config, data)

    def stop_after_finetune(line):
        if line.startswith("finetune, task 2"):
            raise _Stop

    with pytest.raises(_Stop):
        digits_incremental.run(key, config, data, log=stop_after_finetune, checkpoint=tmp_path)
    calls, learn = [], incremental.learn_task
    monkeypatch.setattr(incremental, "learn_task", lambda *a, **k: calls.append(k.get("method")) or learn(*a, **k))
    resumed = digits_incremental.run(key, config, data, checkpoint=tmp_path)
    assert calls == ["abd"]  # the first task and fine-tuning's second came from the checkpoint
    for method in config.methods:
        for field in ("final_acc", "per_task", "after_task"):
            assert resumed[method][field] == whole[method][field], (method, field)
    with pytest.raises(ValueError, match="different incremental run"):
        digits_incremental.run(jax.random.key(6), config, data, checkpoint=tmp_path)


@pytest.mark.parametrize("argv, message", [
    (["incremental"], "--digits"),
    (["incremental", "--digits", "--tasks", "3"], "invalid choice"),
    (["incremental", "--digits", "--steps", "0"], "--steps must be >= 1"),
    (["incremental", "--digits", "--images-per-class", "x"], "--images-per-class must be an integer"),
    (["distill", "--digits", "--synth", "gan"], "invalid choice"),
    (["distill", "--digits", "--synth", "generator", "--rounds", "-1"], "--rounds must be >= 1"),
    (["incremental", "--digits", "--checkpoint", __file__], "is a file; give a directory"),
])
def test_cli_mistakes_are_one_line_and_exit_2(capsys, argv, message):
    code = cli.main(argv)
    _, err = capsys.readouterr()
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_cli_defaults_equal_the_experiments():
    from jaxviz.cli import datafree

    config, distill_config = digits_incremental.IncrementalConfig(), digits_distill.DigitsConfig()
    assert datafree.INCREMENTAL == {"images_per_class": config.images_per_class, "di_steps": config.di_steps,
                                    "generator_rounds": config.generator_rounds, "steps": config.settings.steps}
    assert datafree.DIGITS["generator_rounds"] == distill_config.generator_rounds
    assert datafree.SYNTHS == digits_distill.SYNTHS and datafree.TASKS == tuple(digits_incremental.TASKS)
