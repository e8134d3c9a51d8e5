"""The ``jaxviz`` command line.

User mistakes (a missing or broken image, an unknown model or layer, missing
weights) print one line on stderr and exit with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, as for every other user mistake
        raise _UsageError(f"{self.prog}: {message}")


class _UsageError(Exception):
    pass


def _image_args(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("image", nargs="?", help="path to an image file")
    src.add_argument("--sample", help="a bundled scikit-image photo: chelsea, coffee, astronaut, rocket")


def _model_args(p: argparse.ArgumentParser) -> None:
    from jaxviz.models import DEFAULT_MODEL

    p.add_argument("--model", default=DEFAULT_MODEL, help=f"model name (default {DEFAULT_MODEL}); see `jaxviz layers`")
    p.add_argument("--weights", default="default", help="'default', or a .pth/.safetensors/.npz file")


def _input(args, size: int):
    from jaxviz import image

    return image.sample(args.sample, size) if args.sample else image.load_image(args.image, size)


def cmd_classify(args) -> None:
    import jax
    import jax.numpy as jnp

    from jaxviz import models, top_k

    model = models.build(args.model)  # validates the name before any heavy work
    if args.top < 1:
        raise ValueError(f"--top must be at least 1, got {args.top}")
    img = _input(args, model.input_size)
    model, variables = models.load(args.model, args.weights)
    logits = jax.jit(model.apply)(variables, jnp.asarray(img)[None])
    preds = top_k(model, logits, args.top)[0]
    if args.json:
        print(json.dumps(preds))
    else:
        for p in preds:
            print(f"{p['prob']:7.2%}  {p['class']:4d}  {p['label']}")


def cmd_layers(args) -> None:
    import jax
    import jax.numpy as jnp

    from jaxviz import models

    model = models.build(args.model)
    dummy = jax.ShapeDtypeStruct((1, model.input_size, model.input_size, 3), jnp.float32)
    variables = jax.eval_shape(model.init, jax.random.key(0))
    _, acts = jax.eval_shape(lambda v, x: model.apply(v, x, capture=model.layers), variables, dummy)
    rows = [{"name": n, "shape": list(acts[n].shape[1:])} for n in model.layers]
    if args.json:
        print(json.dumps(rows))
    else:
        print(f"{model.name}: {len(rows)} layers at {model.input_size} px (shapes without the batch axis)")
        for r in rows:
            print(f"  {r['name']:<16} {tuple(r['shape'])}")


SALIENCY_METHODS = ("vanilla", "guided", "deconvnet", "smoothgrad", "ig", "occlusion", "cam", "gradcam")


def _attribute(args, model, variables, x, target):
    """Runs the chosen method; returns (H, W, 3) picture tile and the raw map."""
    import functools

    import jax
    import numpy as np

    import jaxviz
    from jaxviz import plot

    methods = {
        "vanilla": jaxviz.saliency,
        "guided": jaxviz.guided_backprop,
        "deconvnet": jaxviz.deconvnet,
        "smoothgrad": functools.partial(jaxviz.smoothgrad, key=jax.random.key(args.seed), samples=args.samples),
        "ig": functools.partial(jaxviz.integrated_gradients, steps=args.steps),
        "occlusion": functools.partial(jaxviz.occlusion, patch=args.patch, stride=args.stride),
        "cam": jaxviz.cam,
        "gradcam": functools.partial(jaxviz.grad_cam, layer=args.layer),
    }
    maps = np.asarray(jax.jit(lambda v, x: methods[args.method](model, v, x, target))(variables, x))[0]
    if args.method in ("cam", "gradcam"):
        return plot.overlay(np.asarray(x[0]), maps), maps
    if args.method in ("guided", "deconvnet"):
        return plot.signed(maps), maps
    return plot.overlay(np.asarray(x[0]), np.asarray(jaxviz.reduce_channels(maps[None]))[0]), maps


def cmd_saliency(args) -> None:
    import time

    import jax
    import jax.numpy as jnp
    import numpy as np

    from jaxviz import image, labels, models
    from jaxviz.targets import Neuron

    model = models.build(args.model)
    if args.layer is not None:
        models.check_names(args.layer, model.layers)
    if args.method == "cam" and args.layer is not None:
        raise ValueError("--method cam uses the model's last spatial layer; use --method gradcam for --layer")
    img = _input(args, model.input_size)
    model, variables = models.load(args.model, args.weights)
    x = jnp.asarray(img)[None]
    start = time.perf_counter()
    if args.target is None:
        args.target = int(jnp.argmax(jax.jit(model.apply)(variables, x)[0]))
    if not 0 <= args.target < model.num_classes:
        raise ValueError(f"--target must be a class index in [0, {model.num_classes}), got {args.target}")
    target = args.target
    if args.layer is not None and args.method not in ("gradcam",):
        target = Neuron(args.layer, args.channel)  # explain one unit of a mid-level layer
    tile, maps = _attribute(args, model, variables, x, target)
    if not np.all(np.isfinite(maps)):
        raise ValueError(f"{args.method} produced non-finite values")
    seconds = time.perf_counter() - start
    name = labels.labels_for(model)[args.target]
    what = f"{args.layer}[{args.channel}]" if isinstance(target, Neuron) else name
    caption = f"{args.method}: {what}"
    image.save_png(args.out, image.grid([img, tile], ["input", caption], cols=2, label_height=16))
    summary = {"method": args.method, "model": model.name, "target": args.target, "label": name,
               "layer": args.layer, "out": str(args.out), "seconds": round(seconds, 3)}
    print(json.dumps(summary) if args.json else f"wrote {args.out} ({args.method}, {name}, {seconds:.1f} s)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="jaxviz", description="CNN visualization and inversion in JAX.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("classify", help="top-k ImageNet classes of an image")
    _image_args(p)
    _model_args(p)
    p.add_argument("--top", type=int, default=5, help="how many classes (default 5)")
    p.add_argument("--json", action="store_true", help='print [{"class", "label", "prob"}, ...], best first')
    p.set_defaults(func=cmd_classify)

    p = sub.add_parser("saliency", help="what the network looks at: an attribution map as a PNG")
    _image_args(p)
    _model_args(p)
    p.add_argument("--method", choices=SALIENCY_METHODS, default="vanilla")
    p.add_argument("--target", type=int, default=None, help="class index (default: the top prediction)")
    p.add_argument("--layer", default=None, help="gradcam: the layer; other methods: explain --channel of it")
    p.add_argument("--channel", type=int, default=0, help="with --layer: which channel")
    p.add_argument("--samples", type=int, default=25, help="smoothgrad: noisy samples")
    p.add_argument("--steps", type=int, default=50, help="ig: quadrature steps")
    p.add_argument("--patch", type=int, default=32, help="occlusion: patch side in pixels")
    p.add_argument("--stride", type=int, default=16, help="occlusion: stride in pixels")
    p.add_argument("--seed", type=int, default=0, help="smoothgrad: PRNG seed")
    p.add_argument("--out", required=True, help="PNG to write")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.set_defaults(func=cmd_saliency)

    p = sub.add_parser("layers", help="the layer names of a model, with output shapes")
    p.add_argument("--model", default=None, help="model name")
    p.add_argument("--json", action="store_true", help='print [{"name", "shape"}, ...]')
    p.set_defaults(func=cmd_layers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from jaxviz.models import DEFAULT_MODEL, UnsafeCheckpointError, WeightsNotFoundError

    try:
        args = build_parser().parse_args(argv)
        if getattr(args, "model", "") is None:
            args.model = DEFAULT_MODEL
        args.func(args)
    except _UsageError as e:
        print(str(e), file=sys.stderr)
        return EXIT_USAGE
    except (ValueError, TypeError, WeightsNotFoundError, UnsafeCheckpointError) as e:
        print(f"jaxviz: error: {e}".splitlines()[0], file=sys.stderr)
        return EXIT_USAGE
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
