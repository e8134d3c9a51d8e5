"""What every command shares: the one-line-error parser, common flags, and checks that need no JAX."""

from __future__ import annotations

import argparse
import functools
import json

EXIT_USAGE = 2
#: the embedded default (jaxviz.models.DEFAULT_MODEL; a test keeps the two equal).
DEFAULT_MODEL = "efficientnet_lite0"


class UsageError(Exception):
    pass


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, as for every other user mistake
        raise UsageError(f"{self.prog}: {message}")


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
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"model name (default {DEFAULT_MODEL}); see `jaxviz layers`")
    p.add_argument("--weights", default="default", help="'default', or a .pth/.safetensors/.npz file")


def load_input(args, size: int):
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


def layer_list(names: str, model) -> tuple[str, ...]:
    """``"a,b"`` -> ``("a", "b")``, each checked against the model's layers."""
    from jaxviz.models import check_names

    return check_names(tuple(names.split(",")), model.layers)


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


def positive(value: float, flag: str) -> None:
    if not value > 0:
        raise ValueError(f"{flag} must be positive, got {value}")


def report(args, summary: dict, text: str) -> None:
    print(json.dumps(summary) if getattr(args, "json", False) else text)
