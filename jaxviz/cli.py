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


def _out_args(p: argparse.ArgumentParser, json_help: str = "print a JSON summary",
              out_help: str = "PNG to write") -> None:
    p.add_argument("--seed", type=int, default=0, help="PRNG seed (same seed, same picture)")
    p.add_argument("--out", required=True, help=out_help)
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


def _positive(value: float, flag: str) -> None:
    if not value > 0:
        raise ValueError(f"{flag} must be positive, got {value}")


def _style_defaults(args):
    """Checks the size and steps flags, then loads the model."""
    from jaxviz import models

    models.build(args.model)  # the name first, before any heavy work
    if args.steps < 1:
        raise ValueError(f"--steps must be at least 1, got {args.steps}")
    if args.size is not None and args.size < 16:
        raise ValueError(f"--size must be at least 16, got {args.size}")
    return models.load(args.model, args.weights)


def cmd_texture(args) -> None:
    import time

    from jaxviz import image, texture

    model, variables = _style_defaults(args)
    source = image.load_image(args.source)
    if args.source_size:
        source = image.prepare(source, args.source_size)
    size = args.size or min(source.shape[:2])
    start = time.perf_counter()
    r = texture.synthesize(_key(args), model, variables, source, size=size, steps=args.steps,
                           optimizer_name=args.optimizer, tv_weight=args.tv, progress=None)
    image.save_png(args.out, r.images[0])
    seconds = time.perf_counter() - start
    summary = {"style_loss_start": float(r.style_loss_start[0]), "style_loss_end": float(r.style_loss_end[0])}
    _report(args, summary, f"wrote {args.out} ({size}x{size} texture, style loss {summary['style_loss_start']:.4g}"
                           f" -> {summary['style_loss_end']:.4g}, {seconds:.1f} s)")


def cmd_style(args) -> None:
    import time

    from jaxviz import gram, image, style

    _positive(args.style_scale, "--style-scale")
    model, variables = _style_defaults(args)
    content = image.load_image(args.content, args.size or model.input_size)
    painting = image.load_image(args.style)
    scales = tuple(float(f) for f in args.scales.split(","))
    start = time.perf_counter()
    r = style.transfer(_key(args), model, variables, content, painting, style_weight=args.style_weight,
                       content_weight=args.content_weight, tv_weight=args.tv, style_scale=args.style_scale,
                       scales=scales, steps=args.steps, optimizer_name=args.optimizer,
                       preserve_colors=args.preserve_color, progress=None)
    image.save_png(args.out, r.images[0])
    seconds = time.perf_counter() - start
    layer = gram.default_layers(model).content
    to_style = style.content_loss_of(model, variables, r.images, painting, layer)
    summary = {"style_loss_start": float(r.style_loss_start[0]), "style_loss_end": float(r.style_loss_end[0]),
               "content_loss_to_content": float(r.content_loss[0]), "content_loss_to_style": float(to_style[0])}
    _report(args, summary, f"wrote {args.out} (style loss {summary['style_loss_start']:.4g} -> "
                           f"{summary['style_loss_end']:.4g}; content loss at {layer}: "
                           f"{summary['content_loss_to_content']:.4g} to the content, "
                           f"{summary['content_loss_to_style']:.4g} to the style; {seconds:.1f} s)")


def cmd_train_style(args) -> None:
    import shutil
    import time
    from pathlib import Path

    from jaxviz import fast_style, image

    model, variables = _style_defaults(args)
    size = args.size or fast_style.DEFAULT_SIZE
    if size % 4:
        raise ValueError(f"--size must be a multiple of 4, got {size}")
    painting = image.load_image(args.style)
    photos = image.load_folder(args.images, size) if args.images else fast_style.builtin_images(size)
    out = Path(args.out)
    checkpoints = Path(args.checkpoint_dir) if args.checkpoint_dir else out.with_name(out.name + ".checkpoints")
    start = time.perf_counter()
    r = fast_style.train(_key(args), model, variables, painting, photos, steps=args.steps, size=size,
                         batch=args.batch, lr=args.lr, style_weight=args.style_weight,
                         checkpoint_dir=checkpoints, checkpoint_every=args.checkpoint_every, progress=None)
    fast_style.save(out, r.stylizer)
    shutil.rmtree(checkpoints, ignore_errors=True)
    seconds = time.perf_counter() - start
    last = max(r.losses) if r.losses else r.resumed_from
    summary = {"out": str(out), "steps": args.steps, "resumed_from": r.resumed_from, "images": len(photos),
               "final_loss": r.losses.get(last), "seconds": round(seconds, 3)}
    resumed = f", resumed from step {r.resumed_from}" if r.resumed_from else ""
    _report(args, summary, f"wrote {out} ({args.steps} steps on {len(photos)} images{resumed}, {seconds:.1f} s)")


def cmd_stylize(args) -> None:
    import time

    from jaxviz import fast_style, image

    stylizer = fast_style.load(args.model_file)
    img = image.load_image(args.image, args.size) if args.size else image.load_image(args.image)
    start = time.perf_counter()
    out = fast_style.stylize(stylizer, img)
    image.save_png(args.out, out)
    seconds = time.perf_counter() - start
    _report(args, {"out": str(args.out), "height": int(out.shape[0]), "width": int(out.shape[1]),
                   "seconds": round(seconds, 3)},
            f"wrote {args.out} ({out.shape[1]}x{out.shape[0]}, one forward pass, {seconds:.2f} s)")


def cmd_neighbors(args) -> None:
    import jax

    from jaxviz import neighbors

    if not args.digits:
        raise ValueError("neighbors runs the digits experiment: pass --digits")
    if args.k < 1 or args.shift < 0:
        raise ValueError(f"--k must be at least 1 and --shift non-negative, got {args.k}, {args.shift}")
    r = neighbors.digits_experiment(jax.random.key(args.seed), k=args.k, shift=args.shift)
    keys = ("feature_knn_label_agreement", "pixel_knn_label_agreement")
    _report(args, {k: r[k] for k in keys},
            f"{r['k']}-NN label agreement of {r['queries']} held-out digits (shifted up to {r['shift']} px) among "
            f"{r['database']} training digits: features {r['feature_knn_label_agreement']:.3f}, pixels "
            f"{r['pixel_knn_label_agreement']:.3f} (the CNN's test accuracy on the shifted digits: "
            f"{r['test_accuracy']:.3f})")


def cmd_demo(args) -> None:
    import time

    from jaxviz import demo

    start = time.perf_counter()
    only = args.only.split(",") if args.only else None
    index = demo.run(args.out, scale=args.scale, size=args.size, seed=args.seed, only=only, progress=None,
                     log=lambda line: print(line, file=sys.stderr))
    print(f"wrote {index} ({time.perf_counter() - start:.0f} s); open it in a browser")


#: the CLI's DeepInversion run: short enough for 10 classes in minutes on 2 CPU cores (see the README).
DEEPINVERSION_STEPS = 300
DEEPINVERSION_LR = 0.1


def build_parser() -> argparse.ArgumentParser:
    from jaxviz import classviz, distill, fast_style, inversion, neighbors, style, texture

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

    p = sub.add_parser("texture", help="texture synthesis: a new image (any size) with the texture of SOURCE")
    p.add_argument("source", help="path to the texture image")
    _model_args(p)
    p.add_argument("--size", type=int, default=None, help="output side in pixels (default: the source's short side)")
    p.add_argument("--source-size", type=int, default=None, help="first resize and crop the source to this side")
    p.add_argument("--steps", type=int, default=texture.DEFAULT_STEPS,
                   help=f"optimizer steps (default {texture.DEFAULT_STEPS})")
    p.add_argument("--optimizer", choices=("adam", "lbfgs"), default="adam")
    p.add_argument("--tv", type=float, default=texture.DEFAULT_TV_WEIGHT,
                   help=f"total-variation weight (default {texture.DEFAULT_TV_WEIGHT})")
    _out_args(p, json_help='print {"style_loss_start", "style_loss_end"}')
    p.set_defaults(func=cmd_texture)

    p = sub.add_parser("style", help="style transfer (Gatys): CONTENT painted in the style of STYLE")
    p.add_argument("content", help="path to the content image")
    p.add_argument("style", help="path to the style image")
    _model_args(p)
    p.add_argument("--size", type=int, default=None, help="content side in pixels (default: the model's)")
    p.add_argument("--style-weight", type=float, default=None,
                   help="weight of the style loss (default: the network's, 10 on EfficientNet-Lite, 1e6 on VGG)")
    p.add_argument("--content-weight", type=float, default=style.DEFAULT_CONTENT_WEIGHT)
    p.add_argument("--tv", type=float, default=style.DEFAULT_TV_WEIGHT,
                   help=f"total-variation weight (default {style.DEFAULT_TV_WEIGHT})")
    p.add_argument("--style-scale", type=float, default=1.0,
                   help="the style's short side as a multiple of the content's (default 1); sets the brush size")
    p.add_argument("--scales", default="1", help="coarse-to-fine fractions of the size, e.g. 0.5,1 (default 1)")
    p.add_argument("--steps", type=int, default=style.DEFAULT_STEPS,
                   help=f"optimizer steps per scale (default {style.DEFAULT_STEPS})")
    p.add_argument("--optimizer", choices=("adam", "lbfgs"), default="adam")
    p.add_argument("--preserve-color", action="store_true", help="keep the content's colours (luminance transfer)")
    _out_args(p, json_help='print {"style_loss_start", "style_loss_end", "content_loss_to_content", '
                           '"content_loss_to_style"}')
    p.set_defaults(func=cmd_style)

    p = sub.add_parser("train-style", help="fast style transfer: train a feed-forward network for STYLE")
    p.add_argument("style", help="path to the style image")
    p.add_argument("--images", default=None, help="folder of training images (default: the bundled photos)")
    _model_args(p)
    p.add_argument("--steps", type=int, default=fast_style.DEFAULT_STEPS,
                   help=f"training steps (default {fast_style.DEFAULT_STEPS})")
    p.add_argument("--size", type=int, default=None, help=f"training crop side (default {fast_style.DEFAULT_SIZE})")
    p.add_argument("--batch", type=int, default=4, help="images per step (default 4)")
    p.add_argument("--lr", type=float, default=1e-2, help="Adam learning rate (default 1e-2)")
    p.add_argument("--style-weight", type=float, default=None, help="weight of the style loss (default: the network's)")
    p.add_argument("--checkpoint-dir", default=None, help="orbax checkpoints (default: MODEL.checkpoints); an "
                                                          "interrupted run resumes from there")
    p.add_argument("--checkpoint-every", type=int, default=50, help="steps between checkpoints (default 50)")
    _out_args(p, out_help="the trained network (.npz) to write")
    p.set_defaults(func=cmd_train_style)

    p = sub.add_parser("stylize", help="fast style transfer: stylize IMAGE with a trained network, one forward pass")
    p.add_argument("model_file", metavar="MODEL", help="a network written by `jaxviz train-style`")
    p.add_argument("image", help="path to the image")
    p.add_argument("--size", type=int, default=None, help="resize and crop to this side first (default: as is)")
    p.add_argument("--out", required=True, help="PNG to write")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.set_defaults(func=cmd_stylize)

    p = sub.add_parser("neighbors", help="nearest neighbours in feature space vs pixel space (the digits experiment)")
    p.add_argument("--digits", action="store_true", help="scikit-learn's digits and the digits CNN (the one offered)")
    p.add_argument("--k", type=int, default=5, help="neighbours per query (default 5)")
    p.add_argument("--shift", type=int, default=neighbors.DIGITS_SHIFT,
                   help=f"roll each query by up to this many pixels (default {neighbors.DIGITS_SHIFT}; 0: none)")
    p.add_argument("--seed", type=int, default=0, help="PRNG seed")
    p.add_argument("--json", action="store_true",
                   help='print {"feature_knn_label_agreement", "pixel_knn_label_agreement"}')
    p.set_defaults(func=cmd_neighbors)

    p = sub.add_parser("demo", help="run every technique on the embedded default and write an HTML gallery")
    p.add_argument("--out", required=True, help="folder for index.html and the PNGs (a rerun resumes)")
    p.add_argument("--scale", type=float, default=1.0, help="multiply every step count (default 1; 4: nicer)")
    p.add_argument("--size", type=int, default=160, help="side of the synthesized images (default 160)")
    p.add_argument("--only", default=None, help="comma-separated sections (default: all)")
    p.add_argument("--seed", type=int, default=0, help="PRNG seed")
    p.set_defaults(func=cmd_demo)

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
