"""Every attribution method on one photo, side by side, with the embedded default.

    python examples/attribution.py [--sample chelsea] [--out attribution.png]
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

import jaxviz
from jaxviz import models
from jaxviz.attribution.mask import saliency_to_mask
from jaxviz.io import image, plot


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sample", default="chelsea")
    p.add_argument("--model", default=models.DEFAULT_MODEL)
    p.add_argument("--out", default="attribution.png")
    args = p.parse_args(argv)

    model, variables = models.load(args.model)
    x = jnp.asarray(image.sample(args.sample, model.input_size))[None]
    target = int(jnp.argmax(jax.jit(model.apply)(variables, x)[0]))
    key = jax.random.key(0)
    methods = {
        "saliency": jaxviz.saliency,
        "smoothgrad": lambda *a: jaxviz.smoothgrad(key, *a, samples=25),
        "integrated gradients": lambda *a: jaxviz.integrated_gradients(*a, steps=64),
        "guided backprop": jaxviz.guided_backprop,
        "deconvnet": jaxviz.deconvnet,
        "occlusion": lambda *a: jaxviz.occlusion(*a, patch=32, stride=16),
        "CAM": jaxviz.cam,
        "Grad-CAM": jaxviz.grad_cam,
        "gradient x input": jaxviz.gradient_x_input,
        "blur IG": lambda *a: jaxviz.blur_integrated_gradients(*a, steps=32),
        "RISE (1000 masks)": lambda *a: jaxviz.rise(key, *a, masks=1000),
        "Grad-CAM++": jaxviz.grad_cam_plus_plus,
        "LayerCAM": jaxviz.layer_cam,
        "Score-CAM": jaxviz.score_cam,
        "Ablation-CAM": jaxviz.ablation_cam,
        "guided Grad-CAM": jaxviz.guided_grad_cam,
    }
    tiles, captions = [np.asarray(x[0])], [f"{jaxviz.imagenet_labels()[target]}"]
    for name, fn in methods.items():
        start = time.perf_counter()
        maps = np.asarray(jax.jit(lambda v, x, fn=fn: fn(model, v, x, target))(variables, x))[0]
        print(f"{name:22s} {time.perf_counter() - start:5.1f} s (with compilation)")
        if name in ("guided backprop", "deconvnet", "guided Grad-CAM"):
            tiles.append(plot.signed(maps))
        else:
            heat = maps if maps.ndim == 2 else np.asarray(jaxviz.reduce_channels(maps[None]))[0]
            tiles.append(plot.overlay(np.asarray(x[0]), heat))
        captions.append(name)
        if name == "smoothgrad":
            smooth = np.asarray(jaxviz.reduce_channels(maps[None]))[0]
    mask = saliency_to_mask(np.asarray(x[0]), smooth)
    tiles.append(np.asarray(x[0]) * mask[..., None])
    captions.append("GrabCut from smoothgrad")
    image.save_png(args.out, image.grid(tiles, captions, cols=6, label_height=16))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
