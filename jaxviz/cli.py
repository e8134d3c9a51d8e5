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


def _image_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    src = p.add_mutually_exclusive_group(required=required)
    src.add_argument("image", nargs="?", help="path to an image file")
    src.add_argument("--sample", help="a bundled scikit-image photo: chelsea, coffee, astronaut, rocket")


def _out_args(p: argparse.ArgumentParser, json_help: str = "print a JSON summary") -> None:
    p.add_argument("--seed", type=int, default=0, help="PRNG seed (same seed, same picture)")
    p.add_argument("--out", required=True, help="PNG to write")
    p.add_argument("--json", action="store_true", help=json_help)


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


def _key(args):
    import jax

    return jax.random.key(args.seed)


def _label(model, cls: int) -> str:
    from jaxviz import labels

    return labels.labels_for(model)[cls]


def _check_class(model, cls: int, what: str = "--target") -> None:
    if not 0 <= cls < model.num_classes:
        raise ValueError(f"{what} must be a class index in [0, {model.num_classes}), got {cls}")


def _layer_list(names: str, model) -> tuple[str, ...]:
    """``"a,b"`` -> ``("a", "b")``, each checked against the model's layers."""
    from jaxviz.models import check_names

    return check_names(tuple(names.split(",")), model.layers)


def _report(args, summary: dict, text: str) -> None:
    print(json.dumps(summary) if getattr(args, "json", False) else text)


def cmd_dream(args) -> None:
    import time

    import jax.numpy as jnp

    from jaxviz import dream, image, models

    model = models.build(args.model)
    layers = _layer_list(args.layer or dream.default_layer(model), model)
    size = args.size or model.input_size
    img = None if args.image is None and args.sample is None else jnp.asarray(_input(args, size))
    model, variables = models.load(args.model, args.weights)
    start = time.perf_counter()
    out = dream.dream(_key(args), model, variables, img, layers, size=size, steps=args.steps,
                      step_size=args.step_size, octaves=args.octaves, jitter=args.jitter, progress=None)
    image.save_png(args.out, out[0])
    seconds = time.perf_counter() - start
    _report(args, {"out": str(args.out), "layers": list(layers), "seconds": round(seconds, 3)},
            f"wrote {args.out} (DeepDream at {', '.join(layers)}, {seconds:.1f} s)")


def cmd_classviz(args) -> None:
    import time

    from jaxviz import classviz, image, models

    model = models.build(args.model)
    _check_class(model, args.target)
    model, variables = models.load(args.model, args.weights)
    start = time.perf_counter()
    out = classviz.class_visualization(_key(args), model, variables, args.target, method=args.method,
                                       steps=args.steps, size=args.size, progress=None)
    picture = out.images[0, 0]
    image.save_png(args.out, image.grid([picture], [f"{args.target} {_label(model, args.target)}"], cols=1,
                                        label_height=16))
    seconds = time.perf_counter() - start
    _report(args, {"out": str(args.out), "target": args.target, "logit": out.history[-1][1],
                   "seconds": round(seconds, 3)},
            f"wrote {args.out} (class {args.target} {_label(model, args.target)}, {seconds:.1f} s)")


def cmd_fool(args) -> None:
    import jax.numpy as jnp
    import numpy as np

    from jaxviz import adversarial, image, models

    model = models.build(args.model)
    _check_class(model, args.target)
    if not 0 < args.eps <= 255:
        raise ValueError(f"--eps is in 0-255 pixel levels, got {args.eps}")
    img = jnp.asarray(_input(args, model.input_size))[None]
    model, variables = models.load(args.model, args.weights)
    r = adversarial.fool(model, variables, img, args.target, eps=args.eps / 255, step_size=args.step / 255,
                         max_steps=args.max_steps)
    x, fooled = np.asarray(img[0]), np.asarray(r.images[0])
    delta = np.clip(0.5 + (fooled - x) * (0.5 / max(float(r.linf[0]), 1e-12)), 0, 1)
    pred = int(r.pred[0])
    image.save_png(args.out, image.grid([x, fooled, delta], ["input", f"-> {pred} {_label(model, pred)}",
                                                             "difference (amplified)"], cols=3, label_height=16))
    summary = {"pred": pred, "linf": float(r.linf[0]), "l2": float(r.l2[0]), "steps": int(r.steps[0])}
    _report(args, summary, f"wrote {args.out}: predicted {pred} {_label(model, pred)} after {summary['steps']} "
                           f"steps, Linf {summary['linf'] * 255:.1f}/255, L2 {summary['l2']:.3f}")
    if pred != args.target:
        print(f"jaxviz: target {args.target} not reached in {args.max_steps} steps", file=sys.stderr)


def cmd_invert(args) -> None:
    import time

    import jax.numpy as jnp
    import numpy as np

    from jaxviz import image, inversion, models

    model = models.build(args.model)
    layers = _layer_list(args.layer, model)
    img = jnp.asarray(_input(args, args.size or model.input_size))
    model, variables = models.load(args.model, args.weights)
    start = time.perf_counter()
    out = inversion.invert(_key(args), model, variables, img, layers, steps=args.steps, tv_weight=args.tv,
                           progress=None)
    recon = [np.asarray(out.images[i, 0]) for i in range(len(layers))]
    image.save_png(args.out, image.grid([np.asarray(img)] + recon, ["input"] + list(layers),
                                        cols=len(layers) + 1, label_height=16))
    errors = {n: float(np.mean((r - np.asarray(img)) ** 2)) for n, r in zip(layers, recon, strict=True)}
    seconds = time.perf_counter() - start
    _report(args, {"out": str(args.out), "mse": errors, "seconds": round(seconds, 3)},
            f"wrote {args.out} (inverted {', '.join(layers)}, {seconds:.1f} s)")


def _class_list(text: str, model) -> list[int]:
    """``"1,goldfish"`` -> ``[1, 1]``: class indices or label names (case-insensitive)."""
    from jaxviz import labels

    names = {n.lower(): i for i, n in enumerate(labels.labels_for(model))}
    out = []
    for token in (t.strip() for t in text.split(",")):
        if token.isdigit():
            out.append(int(token))
            _check_class(model, out[-1], "--targets")
        elif token.lower() in names:
            out.append(names[token.lower()])
        else:
            raise ValueError(f"--targets: {token!r} is neither a class index in [0, {model.num_classes}) nor a "
                             f"label of {model.name} (e.g. {labels.labels_for(model)[1]!r})")
    return out


def _slug(label: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in label.lower()).strip("_") or "class"


def cmd_deepinversion(args) -> None:
    import time
    from pathlib import Path

    import jax
    import numpy as np

    from jaxviz import deepinversion as di
    from jaxviz import image, models, top_k

    model = models.build(args.model)
    targets = _class_list(args.targets, model)
    if args.steps < 1:
        raise ValueError(f"--steps must be at least 1, got {args.steps}")
    size = args.size or model.input_size
    if size % 2 or size < 16:
        raise ValueError(f"--size must be even and at least 16, got {size}")
    model, variables = models.load(args.model, args.weights)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = out / ".deepinversion_checkpoint.npz"
    settings = di.Settings(lr=args.lr)
    start = time.perf_counter()
    result = di.deepinversion(_key(args), model, variables, targets, size=size, steps=args.steps, settings=settings,
                              checkpoint=checkpoint, progress=None)
    seconds = time.perf_counter() - start
    images = np.asarray(result.images)
    preds = top_k(model, jax.jit(model.apply)(variables, result.images), 5)
    rows = []
    for i, (cls, img, top) in enumerate(zip(targets, images, preds, strict=True)):
        name = f"{i:03d}_{_slug(_label(model, cls))}.png"
        image.save_png(out / name, img)
        rows.append({"file": name, "target": cls, "label": _label(model, cls),
                     "target_prob": float(next((p["prob"] for p in top if p["class"] == cls), 0.0)),
                     "top5": [p["class"] for p in top]})
    summary = {"model": model.name, "size": size, "steps": args.steps, "seed": args.seed, "lr": args.lr,
               "seconds": round(seconds, 3), "final_loss": result.history[-1][1], "images": rows}
    tmp = out / ".summary.json.tmp"
    tmp.write_text(json.dumps(summary, indent=2))
    tmp.replace(out / "summary.json")
    checkpoint.unlink(missing_ok=True)
    hits = sum(r["target"] == r["top5"][0] for r in rows)
    _report(args, summary, f"wrote {len(rows)} images and summary.json to {out} ({hits}/{len(rows)} classified "
                           f"as their target by {model.name}, {seconds:.1f} s)")


def cmd_distill(args) -> None:
    import jax

    from jaxviz import distill

    if not args.digits:
        raise ValueError("distill runs the digits experiment: pass --digits")
    config = distill.DigitsConfig(images_per_class=args.images_per_class, di_steps=args.di_steps,
                                  student_steps=args.student_steps, teacher_steps=args.teacher_steps)
    result = distill.digits_experiment(jax.random.key(args.seed), config, progress=None,
                                       log=lambda line: print(line, file=sys.stderr))
    keys = ("student_acc", "noise_baseline_acc", "teacher_acc")
    _report(args, {k: result[k] for k in keys},
            f"teacher {result['teacher_acc']:.3f}, student distilled on DeepInversion images "
            f"{result['student_acc']:.3f}, on Gaussian noise {result['noise_baseline_acc']:.3f} "
            f"(held-out real digits); Adaptive DeepInversion diversity {result['diversity_adi']:.4f} vs "
            f"{result['diversity_di']:.4f}")


#: the CLI's DeepInversion run: short enough for 10 classes in minutes on 2 CPU cores (see the README).
DEEPINVERSION_STEPS = 300
DEEPINVERSION_LR = 0.1


def build_parser() -> argparse.ArgumentParser:
    from jaxviz import classviz, distill, inversion

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

    p = sub.add_parser("dream", help="DeepDream: amplify what a layer sees (no image: dream from noise)")
    _image_args(p, required=False)
    _model_args(p)
    p.add_argument("--layer", default=None, help="layer(s), comma-separated (default: a mid-level layer)")
    p.add_argument("--size", type=int, default=None, help="image side in pixels (default: the model's)")
    p.add_argument("--steps", type=int, default=10, help="steps per octave (default 10)")
    p.add_argument("--step-size", type=float, default=0.01, help="step in mean-gradient units (default 0.01)")
    p.add_argument("--octaves", type=int, default=4, help="number of scales (default 4)")
    p.add_argument("--jitter", type=int, default=16, help="random roll in pixels (default 16)")
    _out_args(p)
    p.set_defaults(func=cmd_dream)

    p = sub.add_parser("classviz", help="class-model visualization: an image the model finds most typical of a class")
    _model_args(p)
    p.add_argument("--target", type=int, required=True, help="class index")
    p.add_argument("--method", choices=("fourier", "pixel"), default="fourier",
                   help="fourier: Lucid-style (default); pixel: Simonyan + Yosinski regularizers")
    p.add_argument("--steps", type=int, default=classviz.DEFAULT_STEPS,
                   help=f"optimizer steps (default {classviz.DEFAULT_STEPS})")
    p.add_argument("--size", type=int, default=None, help="image side in pixels (default: the model's)")
    _out_args(p)
    p.set_defaults(func=cmd_classviz)

    p = sub.add_parser("fool", help="a fooling image: change the prediction to --target within an Linf budget")
    _image_args(p)
    _model_args(p)
    p.add_argument("--target", type=int, required=True, help="class to reach")
    p.add_argument("--eps", type=float, default=8.0, help="Linf budget in 0-255 pixel levels (default 8)")
    p.add_argument("--step", type=float, default=1.0, help="step in 0-255 pixel levels (default 1)")
    p.add_argument("--max-steps", type=int, default=100, help="give up after this many steps (default 100)")
    _out_args(p, json_help='print {"pred", "linf", "l2", "steps"} (linf and l2 in [0, 1] units)')
    p.set_defaults(func=cmd_fool)

    p = sub.add_parser("invert", help="feature inversion: reconstruct an image from a layer's activations")
    _image_args(p)
    _model_args(p)
    p.add_argument("--layer", required=True, help="layer(s), comma-separated")
    p.add_argument("--size", type=int, default=None, help="image side in pixels (default: the model's)")
    p.add_argument("--steps", type=int, default=inversion.DEFAULT_STEPS,
                   help=f"optimizer steps (default {inversion.DEFAULT_STEPS})")
    p.add_argument("--tv", type=float, default=inversion.DEFAULT_TV_WEIGHT,
                   help=f"total-variation weight (default {inversion.DEFAULT_TV_WEIGHT})")
    _out_args(p)
    p.set_defaults(func=cmd_invert)

    p = sub.add_parser("deepinversion", help="DeepInversion: images of classes from the network's BatchNorm "
                                             "statistics alone")
    _model_args(p)
    p.add_argument("--targets", required=True, help="comma-separated class indices or label names, one image each")
    p.add_argument("--size", type=int, default=None, help="image side in pixels (default: the model's)")
    p.add_argument("--steps", type=int, default=DEEPINVERSION_STEPS,
                   help=f"optimizer steps (default {DEEPINVERSION_STEPS}; the paper's setting is 2000)")
    p.add_argument("--lr", type=float, default=DEEPINVERSION_LR,
                   help=f"peak learning rate (default {DEEPINVERSION_LR})")
    p.add_argument("--seed", type=int, default=0, help="PRNG seed (same seed, same pictures)")
    p.add_argument("--out", required=True, help="folder for {index:03d}_{class}.png and summary.json; an interrupted "
                                                "run resumes from its checkpoint there")
    p.add_argument("--json", action="store_true", help="print summary.json's content")
    p.set_defaults(func=cmd_deepinversion)

    p = sub.add_parser("distill", help="data-free distillation: a student learns from DeepInversion images only")
    p.add_argument("--digits", action="store_true", help="the scikit-learn digits experiment (the one offered)")
    p.add_argument("--images-per-class", type=int, default=distill.DigitsConfig.images_per_class,
                   help=f"synthesized images per digit (default {distill.DigitsConfig.images_per_class})")
    p.add_argument("--di-steps", type=int, default=distill.DigitsConfig.di_steps,
                   help=f"DeepInversion steps (default {distill.DigitsConfig.di_steps})")
    p.add_argument("--student-steps", type=int, default=distill.DigitsConfig.student_steps,
                   help=f"distillation steps (default {distill.DigitsConfig.student_steps})")
    p.add_argument("--teacher-steps", type=int, default=distill.DigitsConfig.teacher_steps,
                   help=f"teacher training steps (default {distill.DigitsConfig.teacher_steps})")
    p.add_argument("--seed", type=int, default=0, help="PRNG seed")
    p.add_argument("--json", action="store_true", help='print {"student_acc", "noise_baseline_acc", "teacher_acc"}')
    p.set_defaults(func=cmd_distill)

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
