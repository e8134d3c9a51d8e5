"""The style commands: ``texture``, ``style`` (Gatys), ``train-style`` and ``stylize`` (fast style transfer)."""

from __future__ import annotations

from jaxviz.cli._common import (
    SIZE,
    STEPS,
    check_model,
    examples,
    integer,
    key,
    model_args,
    number,
    optimizer,
    out_args,
    per_model,
    report,
)

#: the library's defaults (jaxviz.style.texture / transfer / fast; a test keeps them equal).
TEXTURE_STEPS, TEXTURE_TV, TEXTURE_SPECTRUM = 100, 100.0, 1e4
STYLE_STEPS, STYLE_CONTENT_WEIGHT, STYLE_TV = 100, 1.0, 10.0
STYLE_PARAMS = ("pixel", "fourier")  # jaxviz.style.transfer.PARAMS, without importing JAX
FAST_STEPS, FAST_SIZE, FAST_BATCH, FAST_LR = 300, 128, 4, 1e-2


def _load_model(args):
    from jaxviz import models

    return models.load(args.model, args.weights)


def _image(path, size=None):
    from jaxviz.io import image

    return image.load_image(path, size)


def check_texture(args) -> None:
    from jaxviz.io import image

    check_model(args)
    args.source_image = _image(args.source)
    if args.source_size:
        args.source_image = image.prepare(args.source_image, args.source_size)
    args.size = args.size or min(args.source_image.shape[:2])


def cmd_texture(args) -> None:
    import time

    from jaxviz.io import image
    from jaxviz.style import texture

    source, size = args.source_image, args.size
    model, variables = _load_model(args)
    start = time.perf_counter()
    r = texture.synthesize(key(args), model, variables, source, size=size, steps=args.steps,
                           optimizer=optimizer(args.optimizer, texture.default_optimizer(args.steps)),
                           tv_weight=args.tv, spectrum_weight=args.spectrum, progress=None)
    image.save_png(args.out, r.images[0])
    seconds = time.perf_counter() - start
    summary = {"style_loss_start": float(r.style_loss_start[0]), "style_loss_end": float(r.style_loss_end[0])}
    report(args, summary, f"wrote {args.out} ({size}x{size} texture, style loss {summary['style_loss_start']:.4g}"
                          f" -> {summary['style_loss_end']:.4g}, {seconds:.1f} s)")


def check_style(args) -> None:
    info = check_model(args)
    args.content_image = _image(args.content, args.size or info.input_size)
    args.style_image = _image(args.style)
    try:
        args.scale_list = tuple(float(f) for f in args.scales.split(","))
    except ValueError:
        raise ValueError(f"--scales must be comma-separated numbers, got {args.scales!r}") from None
    if not all(0 < f <= 1 for f in args.scale_list):
        raise ValueError(f"--scales must be fractions in (0, 1], got {args.scales}")


def cmd_style(args) -> None:
    import time

    from jaxviz.io import image
    from jaxviz.style import gram
    from jaxviz.style import transfer as style

    content, painting, scales = args.content_image, args.style_image, args.scale_list
    model, variables = _load_model(args)
    start = time.perf_counter()
    r = style.transfer(key(args), model, variables, content, painting, style_weight=args.style_weight,
                       content_weight=args.content_weight, tv_weight=args.tv, style_scale=args.style_scale,
                       scales=scales, steps=args.steps, optimizer=optimizer(args.optimizer, style.DEFAULT_OPTIMIZER),
                       preserve_colors=args.preserve_color, param=args.param, progress=None)
    image.save_png(args.out, r.images[0])
    seconds = time.perf_counter() - start
    layer = gram.default_layers(model).content
    to_style = style.content_loss_of(model, variables, r.images, painting, layer)
    summary = {"style_loss_start": float(r.style_loss_start[0]), "style_loss_end": float(r.style_loss_end[0]),
               "content_loss_to_content": float(r.content_loss[0]), "content_loss_to_style": float(to_style[0])}
    report(args, summary, f"wrote {args.out} (style loss {summary['style_loss_start']:.4g} -> "
                          f"{summary['style_loss_end']:.4g}; content loss at {layer}: "
                          f"{summary['content_loss_to_content']:.4g} to the content, "
                          f"{summary['content_loss_to_style']:.4g} to the style; {seconds:.1f} s)")


def check_train_style(args) -> None:
    from jaxviz.io import image

    check_model(args)
    args.size = args.size or FAST_SIZE
    if args.size % 4:
        raise ValueError(f"--size must be a multiple of 4, got {args.size}")
    args.style_image = _image(args.style)
    args.photos = image.load_folder(args.images, args.size) if args.images else None


def cmd_train_style(args) -> None:
    import shutil
    import time
    from pathlib import Path

    from jaxviz.style import fast

    size, painting = args.size, args.style_image
    photos = args.photos if args.photos is not None else fast.builtin_images(size)
    model, variables = _load_model(args)
    out = Path(args.out)
    checkpoints = Path(args.checkpoint_dir) if args.checkpoint_dir else out.with_name(out.name + ".checkpoints")
    start = time.perf_counter()
    lr = None if args.lr == FAST_LR else args.lr
    r = fast.train(key(args), model, variables, painting, photos, steps=args.steps, size=size,
                   batch_size=args.batch_size, optimizer=optimizer("adam", fast.DEFAULT_OPTIMIZER, lr),
                   style_weight=args.style_weight, checkpoint=checkpoints, checkpoint_every=args.checkpoint_every,
                   progress=None)
    fast.save(out, r.stylizer)
    shutil.rmtree(checkpoints, ignore_errors=True)
    seconds = time.perf_counter() - start
    last = max(r.losses) if r.losses else r.resumed_from
    summary = {"out": str(out), "steps": args.steps, "resumed_from": r.resumed_from, "images": len(photos),
               "final_loss": r.losses.get(last), "seconds": round(seconds, 3)}
    resumed = f", resumed from step {r.resumed_from}" if r.resumed_from else ""
    report(args, summary, f"wrote {out} ({args.steps} steps on {len(photos)} images{resumed}, {seconds:.1f} s)")


def check_stylize(args) -> None:
    from pathlib import Path

    if not Path(args.model_file).is_file():
        raise ValueError(f"{args.model_file}: no such file (write one with `jaxviz train-style`)")
    args.input = _image(args.image, args.size)


def cmd_stylize(args) -> None:
    import time

    from jaxviz.io import image
    from jaxviz.style import fast

    stylizer = fast.load(args.model_file)
    img = args.input
    start = time.perf_counter()
    out = fast.stylize(stylizer, img)
    image.save_png(args.out, out)
    seconds = time.perf_counter() - start
    report(args, {"out": str(args.out), "height": int(out.shape[0]), "width": int(out.shape[1]),
                  "seconds": round(seconds, 3)},
           f"wrote {args.out} ({out.shape[1]}x{out.shape[0]}, one forward pass, {seconds:.2f} s)")


def register(sub) -> None:
    p = sub.add_parser("texture", help="texture synthesis: a new image (any size) with the texture of SOURCE",
                       epilog=examples("jaxviz texture bricks.png --size 256 --out texture.png"))
    p.add_argument("source", help="path to the texture image")
    model_args(p)
    p.add_argument("--size", type=SIZE, default=None, help="output side in pixels (default: the source's short side)")
    p.add_argument("--source-size", type=SIZE, default=None, help="first resize and crop the source to this side")
    p.add_argument("--steps", type=STEPS, default=TEXTURE_STEPS, help="optimizer steps")
    p.add_argument("--optimizer", choices=("adam", "lbfgs"), default="adam",
                   help="adam: the library's Adam; lbfgs: optax's L-BFGS with a line search")
    p.add_argument("--tv", type=number(0), default=TEXTURE_TV, help="total-variation weight")
    p.add_argument("--spectrum", type=number(0), default=TEXTURE_SPECTRUM,
                   help="weight of the spectrum constraint: the source's long-range order "
                        f"(default {TEXTURE_SPECTRUM:g}; 0: the Gram matrices alone)")
    out_args(p, json_help='print {"style_loss_start", "style_loss_end"}')
    p.set_defaults(func=cmd_texture, check=check_texture)

    p = sub.add_parser("style", help="style transfer (Gatys): CONTENT painted in the style of STYLE",
                       description="Style layers per model: " + per_model("style_layers") + ". Content layer: "
                                   + per_model("content_layer") + ".",
                       epilog=examples("jaxviz style cat.png painting.jpg --out styled.png",
                                       "jaxviz style cat.png painting.jpg --scales 0.5,1 --preserve-color "
                                       "--out styled.png"))
    p.add_argument("content", help="path to the content image")
    p.add_argument("style", help="path to the style image")
    model_args(p)
    p.add_argument("--size", type=SIZE, default=None, help="content side in pixels (default: the model's)")
    p.add_argument("--style-weight", type=number(0), default=None,
                   help="weight of the style loss (default: the network's: 100 on EfficientNet-Lite, 1e6 on VGG)")
    p.add_argument("--content-weight", type=number(0), default=STYLE_CONTENT_WEIGHT, help="weight of the content loss")
    p.add_argument("--tv", type=number(0), default=STYLE_TV, help="total-variation weight")
    p.add_argument("--style-scale", type=number(above=0), default=1.0,
                   help="the style's short side as a multiple of the content's; sets the brush size")
    p.add_argument("--scales", default="1", help="coarse-to-fine fractions of the size, e.g. 0.5,1")
    p.add_argument("--steps", type=STEPS, default=STYLE_STEPS, help="optimizer steps per scale")
    p.add_argument("--optimizer", choices=("adam", "lbfgs"), default="adam",
                   help="adam: the library's Adam; lbfgs: optax's L-BFGS with a line search")
    p.add_argument("--preserve-color", action="store_true", help="keep the content's colours (luminance transfer)")
    p.add_argument("--param", choices=STYLE_PARAMS, default=None,
                   help="optimize the pixels or the Fourier spectrum (default: the network's, fourier on "
                        "EfficientNet-Lite, pixel otherwise)")
    out_args(p, json_help='print {"style_loss_start", "style_loss_end", "content_loss_to_content", '
                          '"content_loss_to_style"}')
    p.set_defaults(func=cmd_style, check=check_style)

    p = sub.add_parser("train-style", help="fast style transfer: train a feed-forward network for STYLE",
                       epilog=examples("jaxviz train-style painting.jpg --out painting.npz",
                                       "jaxviz train-style painting.jpg --images photos/ --steps 2000 --out p.npz"))
    p.add_argument("style", help="path to the style image")
    p.add_argument("--images", default=None, help="folder of training images (default: the bundled photos)")
    model_args(p)
    p.add_argument("--steps", type=STEPS, default=FAST_STEPS, help="training steps")
    p.add_argument("--size", type=SIZE, default=None, help=f"training crop side, a multiple of 4 (default {FAST_SIZE})")
    p.add_argument("--batch-size", "--batch", type=integer(1, 1024), default=FAST_BATCH, help="images per step")
    p.add_argument("--lr", type=number(above=0), default=FAST_LR, help="Adam learning rate")
    p.add_argument("--style-weight", type=number(0), default=None,
                   help="weight of the style loss (default: the network's)")
    p.add_argument("--checkpoint-dir", default=None, help="orbax checkpoints (default: OUT.checkpoints); an "
                                                          "interrupted run resumes from there")
    p.add_argument("--checkpoint-every", type=STEPS, default=50, help="steps between checkpoints")
    out_args(p, out_help="the trained network (.npz) to write")
    p.set_defaults(func=cmd_train_style, check=check_train_style, resumes=True)

    p = sub.add_parser("stylize", help="fast style transfer: stylize IMAGE with a trained network, one forward pass",
                       epilog=examples("jaxviz stylize painting.npz photo.jpg --out stylized.png"))
    p.add_argument("model_file", metavar="MODEL", help="a network written by `jaxviz train-style`")
    p.add_argument("image", help="path to the image")
    p.add_argument("--size", type=SIZE, default=None, help="resize and crop to this side first (default: as is)")
    p.add_argument("--out", required=True, help="PNG to write")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.set_defaults(func=cmd_stylize, check=check_stylize)
