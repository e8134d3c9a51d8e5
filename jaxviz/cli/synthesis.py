"""The synthesis commands: ``dream``, ``classviz``, ``fool`` and ``invert``."""

from __future__ import annotations

import sys

from jaxviz.cli._common import (
    SIZE,
    STEPS,
    check_class,
    check_layers,
    check_model,
    examples,
    image_args,
    integer,
    key,
    label,
    load_input,
    model_args,
    number,
    out_args,
    per_model,
    report,
)

#: the library's defaults (jaxviz.synthesis.classviz / inversion; a test keeps them equal), here so that
#: ``--help`` needs no JAX.
CLASSVIZ_STEPS = 128
CLASSVIZ_METHODS = ("maco", "fourier", "pixel")
INVERT_STEPS = 200
INVERT_TV = 0.02


def check_dream(args) -> None:
    info = check_model(args)
    args.layers = check_layers(args.layer or info.dream_layer, info)
    args.size = args.size or info.input_size
    args.input = None if args.image is None and args.sample is None else load_input(args, args.size)


def cmd_dream(args) -> None:
    import time

    import jax.numpy as jnp

    from jaxviz import models
    from jaxviz.io import image
    from jaxviz.synthesis import dream

    layers, size = args.layers, args.size
    img = None if args.input is None else jnp.asarray(args.input)
    model, variables = models.load(args.model, args.weights)
    start = time.perf_counter()
    out = dream.dream(key(args), model, variables, img, layers, size=size, steps=args.steps,
                      step_size=args.step_size, octaves=args.octaves, jitter=args.jitter, progress=None)
    image.save_png(args.out, out.images[0])
    seconds = time.perf_counter() - start
    report(args, {"out": str(args.out), "layers": list(layers), "seconds": round(seconds, 3)},
           f"wrote {args.out} (DeepDream at {', '.join(layers)}, {seconds:.1f} s)")


def check_classviz(args) -> None:
    check_class(check_model(args), args.target)


def cmd_classviz(args) -> None:
    import time

    import numpy as np

    from jaxviz import models
    from jaxviz.io import image, plot
    from jaxviz.synthesis import classviz

    model, variables = models.load(args.model, args.weights)
    start = time.perf_counter()
    out = classviz.class_visualization(key(args), model, variables, args.target, method=args.method,
                                       steps=args.steps, size=args.size, progress=None)
    picture = np.asarray(out.images[0, 0])
    tiles, captions = [picture], [f"{args.target} {label(model, args.target)}"]
    if out.importance is not None:  # MACO: the picture seen through its importance map too
        tiles.append(plot.transparent(picture, np.asarray(out.importance[0, 0])))
        captions.append("importance")
    image.save_png(args.out, image.grid(tiles, captions, cols=len(tiles), label_height=16))
    seconds = time.perf_counter() - start
    report(args, {"out": str(args.out), "target": args.target, "logit": out.history[-1][1],
                  "seconds": round(seconds, 3)},
           f"wrote {args.out} (class {args.target} {label(model, args.target)}, {seconds:.1f} s)")


def check_fool(args) -> None:
    info = check_model(args)
    check_class(info, args.target)
    args.input = load_input(args, info.input_size)


def cmd_fool(args) -> None:
    import jax.numpy as jnp
    import numpy as np

    from jaxviz import models
    from jaxviz.io import image
    from jaxviz.synthesis import adversarial

    img = jnp.asarray(args.input)[None]
    model, variables = models.load(args.model, args.weights)
    r = adversarial.fool(model, variables, img, args.target, eps=args.eps / 255, step_size=args.step / 255,
                         max_steps=args.max_steps)
    x, fooled = np.asarray(img[0]), np.asarray(r.images[0])
    delta = np.clip(0.5 + (fooled - x) * (0.5 / max(float(r.linf[0]), 1e-12)), 0, 1)
    pred = int(r.pred[0])
    image.save_png(args.out, image.grid([x, fooled, delta], ["input", f"-> {pred} {label(model, pred)}",
                                                             "difference (amplified)"], cols=3, label_height=16))
    summary = {"pred": pred, "linf": float(r.linf[0]), "l2": float(r.l2[0]), "steps": int(r.steps[0])}
    report(args, summary, f"wrote {args.out}: predicted {pred} {label(model, pred)} after {summary['steps']} "
                          f"steps, Linf {summary['linf'] * 255:.1f}/255, L2 {summary['l2']:.3f}")
    if pred != args.target:
        print(f"jaxviz: target {args.target} not reached in {args.max_steps} steps", file=sys.stderr)


def check_invert(args) -> None:
    info = check_model(args)
    args.layers = check_layers(args.layer, info)
    args.input = load_input(args, args.size or info.input_size)


def cmd_invert(args) -> None:
    import time

    import jax.numpy as jnp
    import numpy as np

    from jaxviz import models
    from jaxviz.io import image
    from jaxviz.synthesis import inversion

    layers = args.layers
    img = jnp.asarray(args.input)
    model, variables = models.load(args.model, args.weights)
    start = time.perf_counter()
    out = inversion.invert(key(args), model, variables, img, layers, steps=args.steps, tv_weight=args.tv,
                           progress=None)
    recon = [np.asarray(out.images[i, 0]) for i in range(len(layers))]
    image.save_png(args.out, image.grid([np.asarray(img)] + recon, ["input"] + list(layers),
                                        cols=len(layers) + 1, label_height=16))
    errors = {n: float(np.mean((r - np.asarray(img)) ** 2)) for n, r in zip(layers, recon, strict=True)}
    seconds = time.perf_counter() - start
    report(args, {"out": str(args.out), "mse": errors, "seconds": round(seconds, 3)},
           f"wrote {args.out} (inverted {', '.join(layers)}, {seconds:.1f} s)")


def register(sub) -> None:
    p = sub.add_parser("dream", help="DeepDream: amplify what a layer sees (no image: dream from noise)",
                       epilog=examples("jaxviz dream --sample chelsea --out dream.png",
                                       "jaxviz dream photo.jpg --layer blocks.10 --octaves 3 --steps 20 --out d.png"))
    image_args(p, required=False)
    model_args(p)
    p.add_argument("--layer", default=None, help="layer(s), comma-separated (default, per model: "
                                                 + per_model("dream_layer") + ")")
    p.add_argument("--size", type=SIZE, default=None, help="image side in pixels (default: the model's)")
    p.add_argument("--steps", type=STEPS, default=10, help="steps per octave")
    p.add_argument("--step-size", type=number(above=0), default=0.01, help="step in mean-gradient units")
    p.add_argument("--octaves", type=integer(1, 12), default=4, help="number of scales")
    p.add_argument("--jitter", type=integer(0, 512), default=16, help="random roll in pixels")
    out_args(p)
    p.set_defaults(func=cmd_dream, check=check_dream)

    p = sub.add_parser("classviz", help="class-model visualization: an image the model finds most typical of a class",
                       epilog=examples("jaxviz classviz --target 9 --out ostrich.png",
                                       "jaxviz classviz --target 130 --method pixel --steps 256 --out flamingo.png"))
    model_args(p)
    p.add_argument("--target", type=integer(0), required=True, help="class index")
    p.add_argument("--method", choices=CLASSVIZ_METHODS, default=CLASSVIZ_METHODS[0],
                   help="maco: the Fourier phase under natural photos' magnitude, on random crops (Fel et al. "
                        "2023), shown beside its importance map; fourier: Lucid-style, a decorrelated Fourier image "
                        "with jitter, scale and rotation; pixel: Simonyan's pixels with Yosinski's regularizers "
                        "(blur, zeroing weak pixels)")
    p.add_argument("--steps", type=STEPS, default=CLASSVIZ_STEPS, help="optimizer steps")
    p.add_argument("--size", type=SIZE, default=None, help="image side in pixels (default: the model's)")
    out_args(p)
    p.set_defaults(func=cmd_classviz, check=check_classviz)

    p = sub.add_parser("fool", help="a fooling image: change the prediction to --target within an Linf budget",
                       epilog=examples("jaxviz fool --sample chelsea --target 9 --out fooled.png"))
    image_args(p)
    model_args(p)
    p.add_argument("--target", type=integer(0), required=True, help="class to reach")
    p.add_argument("--eps", type=number(maximum=255, above=0), default=8.0, help="Linf budget in 0-255 pixel levels")
    p.add_argument("--step", type=number(maximum=255, above=0), default=1.0, help="step in 0-255 pixel levels")
    p.add_argument("--max-steps", type=STEPS, default=100, help="give up after this many steps")
    out_args(p, json_help='print {"pred", "linf", "l2", "steps"} (linf and l2 in [0, 1] units)')
    p.set_defaults(func=cmd_fool, check=check_fool)

    p = sub.add_parser("invert", help="feature inversion: reconstruct an image from a layer's activations",
                       epilog=examples("jaxviz invert --sample coffee --layer blocks.2,blocks.8 --out inv.png"))
    image_args(p)
    model_args(p)
    p.add_argument("--layer", required=True, help="layer(s), comma-separated; each is inverted on its own")
    p.add_argument("--size", type=SIZE, default=None, help="image side in pixels (default: the model's)")
    p.add_argument("--steps", type=STEPS, default=INVERT_STEPS, help="optimizer steps")
    p.add_argument("--tv", type=number(0), default=INVERT_TV, help="total-variation weight")
    out_args(p)
    p.set_defaults(func=cmd_invert, check=check_invert)
