"""The digits experiment of data-free distillation: teacher, synthesis, students, ADI's diversity.

On scikit-learn's digits: a teacher trained in the repo, images synthesized from it by DeepInversion
(:mod:`jaxviz.datafree.deepinversion`) or by the meta-learned generator of Fast-DFKD
(:mod:`jaxviz.datafree.generator`, ``config.synth="generator"``), timed; a fresh student distilled on those images
only (:mod:`jaxviz.datafree.distill`), the same student distilled on Gaussian noise as a baseline, both scored on
the held-out real digits; and, with DeepInversion, a diversity measurement of Adaptive DeepInversion (the
competition term with a student) against plain DeepInversion. ``jaxviz distill --digits [--synth generator]``
runs it.
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
from jaxviz.datafree import generator
from jaxviz.datafree.distill import distill, mean_pairwise_distance, noise_images
from jaxviz.experiments import digits
from jaxviz.models import digits_cnn as digits_model

__all__ = ["DIGITS_SETTINGS", "DIGITS_GENERATOR", "SYNTHS", "DigitsConfig", "run"]

#: DeepInversion's settings for the 32 px digits: no flips (a mirrored 2 is not a 2), a small jitter, one
#: resolution, a stronger BN and TV weight than ImageNet's (three BN layers constrain far less than 49).
DIGITS_SETTINGS = di.Settings(lr=0.05, warmup=20, bn=1.0, tv_l2=3e-3, jitter=2, flip=False, low_res_fraction=0.0)
#: the generator's settings for the 32 px digits (the library's defaults were chosen on them, one teacher, 20 rounds:
#: width 16 and 2 inner steps gave a student of 0.936 in 101 s of synthesis, 5 inner steps 0.928 in 369 s; a class
#: weight of 5 instead of 1 raised the teacher's mean target probability from 0.51 to 0.76, the student 0.939).
#: 6 rounds (the default run): 4 fill the bank of 400, 2 refresh half; benchmarks/datafree.py measured a student of
#: 0.942 from 6 rounds and 0.939 from 20, against DeepInversion's 0.925 in 10x the time.
DIGITS_GENERATOR = generator.Settings()
#: what synthesizes the student's images.
SYNTHS = ("deepinversion", "generator")


@dataclasses.dataclass(frozen=True)
class DigitsConfig:
    """Sizes of the digits experiment (defaults: the README's full run; tests use smaller ones).

    Attributes:
        images_per_class: synthesized images per digit (also the noise baseline's count per digit).
        synth: what synthesizes them, one of :data:`SYNTHS`.
        di_steps: DeepInversion steps per batch.
        generator_rounds: the generator's synthesis rounds.
        student_steps: distillation steps per student.
        teacher_steps: training steps of the teacher.
        adi: weight of Adaptive DeepInversion's competition term in the diversity comparison.
        diversity_steps: DeepInversion steps of each diversity batch (``None``: ``di_steps``).
        settings: DeepInversion's settings.
        generator_settings: the generator's settings.
    """

    images_per_class: int = 40
    synth: str = "deepinversion"
    di_steps: int = 300
    generator_rounds: int = 6
    student_steps: int = 2000
    teacher_steps: int = digits.TEACHER_STEPS
    adi: float = 1.0
    diversity_steps: int | None = None
    settings: di.Settings = DIGITS_SETTINGS
    generator_settings: generator.Settings = DIGITS_GENERATOR


def run(key: jax.Array, config: DigitsConfig = DigitsConfig(), progress: bool | None = None,
        log: Callable[[str], None] | None = None, checkpoint: str | os.PathLike | None = None) -> dict[str, float]:
    """Teacher, synthesis, distilled student vs noise-distilled student, and (DeepInversion) ADI's diversity.

    Returns ``{"synth", "teacher_acc", "student_acc", "noise_baseline_acc", "synthesis_seconds"}``, and with
    DeepInversion ``"diversity_di", "diversity_adi"``, with the generator ``"cotrained_student_acc"``:
    accuracies on the held-out real digits; ``synthesis_seconds`` the wall time of the synthesis call
    (compilation included); diversities are the mean pairwise distance of the teacher's pooled features between
    same-class images of a second synthesized batch, made at equal steps either plainly or with the competition
    term against the student distilled on the first batch; ``cotrained_student_acc`` the generator's adversary,
    trained on its memory bank during the synthesis.

    ``checkpoint``: a directory where every finished stage (the teacher, the synthesized images, each student,
    the diversity batches) is saved; the same call after an interruption resumes after the last finished stage
    and returns the uninterrupted run's results (``synthesis_seconds`` is the first run's).
    """
    if config.synth not in SYNTHS:
        raise ValueError(f"synth must be one of {', '.join(SYNTHS)}, got {config.synth!r}")
    say = log or (lambda _: None)
    k_teacher, k_di, k_student, k_noise, k_noise_student, k_round2 = jax.random.split(key, 6)
    data = digits.load()
    student = digits_model.build()
    init = jax.eval_shape(lambda k: student.init(k, digits_model.INPUT_SIZE), jax.random.key(0))  # a template
    targets = np.tile(np.arange(10), config.images_per_class)
    images = jax.ShapeDtypeStruct((len(targets), digits_model.INPUT_SIZE, digits_model.INPUT_SIZE, 3), np.float32)
    fingerprint = repr((np.asarray(jax.random.key_data(key)).tolist(), config, len(data.train_labels)))

    def stage(name, compute, template=init):
        return loop.saved_stage(checkpoint, name, compute, template=template, fingerprint=fingerprint,
                                what="distillation run")

    teacher = student  # digits.teacher trains the same digits CNN; only its variables are a stage
    teacher_vars, _ = stage("teacher", lambda: (digits.teacher(k_teacher, data, steps=config.teacher_steps)[1], None))
    teacher_acc = digits.accuracy(teacher, teacher_vars, data.test_images, data.test_labels)
    say(f"teacher: {teacher_acc:.3f} on {len(data.test_labels)} held-out digits")

    def invert(k, adi=0.0, student_vars=None, steps=config.di_steps):
        settings = dataclasses.replace(config.settings, adi=adi)
        return di.deepinversion(k, teacher, teacher_vars, targets, steps=steps, settings=settings,
                                student=(student, student_vars) if adi else None,
                                progress=progress).images

    def synthesize():
        extra, start = {}, time.perf_counter()
        if config.synth == "deepinversion":
            synthetic = invert(k_di)
        else:
            adversary = (student, student.init(k_round2, digits_model.INPUT_SIZE))
            out = generator.synthesize(k_di, teacher, teacher_vars, targets, rounds=config.generator_rounds,
                                       student=adversary if config.generator_settings.adv else None,
                                       settings=config.generator_settings, progress=progress)
            synthetic = out.images
            if out.student is not None:
                extra["cotrained_student_acc"] = digits.accuracy(student, out.student, data.test_images,
                                                                 data.test_labels)
        jax.block_until_ready(synthetic)
        return synthetic, {"synthesis_seconds": time.perf_counter() - start, **extra}

    synthetic, extra = stage("synthesis", synthesize, images)
    say(f"{config.synth}: {len(targets)} images in {extra['synthesis_seconds']:.1f} s")
    student_vars, _ = stage("student", lambda: (distill(k_student, teacher, teacher_vars, student, synthetic,
                                                        steps=config.student_steps), None))
    student_acc = digits.accuracy(student, student_vars, data.test_images, data.test_labels)
    say(f"student distilled on {len(targets)} {config.synth} images: {student_acc:.3f}")
    noise = noise_images(k_noise, len(targets), digits_model.INPUT_SIZE)
    noise_vars, _ = stage("noise-student", lambda: (distill(k_noise_student, teacher, teacher_vars, student, noise,
                                                            steps=config.student_steps), None))
    noise_acc = digits.accuracy(student, noise_vars, data.test_images, data.test_labels)
    say(f"student distilled on {len(targets)} Gaussian-noise images: {noise_acc:.3f}")

    result = {"synth": config.synth, "teacher_acc": teacher_acc, "student_acc": student_acc,
              "noise_baseline_acc": noise_acc, **extra}
    if config.synth != "deepinversion":
        return result

    def diversity(images):
        _, acts = teacher.apply(teacher_vars, images, capture=["avgpool"])
        return mean_pairwise_distance(acts["avgpool"], targets)

    steps = config.di_steps if config.diversity_steps is None else config.diversity_steps
    plain, _ = stage("diversity-plain", lambda: (invert(k_round2, steps=steps), None), images)
    adaptive, _ = stage("diversity-adaptive", lambda: (invert(k_round2, config.adi, student_vars, steps=steps), None),
                        images)
    div_di, div_adi = diversity(plain), diversity(adaptive)
    say(f"diversity (mean same-class feature distance): DeepInversion {div_di:.4f}, adaptive {div_adi:.4f}")
    return result | {"diversity_di": div_di, "diversity_adi": div_adi}
