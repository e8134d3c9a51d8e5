"""Sanity checks for saliency maps (Adebayo et al., NeurIPS 2018) on the embedded default.

    python examples/sanity_checks.py [--sample chelsea] [--out sanity_checks.png]

Cascading randomization of EfficientNet-Lite0 from ``fc`` down to ``conv_stem``
(``jaxviz.metrics.randomization.model_parameter_randomization``): after each parameter group is re-drawn, every
method explains the same class again. The picture: one row per method, its map on the original network and after
randomizing down to a few depths, and the absolute Spearman correlation with the original map at every depth.
The paper's finding: guided backprop's map barely changes while the top layers are random (it reconstructs the
image more than it explains the model); gradients and Grad-CAM decorrelate.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

import jaxviz
from jaxviz import models
from jaxviz.io import image, plot
from jaxviz.metrics import randomization

#: the depths shown as pictures (the chart has them all).
SHOWN = ("fc", "conv_head", "blocks.15", "blocks.11", "blocks.6", "blocks.2", "conv_stem")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sample", default="chelsea")
    p.add_argument("--out", default="sanity_checks.png")
    args = p.parse_args(argv)

    model, variables = models.load(models.DEFAULT_MODEL)
    x = jnp.asarray(image.sample(args.sample, model.input_size))[None]
    target = int(jnp.argmax(jax.jit(model.apply)(variables, x)[0]))
    groups = list(reversed(randomization.parameter_groups(model, variables, x)))
    methods = {
        "gradient": lambda *a: jaxviz.reduce_channels(jaxviz.saliency(*a)),
        "guided BP": lambda *a: jaxviz.reduce_channels(jaxviz.guided_backprop(*a)),
        "int. grads": lambda *a: jaxviz.reduce_channels(jaxviz.integrated_gradients(*a, steps=16)),
        "Grad-CAM": jaxviz.grad_cam,
    }
    key = jax.random.key(0)
    tiles, captions, curves = [], [], {}
    for name, fn in methods.items():
        explain = jax.jit(lambda v, fn=fn: fn(model, v, x, target))
        original = explain(variables)
        scores, row = [], {"original": original}
        for depth, group in enumerate(groups):
            maps = explain(randomization.randomize(key, variables, groups[:depth + 1]))
            scores.append(float(randomization.similarity(original, maps, "abs_spearman")[0]))
            if group in SHOWN:
                row[group] = maps
        curves[name] = (np.arange(len(groups)), np.nan_to_num(scores))
        print(f"{name:11s} " + " ".join(f"{g}:{s:.2f}" for g, s in zip(groups, scores, strict=True)), flush=True)
        for depth, maps in row.items():
            heat = np.abs(np.asarray(maps[0]))
            tiles.append(plot.overlay(np.asarray(x[0]), heat) if heat.max() > 0 else np.asarray(x[0]) * 0.3)
            captions.append(f"{name}: {depth}" if depth == "original" else f"to {depth}")
    grid = image.grid(tiles, captions, cols=len(SHOWN) + 1, label_height=16)
    chart = plot.line_chart(curves, title="Spearman correlation of |map| with the original, fc down",
                            x_label="parameter groups re-drawn (fc ... conv_stem)", y_range=(-1.0, 1.0),
                            size=(grid.shape[1], 260))
    image.save_png(args.out, np.concatenate([grid, chart], axis=0))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
