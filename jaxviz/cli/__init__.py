"""The ``jaxviz`` command line: one module per command family, each parser beside its handler.

Every command runs in two phases: ``check(args)`` reads and validates everything the user gave (flags, model and
layer names, classes, image files) without importing JAX, so a mistake is answered at once; then ``func(args)``
imports the library, loads the model and works. User mistakes (a missing or broken image, an unknown model or
layer, a bad flag value, missing weights) print one line on stderr and exit with status 2, without a traceback;
Ctrl-C prints one line and exits with status 130 (commands that checkpoint say that a rerun resumes).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from jaxviz.cli import _interrupt, attribution, datafree, experiments, metrics, models, run, style, synthesis
from jaxviz.cli._common import EXIT_INTERRUPTED, EXIT_USAGE, Parser, UsageError
from jaxviz.cli.datafree import DEEPINVERSION_PARAMS, DEEPINVERSION_STEPS

__all__ = ["main", "entry", "build_parser", "EXIT_USAGE", "EXIT_INTERRUPTED", "DEEPINVERSION_STEPS",
           "DEEPINVERSION_PARAMS", "FAMILIES"]

#: the command modules, in the order ``jaxviz --help`` lists their commands.
FAMILIES = (models, attribution, metrics, run, synthesis, datafree, style, experiments)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("jaxviz")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown (not installed)"


def build_parser() -> Parser:
    parser = Parser(prog="jaxviz", description="CNN visualization and inversion in JAX. `jaxviz CMD --help` shows "
                                               "a command's options, defaults and examples.")
    parser.add_argument("--version", action="version", version=f"jaxviz {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser, metavar="COMMAND")
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
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        parser = build_parser()
        if not argv:  # bare `jaxviz`: the command list
            parser.print_help()
            return 0
        args = parser.parse_args(argv)
        _interrupt.expect(resumes=getattr(args, "resumes", False))
        if hasattr(args, "check"):
            args.check(args)
        from jaxviz.core import progress

        progress.log_when_not_a_terminal()  # long commands say where they are in a log file too
        args.func(args)
    except UsageError as e:
        print(str(e), file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        _interrupt.answer()
        return EXIT_INTERRUPTED
    except Exception as e:
        if not _user_error(e):
            raise
        print(f"jaxviz: error: {e}".splitlines()[0], file=sys.stderr)
        return EXIT_USAGE
    return 0


def entry() -> None:
    """The console script: :func:`main` with a Ctrl-C that answers within seconds (:mod:`jaxviz.cli._interrupt`),
    then an exit that does not wait for JAX's threads after a Ctrl-C (a normal interpreter shutdown in the middle
    of a compilation can crash)."""
    import os

    _interrupt.install()
    code = main()
    if code == EXIT_INTERRUPTED:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
