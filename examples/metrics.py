"""Which map to trust: deletion and insertion curves of every attribution method, and their areas.

    python examples/metrics.py [--samples chelsea,coffee] [--out metrics.png]

On the embedded default (EfficientNet-Lite0) and the bundled photos, each method explains the photo's top class;
``jaxviz.metrics.faithfulness`` removes (deletion, onto black) or restores (insertion, onto a blur) the pixels in
the order of the map, ``--pixels-per-step`` at a time, and records the class's probability. Prints the table of
areas (mean over the photos); writes one deletion and one insertion chart per photo.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

import jaxviz
from jaxviz import metrics, models
from jaxviz.io import image, plot


def methods(key):
    def pixels(fn):
        return lambda *a: jaxviz.reduce_channels(fn(*a))

    return {
        "saliency": pixels(jaxviz.saliency),
        "grad x input": pixels(jaxviz.gradient_x_input),
        "smoothgrad": pixels(lambda *a: jaxviz.smoothgrad(key, *a, samples=25)),
        "int. grads": pixels(lambda *a: jaxviz.integrated_gradients(*a, steps=32)),
        "guided BP": pixels(jaxviz.guided_backprop),
        "DeepLIFT": pixels(jaxviz.deeplift),
        "LRP": pixels(jaxviz.lrp),  # EpsilonPlusFlat
        "guided IG": pixels(lambda *a: jaxviz.guided_integrated_gradients(*a, steps=32)),
        "XRAI": lambda *a: jaxviz.xrai(*a, steps=32),
        "occlusion": lambda *a: jaxviz.occlusion(*a, patch=32, stride=16)[..., 0],
        "Grad-CAM": jaxviz.grad_cam,
        "Grad-CAM++": jaxviz.grad_cam_plus_plus,
        "random": lambda m, v, x, t: jax.random.uniform(jax.random.key(1), x.shape[:3]),
    }


#: methods that run partly on the host (XRAI's segmentation and ranking): called, not jitted as a whole.
HOST_SIDE = ("XRAI",)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--samples", default="chelsea,coffee")
    p.add_argument("--pixels-per-step", type=int, default=224 * 8)
    p.add_argument("--out", default="metrics.png")
    args = p.parse_args(argv)

    model, variables = models.load(models.DEFAULT_MODEL)
    names = args.samples.split(",")
    x = jnp.asarray(np.stack([image.sample(n, model.input_size) for n in names]))
    target = jnp.argmax(jax.jit(model.apply)(variables, x), axis=1)
    kw = dict(pixels_per_step=args.pixels_per_step, curve=True, batch_size=32)
    curves = {}
    for name, fn in methods(jax.random.key(0)).items():
        start = time.perf_counter()
        if name in HOST_SIDE:
            maps = fn(model, variables, x, target)
        else:
            maps = jax.jit(lambda v, x, t, fn=fn: fn(model, v, x, t))(variables, x, target)
        curves[name] = (np.asarray(metrics.faithfulness.deletion(model, variables, x, target, maps, baseline="black",
                                                                 **kw)),
                        np.asarray(metrics.faithfulness.insertion(model, variables, x, target, maps, **kw)))
        print(f"{name:13s} {time.perf_counter() - start:5.1f} s (with compilation)", flush=True)
    steps = next(iter(curves.values()))[0].shape[1]
    frac = np.linspace(0, 1, steps)
    print("\n| method | deletion AUC (lower is better) | insertion AUC (higher is better) |\n|---|---|---|")
    for name, (d, i) in curves.items():
        area = lambda c: float(np.mean(np.trapezoid(c, frac, axis=1)))  # noqa: E731
        print(f"| {name} | {area(d):.3f} | {area(i):.3f} |")
    charts = []
    for k, photo in enumerate(names):
        for kind, col in (("deletion", 0), ("insertion", 1)):
            charts.append(plot.line_chart({n: (frac, c[col][k]) for n, c in curves.items()},
                                          title=f"{kind}: {photo} ({jaxviz.imagenet_labels()[int(target[k])]})",
                                          x_label="fraction of pixels " + ("removed" if col == 0 else "restored"),
                                          y_range=(0.0, 1.0), size=(360, 260), legend=col == 0))
    image.save_png(args.out, image.grid(charts, cols=2, pad=4))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
