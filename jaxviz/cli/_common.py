"""What every command shares: the one-line-error parser, range-checked flags, and checks that need no JAX."""

from __future__ import annotations

import argparse
import functools
import json
import re

from jaxviz.cli import _zoo

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
#: the embedded default (jaxviz.models.DEFAULT_MODEL; a test keeps the two equal).
DEFAULT_MODEL = "efficientnet_lite0"


class UsageError(Exception):
    pass


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Shows every option's default (unless its help already says it); examples keep their lines."""

    def _get_help_string(self, action):
        text = action.help or ""
        if (action.default is not None and action.default is not False and action.default != argparse.SUPPRESS
                and "default" not in text and action.option_strings):
            text += " (default: %(default)s)"
        return text


class Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message):  # one line, exit 2, as for every other user mistake
        m = re.match(r"argument (-[\w-]+)(?:/[\w-]+)*: (must .*)", message)
        raise UsageError(f"{self.prog}: {m[1]} {m[2]}" if m else f"{self.prog}: {message}")


def _number(kind, minimum=None, maximum=None, *, above=None):
    """An argparse ``type`` that parses ``kind`` and checks its range; the parser names the flag."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {'an integer' if kind is int else 'a number'}, "
                                             f"got {text!r}") from None
        if value != value:
            raise argparse.ArgumentTypeError(f"must be a number, got {text!r}")
        if minimum is not None and value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        if above is not None and not value > above:
            raise argparse.ArgumentTypeError(f"must be > {above}, got {value}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"must be <= {maximum}, got {value}")
        return value

    parse.__name__ = kind.__name__
    return parse


def integer(minimum: int | None = None, maximum: int | None = None):
    return _number(int, minimum, maximum)


def number(minimum: float | None = None, maximum: float | None = None, *, above: float | None = None):
    return _number(float, minimum, maximum, above=above)


#: the smallest image side every zoo network still reduces to a feature map (stride 32).
MIN_SIZE = 32
MAX_SIZE = 4096
SIZE = integer(MIN_SIZE, MAX_SIZE)
STEPS = integer(1, 1_000_000)


def examples(*lines: str) -> str:
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


def per_model(field: str) -> str:
    """``efficientnet_lite0: blocks.8, resnet50: layer3 ...``: a default layer, for the help."""
    rows = _zoo.table()
    return ", ".join(f"{name}: {getattr(rows[name], field)}" for name in rows)


def image_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    src = p.add_mutually_exclusive_group(required=required)
    src.add_argument("image", nargs="?", help="path to an image file")
    src.add_argument("--sample", help="a bundled scikit-image photo: chelsea, coffee, astronaut, rocket")


def out_args(p: argparse.ArgumentParser, json_help: str = "print a JSON summary",
             out_help: str = "PNG to write") -> None:
    p.add_argument("--seed", type=int, default=0, help="PRNG seed (same seed, same picture)")
    p.add_argument("--out", required=True, help=out_help)
    p.add_argument("--json", action="store_true", help=json_help)


def model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=DEFAULT_MODEL, help="model name: " + ", ".join(_zoo.names())
                   + "; `jaxviz layers --model NAME` lists its layers")
    p.add_argument("--weights", default="default", help="'default' (the published weights), or a "
                                                        ".pth/.safetensors/.npz file")


def check_model(args) -> _zoo.Info:
    """The model's row of the zoo table (no JAX): an unknown name fails here, listing the valid ones."""
    args.info = _zoo.info(args.model)
    return args.info


def load_input(args, size: int):
    """The image argument (a file or ``--sample``) as (size, size, 3): read and checked before JAX loads."""
    from jaxviz.io import image

    return image.sample(args.sample, size) if args.sample else image.load_image(args.image, size)


def key(args):
    import jax

    return jax.random.key(args.seed)


def label(model, cls: int) -> str:
    from jaxviz.io import labels

    return labels.labels_for(model)[cls]


def check_class(model, cls: int, what: str = "--target") -> None:
    if not 0 <= cls < model.num_classes:
        raise ValueError(f"{what} must be a class index in [0, {model.num_classes}), got {cls}")


def check_layers(names, model) -> tuple[str, ...]:
    """``"a,b"`` (or a tuple) -> ``("a", "b")``, each checked against ``model.layers`` (a model or a zoo row);
    the message is ``jaxviz.models.check_names``'s."""
    names = tuple(names.split(",")) if isinstance(names, str) else tuple(names)
    unknown = [n for n in names if n not in model.layers]
    if unknown:
        raise ValueError(f"unknown layer {unknown[0]!r}; valid names: {', '.join(model.layers)}")
    return names


@functools.cache
def optimizer(name: str, default=None, learning_rate: float | None = None):
    """The optax optimizer a CLI ``--optimizer`` name (and ``--lr``) stands for; cached, so repeated runs share
    compiled steps. ``default`` is the library's own Adam, used when no learning rate is given."""
    import optax

    if name == "lbfgs":
        return optax.lbfgs()
    if name == "adam":
        return default if learning_rate is None and default is not None else optax.adam(learning_rate)
    raise ValueError(f"--optimizer must be adam or lbfgs, got {name!r}")


def report(args, summary: dict, text: str) -> None:
    print(json.dumps(summary) if getattr(args, "json", False) else text)
