"""The digits experiment of data-free class-incremental learning: fine-tuning, DeepInversion replay, ABD, joint.

scikit-learn's digits arrive in tasks: 2 tasks (0-4, then 5-9) or 5 tasks (0-1, 2-3, ..., 8-9). The first task
is learned once, on its real images, and shared by the methods; every later task is learned from the model
after the previous one by :func:`jaxviz.datafree.incremental.learn_task`, with the old classes' real images
gone:

* ``finetune``: the new task's real images only (the catastrophic-forgetting floor);
* ``deepinversion``: plain replay of DeepInversion images of the old classes, synthesized from the frozen
  previous model;
* ``abd``: Always Be Dreaming's losses (local cross-entropy, head-only balanced cross-entropy,
  importance-weighted feature distillation) on images of the old classes synthesized from the frozen previous
  model by ``config.abd_synth`` (the meta-learned generator of :mod:`jaxviz.datafree.generator` by default);
* ``joint``: one model trained on every real training image of all classes (the ceiling).

Every model is scored on the held-out real digits of all classes. ``jaxviz incremental --digits`` runs it.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable

import jax
import numpy as np

from jaxviz.core import loop
from jaxviz.datafree import deepinversion as di
from jaxviz.datafree import generator, incremental
from jaxviz.experiments import digits
from jaxviz.experiments.digits_distill import DIGITS_GENERATOR, DIGITS_SETTINGS
from jaxviz.models import digits_cnn as digits_model

__all__ = ["IncrementalConfig", "TASKS", "METHODS", "splits", "run", "seen_accuracy"]

#: the supported splits: number of tasks -> the classes of each task.
TASKS = {2: ((0, 1, 2, 3, 4), (5, 6, 7, 8, 9)), 5: ((0, 1), (2, 3), (4, 5), (6, 7), (8, 9))}
METHODS = ("finetune", "deepinversion", "abd", "joint")


@dataclasses.dataclass(frozen=True)
class IncrementalConfig:
    """Sizes of the experiment (defaults: the README's runs; tests use smaller ones).

    Attributes:
        tasks: 2 or 5 (:data:`TASKS`).
        images_per_class: synthesized images per old class at each new task.
        di_steps: DeepInversion steps per replay batch.
        generator_rounds: generator rounds per replay batch.
        abd_synth: what synthesizes ABD's replay: ``"generator"`` or ``"deepinversion"``.
        settings: how each task is learned (steps, batch, learning rate, ABD's weights).
        di_settings: DeepInversion's settings (the distillation experiment's).
        generator_settings: the generator's settings (no adversary: nothing is distilled while synthesizing).
        methods: which of :data:`METHODS` to run.
    """

    tasks: int = 2
    images_per_class: int = 20
    di_steps: int = 200
    generator_rounds: int = 20
    abd_synth: str = "generator"
    settings: incremental.Settings = incremental.Settings(steps=300)
    di_settings: di.Settings = DIGITS_SETTINGS
    generator_settings: generator.Settings = dataclasses.replace(DIGITS_GENERATOR, adv=0.0)
    methods: tuple[str, ...] = METHODS


def splits(tasks: int) -> tuple[tuple[int, ...], ...]:
    """The classes of each task."""
    if tasks not in TASKS:
        raise ValueError(f"tasks must be one of {', '.join(map(str, TASKS))}, got {tasks}")
    return TASKS[tasks]


def seen_accuracy(model, variables, images, labels, seen) -> float:
    """Top-1 accuracy with the prediction restricted to the ``seen`` classes."""
    logits = digits.predict(model, variables, images)
    mask = np.zeros(logits.shape[1], bool)
    mask[list(seen)] = True
    return float(np.mean(np.where(mask, logits, -np.inf).argmax(-1) == np.asarray(labels)))


def _synthesize(key, how: str, model, variables, old, config: IncrementalConfig):
    targets = np.tile(np.asarray(old, np.int32), config.images_per_class)
    if how == "deepinversion":
        images = di.deepinversion(key, model, variables, targets, steps=config.di_steps,
                                  settings=config.di_settings, progress=False).images
    else:
        images = generator.synthesize(key, model, variables, targets, rounds=config.generator_rounds,
                                      settings=config.generator_settings, progress=False).images
    return np.asarray(images), targets


def run(key: jax.Array, config: IncrementalConfig = IncrementalConfig(), data: digits.Digits | None = None,
        log: Callable[[str], None] | None = None, checkpoint: str | os.PathLike | None = None) -> dict:
    """Every method of ``config.methods`` on the split of ``config.tasks`` tasks.

    ``checkpoint``: a directory where every finished stage (the joint model, the first task, each method after
    each task) is saved; a run stopped between stages and started again with the same key and config resumes
    after the last finished one and returns the uninterrupted run's results.

    Returns:
        ``{method: {"final_acc", "per_task", "after_task", "synthesis_seconds"}}``: ``final_acc`` on the held-out
        digits of all classes after the last task; ``per_task`` the accuracy on each task's held-out digits then
        (predictions over all classes); ``after_task`` the accuracy over the classes seen so far after each task;
        ``synthesis_seconds`` the wall time spent synthesizing replay images.
    """
    say = log or (lambda _: None)
    for m in config.methods:
        if m not in METHODS:
            raise ValueError(f"methods must be among {', '.join(METHODS)}, got {m!r}")
    if config.abd_synth not in ("generator", "deepinversion"):
        raise ValueError(f"abd_synth must be 'generator' or 'deepinversion', got {config.abd_synth!r}")
    task_classes = splits(config.tasks)
    data = data if data is not None else digits.load()
    model = digits_model.build()
    k_init, k_first, k_joint, k_tasks = jax.random.split(key, 4)
    init = model.init(k_init, digits_model.INPUT_SIZE)
    x, y, tx, ty = data.train_images, data.train_labels, data.test_images, data.test_labels

    def task_data(classes):
        keep = np.isin(y, classes)
        return x[keep], y[keep]

    def scores(variables, seen_until):
        seen = [c for t in task_classes[:seen_until] for c in t]
        return seen_accuracy(model, variables, tx[np.isin(ty, seen)], ty[np.isin(ty, seen)], seen)

    fingerprint = repr((np.asarray(jax.random.key_data(key)).tolist(), config, len(y), len(ty)))

    def stage(name, compute):
        return loop.saved_stage(checkpoint, name, compute, template=init, fingerprint=fingerprint,
                                what="incremental run")

    results = {}
    if "joint" in config.methods:
        joint, _ = stage("joint", lambda: (incremental.learn_task(k_joint, model, init, x, y, new=range(10),
                                                                  settings=config.settings).variables, None))
        results["joint"] = {"after_task": [scores(joint, len(task_classes))], "synthesis_seconds": 0.0}
        say(f"joint training on all real digits: {results['joint']['after_task'][-1]:.3f}")
    first, _ = stage("first", lambda: (incremental.learn_task(
        k_first, model, init, *task_data(task_classes[0]), new=task_classes[0], settings=config.settings).variables,
        None))
    say(f"task 1 ({task_classes[0]}): {scores(first, 1):.3f}")
    for method in (m for m in config.methods if m != "joint"):
        variables, after, seconds = first, [scores(first, 1)], 0.0
        for t in range(1, len(task_classes)):
            def learn(method=method, t=t, previous=variables):
                k_syn, k_learn = jax.random.split(jax.random.fold_in(k_tasks, t), 2)
                old = [c for task in task_classes[:t] for c in task]
                synthetic, seconds = None, 0.0
                if method != "finetune":
                    how = "deepinversion" if method == "deepinversion" else config.abd_synth
                    start = time.perf_counter()
                    synthetic = _synthesize(k_syn, how, model, previous, old, config)
                    seconds = time.perf_counter() - start
                learned = incremental.learn_task(
                    k_learn, model, previous, *task_data(task_classes[t]), new=task_classes[t],
                    seen=old + list(task_classes[t]), previous=previous, synthetic=synthetic,
                    method={"finetune": "finetune", "deepinversion": "replay", "abd": "abd"}[method],
                    settings=config.settings).variables
                return learned, {"synthesis_seconds": seconds}

            variables, info = stage(f"{method}-task{t + 1}", learn)
            seconds += info["synthesis_seconds"]
            after.append(scores(variables, t + 1))
            say(f"{method}, task {t + 1} ({task_classes[t]}): {after[-1]:.3f} over the classes seen")
        results[method] = {"after_task": after, "synthesis_seconds": seconds, "variables": variables}
    for method, r in results.items():
        variables = r.pop("variables", None) if method != "joint" else joint
        r["final_acc"] = r["after_task"][-1]
        r["per_task"] = [seen_accuracy(model, variables, tx[np.isin(ty, c)], ty[np.isin(ty, c)], range(10))
                         for c in task_classes]
    return {m: results[m] for m in config.methods if m in results}
