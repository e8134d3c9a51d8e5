"""The digits experiment of data-free distillation: teacher, DeepInversion, students, ADI's diversity.

On scikit-learn's digits: a teacher trained in the repo, a fresh student distilled on DeepInversion images only
(:mod:`jaxviz.datafree.distill`), the same student distilled on Gaussian noise as a baseline, both scored on the
held-out real digits; and a diversity measurement of Adaptive DeepInversion (the competition term with a
student) against plain DeepInversion. ``jaxviz distill --digits`` runs it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import numpy as np

from jaxviz.datafree import deepinversion as di
from jaxviz.datafree.distill import distill, mean_pairwise_distance, noise_images
from jaxviz.experiments import digits
from jaxviz.models import digits_cnn as digits_model

__all__ = ["DIGITS_SETTINGS", "DigitsConfig", "run"]

#: DeepInversion's settings for the 32 px digits: no flips (a mirrored 2 is not a 2), a small jitter, one
#: resolution, a stronger BN and TV weight than ImageNet's (three BN layers constrain far less than 49).
DIGITS_SETTINGS = di.Settings(lr=0.05, warmup=20, bn=1.0, tv_l2=3e-3, jitter=2, flip=False, low_res_fraction=0.0)


@dataclasses.dataclass(frozen=True)
class DigitsConfig:
    """Sizes of the digits experiment (defaults: the README's full run; tests use smaller ones).

    Attributes:
        images_per_class: synthesized images per digit (also the noise baseline's count per digit).
        di_steps: DeepInversion steps per batch.
        student_steps: distillation steps per student.
        teacher_steps: training steps of the teacher.
        adi: weight of Adaptive DeepInversion's competition term in the diversity comparison.
        settings: DeepInversion's settings.
    """

    images_per_class: int = 40
    di_steps: int = 300
    student_steps: int = 2000
    teacher_steps: int = digits.TEACHER_STEPS
    adi: float = 1.0
    settings: di.Settings = DIGITS_SETTINGS


def run(key: jax.Array, config: DigitsConfig = DigitsConfig(), progress: bool | None = None,
                      log: Callable[[str], None] | None = None) -> dict[str, float]:
    """Teacher, DeepInversion, distilled student vs noise-distilled student, and ADI's diversity.

    Returns ``{"teacher_acc", "student_acc", "noise_baseline_acc", "diversity_di", "diversity_adi"}``:
    accuracies on the held-out real digits; diversities are the mean pairwise distance of the teacher's
    pooled features between same-class images of a second synthesized batch, made at equal steps either
    plainly or with the competition term against the student distilled on the first batch.
    """
    say = log or (lambda _: None)
    k_teacher, k_di, k_student, k_noise, k_noise_student, k_round2 = jax.random.split(key, 6)
    data = digits.load()
    teacher, teacher_vars = digits.teacher(k_teacher, data, steps=config.teacher_steps)
    teacher_acc = digits.accuracy(teacher, teacher_vars, data.test_images, data.test_labels)
    say(f"teacher: {teacher_acc:.3f} on {len(data.test_labels)} held-out digits")
    student = digits_model.build()
    targets = np.tile(np.arange(10), config.images_per_class)

    def invert(k, adi=0.0, student_vars=None):
        settings = dataclasses.replace(config.settings, adi=adi)
        return di.deepinversion(k, teacher, teacher_vars, targets, steps=config.di_steps, settings=settings,
                                student=(student, student_vars) if adi else None,
                                progress=progress).images

    synthetic = invert(k_di)
    student_vars = distill(k_student, teacher, teacher_vars, student, synthetic, steps=config.student_steps)
    student_acc = digits.accuracy(student, student_vars, data.test_images, data.test_labels)
    say(f"student distilled on {len(targets)} DeepInversion images: {student_acc:.3f}")
    noise = noise_images(k_noise, len(targets), digits_model.INPUT_SIZE)
    noise_vars = distill(k_noise_student, teacher, teacher_vars, student, noise, steps=config.student_steps)
    noise_acc = digits.accuracy(student, noise_vars, data.test_images, data.test_labels)
    say(f"student distilled on {len(targets)} Gaussian-noise images: {noise_acc:.3f}")

    def diversity(images):
        _, acts = teacher.apply(teacher_vars, images, capture=["avgpool"])
        return mean_pairwise_distance(acts["avgpool"], targets)

    plain, adaptive = invert(k_round2), invert(k_round2, config.adi, student_vars)
    div_di, div_adi = diversity(plain), diversity(adaptive)
    say(f"diversity (mean same-class feature distance): DeepInversion {div_di:.4f}, adaptive {div_adi:.4f}")
    return {"teacher_acc": teacher_acc, "student_acc": student_acc, "noise_baseline_acc": noise_acc,
            "diversity_di": div_di, "diversity_adi": div_adi}
