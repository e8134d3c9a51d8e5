"""The model commands: ``classify`` (top classes of an image) and ``layers`` (names and shapes)."""

from __future__ import annotations

import json

from jaxviz.cli._common import DEFAULT_MODEL, check_model, examples, image_args, integer, load_input, model_args


def check_classify(args) -> None:
    info = check_model(args)
    args.input = load_input(args, info.input_size)


def cmd_classify(args) -> None:
    import jax
    import jax.numpy as jnp

    from jaxviz import models, top_k

    model, variables = models.load(args.model, args.weights)
    logits = jax.jit(model.apply)(variables, jnp.asarray(args.input)[None])
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


def register(sub) -> None:
    p = sub.add_parser("classify", help="top-k ImageNet classes of an image",
                       epilog=examples("jaxviz classify --sample chelsea", "jaxviz classify cat.jpg --model resnet50 "
                                                                            "--top 3 --json"))
    image_args(p)
    model_args(p)
    p.add_argument("--top", type=integer(1, 1000), default=5, help="how many classes")
    p.add_argument("--json", action="store_true", help='print [{"class", "label", "prob"}, ...], best first')
    p.set_defaults(func=cmd_classify, check=check_classify)

    p = sub.add_parser("layers", help="the layer names of a model, with output shapes",
                       epilog=examples("jaxviz layers", "jaxviz layers --model resnet50 --json"))
    p.add_argument("--model", default=DEFAULT_MODEL, help="model name")
    p.add_argument("--json", action="store_true", help='print [{"name", "shape"}, ...]')
    p.set_defaults(func=cmd_layers, check=check_model)
