"""The ``jaxviz`` command line: one module per command family, each parser beside its handler.

Nothing here imports JAX until a command runs: ``jaxviz --help``, ``jaxviz CMD --help`` and argument mistakes
answer at once. User mistakes (a missing or broken image, an unknown model or layer, a bad flag value, missing
weights) print one line on stderr and exit with status 2, without a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from jaxviz.cli import attribution, datafree, experiments, models, style, synthesis
from jaxviz.cli._common import DEFAULT_MODEL, EXIT_USAGE, Parser, UsageError
from jaxviz.cli.datafree import DEEPINVERSION_LR, DEEPINVERSION_STEPS

__all__ = ["main", "build_parser", "EXIT_USAGE", "DEEPINVERSION_STEPS", "DEEPINVERSION_LR", "FAMILIES"]

#: the command modules, in the order ``jaxviz --help`` lists their commands.
FAMILIES = (models, attribution, synthesis, datafree, style, experiments)


def build_parser() -> Parser:
    parser = Parser(prog="jaxviz", description="CNN visualization and inversion in JAX.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for family in FAMILIES:
        family.register(sub)
    return parser


def _user_error(e: BaseException) -> bool:
    """A mistake the user can fix (a bad value, a missing file or weights), as opposed to a bug."""
    if isinstance(e, (ValueError, TypeError)):
        return True
    models = sys.modules.get("jaxviz.models")  # loaded by then if the weights were looked for
    return models is not None and isinstance(e, (models.WeightsNotFoundError, models.UnsafeCheckpointError))


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        if getattr(args, "model", "") is None:
            args.model = DEFAULT_MODEL
        args.func(args)
    except UsageError as e:
        print(str(e), file=sys.stderr)
        return EXIT_USAGE
    except Exception as e:
        if not _user_error(e):
            raise
        print(f"jaxviz: error: {e}".splitlines()[0], file=sys.stderr)
        return EXIT_USAGE
    return 0
