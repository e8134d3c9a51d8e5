"""The experiment commands: ``neighbors --digits`` and ``demo`` (the HTML gallery)."""

from __future__ import annotations

import sys

from jaxviz.cli._common import MIN_SIZE, examples, integer, number, report

#: jaxviz.experiments.digits_neighbors.DIGITS_SHIFT (a test keeps them equal).
DIGITS_SHIFT = 4
#: jaxviz.experiments.demo.SECTIONS' names, in order (a test keeps them equal).
DEMO_SECTIONS = ("classify", "attribution", "filters", "activations", "patches", "neighbors", "embedding", "dream",
                 "classviz", "fool", "inversion", "deepinversion", "texture", "style", "fast_style")


def check_neighbors(args) -> None:
    if not args.digits:
        raise ValueError("neighbors runs the digits experiment: pass --digits")


def cmd_neighbors(args) -> None:
    import jax

    from jaxviz.experiments import digits_neighbors

    r = digits_neighbors.run(jax.random.key(args.seed), k=args.k, shift=args.shift)
    keys = ("feature_knn_label_agreement", "pixel_knn_label_agreement")
    report(args, {k: r[k] for k in keys},
           f"{r['k']}-NN label agreement of {r['queries']} held-out digits (shifted up to {r['shift']} px) among "
           f"{r['database']} training digits: features {r['feature_knn_label_agreement']:.3f}, pixels "
           f"{r['pixel_knn_label_agreement']:.3f} (the CNN's test accuracy on the shifted digits: "
           f"{r['test_accuracy']:.3f})")


def check_demo(args) -> None:
    args.sections = args.only.split(",") if args.only else None
    unknown = [n for n in args.sections or () if n not in DEMO_SECTIONS]
    if unknown:
        raise ValueError(f"--only: unknown section {unknown[0]!r}; sections: {', '.join(DEMO_SECTIONS)}")


def cmd_demo(args) -> None:
    import time

    from jaxviz.experiments import demo

    start = time.perf_counter()
    only = args.sections
    index = demo.run(args.out, scale=args.scale, size=args.size, seed=args.seed, only=only, progress=None,
                     log=lambda line: print(line, file=sys.stderr))
    print(f"wrote {index} ({time.perf_counter() - start:.0f} s); open it in a browser")


def register(sub) -> None:
    p = sub.add_parser("neighbors", help="nearest neighbours in feature space vs pixel space (the digits experiment)",
                       epilog=examples("jaxviz neighbors --digits", "jaxviz neighbors --digits --shift 6 --json"))
    p.add_argument("--digits", action="store_true", help="scikit-learn's digits and the digits CNN (the one offered)")
    p.add_argument("--k", type=integer(1, 100), default=5, help="neighbours per query")
    p.add_argument("--shift", type=integer(0, 8), default=DIGITS_SHIFT,
                   help=f"roll each query by up to this many pixels (default {DIGITS_SHIFT}; 0: none)")
    p.add_argument("--seed", type=int, default=0, help="PRNG seed")
    p.add_argument("--json", action="store_true",
                   help='print {"feature_knn_label_agreement", "pixel_knn_label_agreement"}')
    p.set_defaults(func=cmd_neighbors, check=check_neighbors)

    p = sub.add_parser("demo", help="run every technique on the embedded default and write an HTML gallery",
                       description="Sections: " + ", ".join(DEMO_SECTIONS) + ". A rerun keeps the finished "
                                   "sections and recomputes only those whose settings changed.",
                       epilog=examples("jaxviz demo --out gallery", "jaxviz demo --out gallery --only dream,classviz "
                                                                    "--scale 4   # nicer pictures, 4x the steps"))
    p.add_argument("--out", required=True, help="folder for index.html and the PNGs (a rerun resumes)")
    p.add_argument("--scale", type=number(maximum=100, above=0), default=1.0,
                   help="multiply every step count (default 1; 4: nicer)")
    p.add_argument("--size", type=integer(MIN_SIZE, 1024), default=160, help="side of the synthesized images")
    p.add_argument("--only", default=None, help="comma-separated sections (default: all)")
    p.add_argument("--seed", type=int, default=0, help="PRNG seed")
    p.set_defaults(func=cmd_demo, check=check_demo, resumes=True)
