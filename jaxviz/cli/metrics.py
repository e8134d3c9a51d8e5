"""The metrics command: ``evaluate`` (attribution methods times metrics, over images, as a table)."""

from __future__ import annotations

import json
from pathlib import Path

from jaxviz.cli._common import MAX_SIZE, check_class, check_layers, check_model, examples, integer, model_args

#: the methods ``evaluate`` and ``run`` take (jaxviz.run.tasks.MAP_METHODS; ``jaxviz saliency --method`` has more
#: knobs); the names live here too so that they are checked before JAX loads (a test keeps the two equal).
METHODS = ("saliency", "gradxinput", "guided", "smoothgrad", "ig", "gradcam", "gradcam++", "layercam", "scorecam",
           "ablationcam", "occlusion")
#: metrics that score a map on perturbed copies of the image, or read the map alone (jaxviz.run.tasks.METRICS).
METRICS = ("deletion", "insertion", "pixel_flipping", "region_perturbation", "faithfulness_correlation",
           "mu_fidelity", "road", "infidelity", "sparseness", "complexity")


def _names(text: str, valid: tuple[str, ...], flag: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    unknown = [n for n in names if n not in valid]
    if not names or unknown:
        raise ValueError(f"{flag}: unknown {', '.join(map(repr, unknown)) or 'empty list'}; "
                         f"choose from {', '.join(valid)}")
    return names


def _image_paths(inputs: list[str]) -> list[Path]:
    from jaxviz.io import image

    paths = []
    for text in inputs:
        path = Path(text)
        if path.is_dir():
            paths += image.list_images(path)
        elif path.is_file():
            paths.append(path)
        else:
            raise ValueError(f"{path}: no such file or folder")
    return paths


def check_evaluate(args) -> None:
    from jaxviz.io import image

    info = check_model(args)
    args.method_names = _names(args.methods, METHODS, "--methods")
    args.metric_names = _names(args.metrics, METRICS, "--metrics")
    if args.target is not None:
        check_class(info, args.target)
    if args.layer is not None:
        check_layers(args.layer, info)
    if not args.inputs and not args.sample:
        raise ValueError("give images (files or folders) or --sample NAME[,NAME]")
    size = args.size or info.input_size
    if args.pixels_per_step is not None and args.pixels_per_step > size * size:
        raise ValueError(f"--pixels-per-step must be at most {size * size} (the pixels of a {size} px image), "
                         f"got {args.pixels_per_step}")
    named = [(s, image.sample(s, size)) for s in (args.sample.split(",") if args.sample else [])]
    args.images = [(str(p), image.load_image(p, size)) for p in _image_paths(args.inputs)] + named
    args.size = size


def _methods(model, layer):
    from jaxviz.run import tasks

    return {name: tasks.MAP_METHODS[name](model, layer) for name in METHODS}


def _metrics(args):
    import jax

    from jaxviz.run import tasks

    key = jax.random.key(args.seed)
    return {name: tasks.METRICS[name](args.size, key, args.pixels_per_step) for name in METRICS}


#: which direction is better, for the table's header.
BETTER = {"deletion": "low", "insertion": "high", "pixel_flipping": "low", "region_perturbation": "high",
          "faithfulness_correlation": "high", "mu_fidelity": "high", "road": "low", "infidelity": "low",
          "sparseness": "high", "complexity": "low"}


def cmd_evaluate(args) -> None:
    import jax
    import jax.numpy as jnp
    import numpy as np

    from jaxviz import models
    from jaxviz.core.progress import progress_bar

    model, variables = models.load(args.model, args.weights)
    layer = args.layer or model.cam_layer
    methods, metric_fns = _methods(model, layer), _metrics(args)
    explain = {m: jax.jit(lambda v, x, t, fn=methods[m]: fn(model, v, x, t)) for m in args.method_names}
    score = {m: jax.jit(lambda v, x, t, maps, fn=metric_fns[m]: fn(model, v, x, t, maps)) for m in args.metric_names}
    predict = jax.jit(model.apply)
    rows = []
    with progress_bar(len(args.images), "evaluate", None) as bar:
        for name, img in args.images:
            x = jnp.asarray(img)[None]
            target = args.target if args.target is not None else int(jnp.argmax(predict(variables, x)[0]))
            t = jnp.asarray([target])
            for method in args.method_names:
                maps = explain[method](variables, x, t)
                if not bool(jnp.all(jnp.isfinite(maps))):
                    raise ValueError(f"{method} produced non-finite values on {name}")
                for metric in args.metric_names:
                    value = float(score[metric](variables, x, t, maps)[0])
                    rows.append({"image": name, "target": target, "method": method, "metric": metric,
                                 "score": value})
            bar.update(1)
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return
    table = {(r["method"], r["metric"]): [] for r in rows}
    for r in rows:
        table[r["method"], r["metric"]].append(r["score"])
    header = ["method"] + [f"{m} ({BETTER[m]})" for m in args.metric_names]
    lines = [header] + [[method] + [f"{np.nanmean(table[method, metric]):.4f}" for metric in args.metric_names]
                        for method in args.method_names]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    print(f"{model.name}, {len(args.images)} image(s) at {args.size} px; mean score per method "
          "(low/high: which is better)")
    for line in lines:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())


def register(sub) -> None:
    p = sub.add_parser("evaluate", help="which map to trust: attribution methods scored by metrics, as a table",
                       description="Runs each method on each image (its top class unless --target) and scores the "
                                   "maps with each metric (jaxviz.metrics); prints the mean per method and metric, "
                                   "or one JSON row per image, method and metric.",
                       epilog=examples("jaxviz evaluate --sample chelsea,coffee --methods saliency,guided,gradcam "
                                       "--metrics deletion,insertion",
                                       "jaxviz evaluate photos/ --methods gradcam,ig --metrics road --json"))
    p.add_argument("inputs", nargs="*", help="image files or folders of images")
    p.add_argument("--sample", help="bundled photos, comma-separated: chelsea, coffee, astronaut, rocket")
    model_args(p)
    p.add_argument("--methods", default="saliency,guided,gradcam,ig", help="comma-separated: " + ", ".join(METHODS))
    p.add_argument("--metrics", default="deletion,insertion", help="comma-separated: " + ", ".join(METRICS))
    p.add_argument("--target", type=integer(0), default=None, help="class index (default: each image's top class)")
    p.add_argument("--layer", default=None, help="the CAM methods' layer (default: the model's last spatial one)")
    p.add_argument("--size", type=integer(32, MAX_SIZE), default=None, help="image side (default: the model's)")
    p.add_argument("--pixels-per-step", type=integer(1), default=None,
                   help="deletion, insertion, pixel flipping: pixels per step (default: 1/50 of the image)")
    p.add_argument("--seed", type=int, default=0, help="PRNG seed of the random metrics")
    p.add_argument("--json", action="store_true", help="one JSON row per image, method and metric")
    p.set_defaults(func=cmd_evaluate, check=check_evaluate)
