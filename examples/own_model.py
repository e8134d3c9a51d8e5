"""Bring your own model: a Flax linen CNN written the usual way, trained here, explained and inverted by jaxviz.

    python examples/own_model.py [--steps 400] [--out own_model.png]

The network below is not written for jaxviz: functional ``nn.relu``, BatchNorm with a ``train`` flag,
``nn.remat`` on a block, its own optax training loop on scikit-learn's digits (no download). One call,
``models.from_linen``, makes it a jaxviz model; then saliency, guided backprop, Grad-CAM, DeepDream and
DeepInversion run on it unchanged. About a minute on 2 CPU cores.
"""

from __future__ import annotations

import argparse

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxviz
from jaxviz import models
from jaxviz.datafree import deepinversion as di
from jaxviz.experiments import digits
from jaxviz.experiments.digits_distill import DIGITS_SETTINGS
from jaxviz.io import image, plot
from jaxviz.synthesis import dream


class Block(nn.Module):
    features: int
    train: bool

    @nn.compact
    def __call__(self, x):
        x = nn.Conv(self.features, (3, 3), use_bias=False)(x)
        x = nn.BatchNorm(use_running_average=not self.train, momentum=0.9)(x)
        return nn.relu(x)


class DigitNet(nn.Module):
    """A user's CNN: [0, 1] grey-as-RGB digits in, 10 logits out."""

    @nn.compact
    def __call__(self, x, train: bool = True):
        x = Block(16, train, name="block1")(x)
        x = nn.max_pool(x, (2, 2), (2, 2))
        x = nn.remat(Block)(32, train, name="block2")(x)
        x = nn.max_pool(x, (2, 2), (2, 2))
        x = Block(64, train, name="block3")(x)
        return nn.Dense(10, name="classifier")(x.mean(axis=(1, 2)))


def train(key, data, steps: int):
    """An ordinary optax loop (nothing from jaxviz)."""
    net = DigitNet()
    variables = net.init(key, jnp.zeros((1, 32, 32, 3)))
    tx = optax.adam(3e-3)
    opt_state = tx.init(variables["params"])

    @jax.jit
    def step(variables, opt_state, x, y):
        def loss(params):
            logits, updates = net.apply({**variables, "params": params}, x, mutable=["batch_stats"])
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), updates

        (value, updates), g = jax.value_and_grad(loss, has_aux=True)(variables["params"])
        u, opt_state = tx.update(g, opt_state)
        return {"params": optax.apply_updates(variables["params"], u), **updates}, opt_state, value

    rng = np.random.default_rng(0)
    for _ in range(steps):
        idx = rng.integers(0, len(data.train_labels), 64)
        variables, opt_state, _ = step(variables, opt_state, data.train_images[idx], data.train_labels[idx])
    return net, variables


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=400, help="training steps (batch 64)")
    p.add_argument("--out", default="own_model.png")
    args = p.parse_args(argv)

    data = digits.load()
    net, variables = train(jax.random.key(0), data, args.steps)
    model, variables = models.from_linen(net, variables, input_size=32, apply_kwargs={"train": False},
                                         name="DigitNet", labels="digits")
    print("layers:", ", ".join(model.layers))
    accuracy = np.mean(np.asarray(model.apply(variables, jnp.asarray(data.test_images))).argmax(-1)
                       == data.test_labels)
    print(f"test accuracy {accuracy:.3f}; Grad-CAM layer {model.cam_layer}")

    x = jnp.asarray(data.test_images[:4])
    y = jnp.asarray(data.test_labels[:4])
    sal = jaxviz.reduce_channels(jaxviz.saliency(model, variables, x, y))
    gbp = jaxviz.guided_backprop(model, variables, x, y)
    cam = jaxviz.grad_cam(model, variables, x, y, layer="block2")
    dreams = dream.dream(jax.random.key(1), model, variables, x, "block2", steps=10, octaves=2, jitter=2).images
    # The digits experiment's settings (strong BN-statistic and TV weights for a small grey-image network).
    inverted = di.deepinversion(jax.random.key(2), model, variables, list(range(10)), steps=300,
                                settings=DIGITS_SETTINGS, progress=True).images
    judged = np.asarray(model.apply(variables, inverted)).argmax(-1)
    print("the network's own reading of the inverted digits:", judged.tolist())

    tiles, captions = [], []
    for i in range(4):
        img = np.asarray(x[i])
        tiles += [img, plot.overlay(img, np.asarray(sal[i])), plot.signed(np.asarray(gbp[i])),
                  plot.overlay(img, np.asarray(cam[i])), np.asarray(dreams[i])]
        captions += [f"digit {int(y[i])}", "saliency", "guided backprop", "Grad-CAM block2", "DeepDream block2"]
    tiles += list(np.asarray(inverted))
    captions += [f"inverted {c}" for c in range(10)]
    tiles = [image.resize(t, 96, 96) for t in tiles]
    image.save_png(args.out, image.grid(tiles, captions, cols=5, label_height=14))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
