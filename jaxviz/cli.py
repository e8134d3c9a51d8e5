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


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="jaxviz", description="CNN visualization and inversion in JAX.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("classify", help="top-k ImageNet classes of an image")
    _image_args(p)
    _model_args(p)
    p.add_argument("--top", type=int, default=5, help="how many classes (default 5)")
    p.add_argument("--json", action="store_true", help='print [{"class", "label", "prob"}, ...], best first')
    p.set_defaults(func=cmd_classify)

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
