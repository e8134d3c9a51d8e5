"""Data-free distillation from the embedded default, at a small scale: ten ImageNet classes, 64 px.

    python examples/imagenet_distillation.py           # about 5 minutes on 2 CPU cores; prints the README's table
    python examples/imagenet_distillation.py --out d   # and writes d/imagenet_distillation.png

EfficientNet-Lite0 (real ImageNet weights) is the teacher; no ImageNet image is used. Ten of its classes are
synthesized, ten images each, by the Fast-DFKD generator (:mod:`jaxviz.datafree.generator`) and by DeepInversion
(:mod:`jaxviz.datafree.deepinversion`, the model family's recommended MACO settings, 200 steps); Gaussian noise is
the baseline. A small colour CNN (``digits_cnn.small_cnn``, ten outputs) is distilled on each image set: its targets
are the teacher's temperature-softened outputs over the ten classes, computed once per image (a teacher forward
per student step would cost more than the student). It is scored on real photographs: random crops of
scikit-image's bundled pictures that the teacher assigns to one of the ten classes (over all 1,000), the
student asked which of the ten the teacher chose; the balanced agreement averages it per class, so that a
student that always answers the most frequent class does not look good.

The ten classes are the teacher's most frequent top-1 classes over crops of the bundled pictures at 64 px cut
with another seed than the evaluation's (chain mail, Egyptian cat, racket, starfish, ..., candle).
"""

import argparse
import dataclasses
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxviz import models
from jaxviz.datafree import deepinversion as di
from jaxviz.datafree import distill, generator, training
from jaxviz.io import image, labels
from jaxviz.models import digits_cnn

SIZE = 64
CLASSES = (490, 285, 752, 327, 807, 54, 440, 967, 557, 470)
PER_CLASS = 10
#: the generator on Lite0 (measured on seed 0, see the README): the BN-statistic weight of DeepInversion's
#: ImageNet settings (0.01; the digits' 1.0 drowns the class term in 49 layers' statistics: the teacher put none
#: of 100 images in its class), the generator trained on across rounds (meta_lr 1) with 5 steps each, and the
#: adversarial student of Fast-DFKD (without it the images collapse to one dark picture per class, in their class
#: for the teacher but useless to a student).
GENERATOR = dataclasses.replace(generator.Settings(), batch_size=50, width=32, inner_steps=5, meta_lr=1.0, bn=0.01,
                                adv=1.0)
ROUNDS = 40
DI_STEPS = 200
STUDENT_STEPS = 500
TEMPERATURE = 4.0

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--out", default=None, help="folder for imagenet_distillation.png")
parser.add_argument("--seed", type=int, default=0, help="PRNG seed (synthesis, the students)")
args = parser.parse_args()

teacher, variables = models.load("efficientnet_lite0")
names = labels.labels_for(teacher)
teach = jax.jit(teacher.apply)
classes = jnp.asarray(CLASSES)


def teacher_logits(images):
    return jnp.concatenate([teach(variables, jnp.asarray(images[i:i + 50])) for i in range(0, len(images), 50)])


crops = image.sample_crops(per_image=40, size=SIZE, seed=2)
full = np.asarray(teacher_logits(crops))
keep = np.isin(full.argmax(-1), CLASSES)
real, real_labels = crops[keep], full[keep][:, CLASSES].argmax(-1)

student = digits_cnn.small_cnn(len(CLASSES), SIZE)
#: the generator's adversary, trained on its images as it goes: the teacher's 1,000 outputs
adversary = digits_cnn.small_cnn(teacher.num_classes, SIZE)
key = jax.random.key(args.seed)
k_gen, k_adv, k_di, k_noise, k_student = jax.random.split(key, 5)
score = jax.jit(student.apply)


def distilled(images):
    """A fresh student trained on ``images`` to match the teacher's softened outputs over the ten classes."""
    soft = jax.nn.softmax(teacher_logits(images)[:, classes] / TEMPERATURE)
    out = training.fit(k_student, student, images, soft, steps=STUDENT_STEPS, temperature=TEMPERATURE,
                       max_shift=3, optimizer=training.adam_cosine(distill.DEFAULT_LR, STUDENT_STEPS))
    right = np.asarray(score(out.variables, jnp.asarray(real))).argmax(-1) == real_labels
    return float(np.mean(right)), float(np.mean([right[real_labels == c].mean() for c in np.unique(real_labels)]))


targets = np.tile(np.asarray(CLASSES), PER_CLASS)
rows, sets = [], {}
for name, make in (
        ("Fast-DFKD generator", lambda: generator.synthesize(
            k_gen, teacher, variables, targets, rounds=ROUNDS, size=SIZE, settings=GENERATOR,
            student=(adversary, adversary.init(k_adv, SIZE)), progress=False).images),
        ("DeepInversion (MACO)", lambda: di.deepinversion(k_di, teacher, variables, targets, size=SIZE, steps=DI_STEPS,
                                                          settings=di.recommended(teacher), progress=False).images),
        ("Gaussian noise", lambda: distill.noise_images(k_noise, len(targets), SIZE))):
    start = time.perf_counter()
    images = np.asarray(make())
    seconds = time.perf_counter() - start
    in_class = float(np.mean(np.asarray(teacher_logits(images)).argmax(-1) == targets))
    sets[name] = images
    agree, balanced = distilled(images)
    rows.append(f"| {name} | {seconds:.0f} | {in_class:.2f} | {agree:.3f} | {balanced:.3f} |")
    print(rows[-1], flush=True)

print(f"\n{len(real)} real crops the teacher puts in one of the ten classes, {len(np.unique(real_labels))} of them "
      "present; a student that always answers one class agrees on that class's share of the crops, and on 1 / "
      "(classes present) of the balanced agreement (the mean over classes of the share of its crops it gets right).\n")
print("| images | synthesis s | teacher's top-1 = target | student agrees with the teacher on real crops | balanced |")
print("|---|---:|---:|---:|---:|")
print("\n".join(rows))
if args.out:
    pictures = [sets[n][i] for n in sets for i in range(len(CLASSES))]
    captions = [names[c][:12] for _ in sets for c in CLASSES]
    path = Path(args.out) / "imagenet_distillation.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save_png(path, image.grid(pictures, captions, cols=len(CLASSES)))
    print(f"wrote {path}")
