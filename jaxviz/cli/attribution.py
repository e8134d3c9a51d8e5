"""The attribution command: ``saliency`` (any method, as a PNG next to the image)."""

from __future__ import annotations

import json

from jaxviz.cli._common import (
    MAX_SIZE,
    check_class,
    check_layers,
    check_model,
    examples,
    image_args,
    integer,
    load_input,
    model_args,
    per_model,
)

SALIENCY_METHODS = ("vanilla", "gradxinput", "guided", "deconvnet", "smoothgrad", "squaregrad", "vargrad", "ig",
                    "occlusion", "cam", "gradcam", "gradcam++", "xgradcam", "hirescam", "layercam", "eigencam",
                    "eigengradcam", "scorecam", "ablationcam", "rise", "blurig", "guidedig", "xrai", "deeplift",
                    "lrp", "guided-gradcam")
#: the CAM-family methods: one (B, H, W) map of --layer, shown over the image.
CAM_FAMILY = ("gradcam++", "xgradcam", "hirescam", "layercam", "eigencam", "eigengradcam", "scorecam", "ablationcam")
#: the CAM-family methods outside ``jaxviz.cam_map``: one forward pass per channel of --layer.
GRADIENT_FREE = {"scorecam": "score_cam", "ablationcam": "ablation_cam"}


def _attribute(args, model, variables, x, target):
    """Runs the chosen method; returns (H, W, 3) picture tile and the raw map."""
    import functools

    import jax
    import numpy as np

    import jaxviz
    from jaxviz.io import plot

    methods = {
        "vanilla": jaxviz.saliency,
        "gradxinput": jaxviz.gradient_x_input,
        "squaregrad": functools.partial(jaxviz.squaregrad, jax.random.key(args.seed), samples=args.samples),
        "vargrad": functools.partial(jaxviz.vargrad, jax.random.key(args.seed), samples=args.samples),
        "guided": jaxviz.guided_backprop,
        "deconvnet": jaxviz.deconvnet,
        "smoothgrad": functools.partial(jaxviz.smoothgrad, jax.random.key(args.seed), samples=args.samples),
        "ig": functools.partial(jaxviz.integrated_gradients, steps=args.steps),
        "blurig": functools.partial(jaxviz.blur_integrated_gradients, steps=args.steps),
        "guidedig": functools.partial(jaxviz.guided_integrated_gradients, steps=args.steps),
        "deeplift": jaxviz.deeplift,
        "lrp": jaxviz.lrp,
        "occlusion": functools.partial(jaxviz.occlusion, patch=args.patch, stride=args.stride),
        "cam": jaxviz.cam,
        "rise": functools.partial(jaxviz.rise, jax.random.key(args.seed), masks=args.masks),
        "gradcam": functools.partial(jaxviz.grad_cam, layer=args.layer),
        "guided-gradcam": functools.partial(jaxviz.guided_grad_cam, layer=args.layer),
        **{name: functools.partial(jaxviz.cam_map, method=name, layer=args.layer) for name in CAM_FAMILY
           if name not in GRADIENT_FREE},
        **{name: functools.partial(getattr(jaxviz, fn), layer=args.layer) for name, fn in GRADIENT_FREE.items()},
    }
    if args.method == "xrai":  # segmentation and greedy ranking run on the host: not jitted as a whole
        maps = np.asarray(jaxviz.xrai(model, variables, x, target, steps=args.steps))[0]
    else:
        maps = np.asarray(jax.jit(lambda v, x: methods[args.method](model, v, x, target))(variables, x))[0]
    if args.method in ("cam", "gradcam", "rise", "xrai", *CAM_FAMILY):
        return plot.overlay(np.asarray(x[0]), maps), maps
    if args.method in ("guided", "deconvnet", "guided-gradcam"):
        return plot.signed(maps), maps
    return plot.overlay(np.asarray(x[0]), np.asarray(jaxviz.reduce_channels(maps[None]))[0]), maps


METHOD_HELP = ("vanilla: the input gradient of the class score; gradxinput: the image times that gradient; "
               "guided: guided backprop (positive gradients through positive activations); deconvnet: "
               "Zeiler-Fergus deconvnet; smoothgrad: gradients averaged over noisy copies; squaregrad, vargrad: "
               "their mean square and their variance; ig: integrated gradients from a black baseline; blurig: "
               "integrated gradients along a path of Gaussian blurs; guidedig: guided integrated gradients; xrai: "
               "integrated gradients summed over image regions, ranked; deeplift: DeepLIFT's Rescale rule "
               "against a black baseline; lrp: layer-wise relevance propagation (Zennit's EpsilonPlusFlat); occlusion: "
               "the score drop when a grey patch covers each place; cam: class activation map of the last "
               "spatial layer; gradcam: Grad-CAM at --layer; gradcam++, xgradcam, hirescam, layercam, eigencam, "
               "eigengradcam: pytorch-grad-cam's variants of it; scorecam, ablationcam: channel weights from one "
               "forward pass per channel (the image masked by it, or the channel zeroed); rise: the expected "
               "probability under --masks random masks; guided-gradcam: guided backprop times Grad-CAM")


def check_saliency(args) -> None:
    info = check_model(args)
    if args.layer is not None:
        check_layers(args.layer, info)
    if args.method == "lrp" and args.layer is not None:
        raise ValueError("--method lrp explains a class logit; leave out --layer")
    if args.method == "cam" and args.layer is not None:
        raise ValueError("--method cam uses the model's last spatial layer; use --method gradcam for --layer")
    if args.target is not None:
        check_class(info, args.target)
    args.input = load_input(args, info.input_size)


def cmd_saliency(args) -> None:
    import time

    import jax
    import jax.numpy as jnp
    import numpy as np

    from jaxviz import models
    from jaxviz.core.objectives import Neuron
    from jaxviz.io import image, labels

    img = args.input
    model, variables = models.load(args.model, args.weights)
    x = jnp.asarray(img)[None]
    start = time.perf_counter()
    if args.target is None:
        args.target = int(jnp.argmax(jax.jit(model.apply)(variables, x)[0]))
    target = args.target
    if args.layer is not None and args.method not in ("gradcam", "guided-gradcam", *CAM_FAMILY):
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


def register(sub) -> None:
    p = sub.add_parser("saliency", help="what the network looks at: an attribution map as a PNG",
                       description="Methods: " + METHOD_HELP + ".",
                       epilog=examples("jaxviz saliency --sample chelsea --method smoothgrad --out s.png",
                                       "jaxviz saliency cat.jpg --method gradcam --target 281 --out cam.png"))
    image_args(p)
    model_args(p)
    p.add_argument("--method", choices=SALIENCY_METHODS, default="vanilla", help="the attribution method (above)")
    p.add_argument("--target", type=integer(0), default=None, help="class index (default: the top prediction)")
    p.add_argument("--layer", default=None, help="the CAM methods: the layer (default: the last spatial one, "
                                                 + per_model("cam_layer") + "); other methods: explain --channel "
                                                 "of it")
    p.add_argument("--channel", type=integer(0), default=0, help="with --layer: which channel")
    p.add_argument("--samples", type=integer(1, 10_000), default=25,
                   help="smoothgrad, squaregrad, vargrad: noisy samples")
    p.add_argument("--steps", type=integer(1, 10_000), default=50, help="ig, blurig, guidedig, xrai: steps on the path")
    p.add_argument("--masks", type=integer(1, 100_000), default=1000, help="rise: random masks (the paper: 4000)")
    p.add_argument("--patch", type=integer(1, MAX_SIZE), default=32, help="occlusion: patch side in pixels")
    p.add_argument("--stride", type=integer(1, MAX_SIZE), default=16, help="occlusion: stride in pixels")
    p.add_argument("--seed", type=int, default=0, help="smoothgrad, squaregrad, vargrad, rise: PRNG seed")
    p.add_argument("--out", required=True, help="PNG to write")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.set_defaults(func=cmd_saliency, check=check_saliency)
