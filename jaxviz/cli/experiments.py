"""The experiment commands: ``neighbors --digits`` and ``demo`` (the HTML gallery)."""

from __future__ import annotations

import sys

from jaxviz.cli._common import report

#: jaxviz.experiments.digits_neighbors.DIGITS_SHIFT (a test keeps them equal).
DIGITS_SHIFT = 4


def cmd_neighbors(args) -> None:
    import jax

    from jaxviz.experiments import digits_neighbors

    if not args.digits:
        raise ValueError("neighbors runs the digits experiment: pass --digits")
    if args.k < 1 or args.shift < 0:
        raise ValueError(f"--k must be at least 1 and --shift non-negative, got {args.k}, {args.shift}")
    r = digits_neighbors.run(jax.random.key(args.seed), k=args.k, shift=args.shift)
    keys = ("feature_knn_label_agreement", "pixel_knn_label_agreement")
    report(args, {k: r[k] for k in keys},
           f"{r['k']}-NN label agreement of {r['queries']} held-out digits (shifted up to {r['shift']} px) among "
           f"{r['database']} training digits: features {r['feature_knn_label_agreement']:.3f}, pixels "
           f"{r['pixel_knn_label_agreement']:.3f} (the CNN's test accuracy on the shifted digits: "
           f"{r['test_accuracy']:.3f})")


def cmd_demo(args) -> None:
    import time

    from jaxviz.experiments import demo

    start = time.perf_counter()
    only = args.only.split(",") if args.only else None
    index = demo.run(args.out, scale=args.scale, size=args.size, seed=args.seed, only=only, progress=None,
                     log=lambda line: print(line, file=sys.stderr))
    print(f"wrote {index} ({time.perf_counter() - start:.0f} s); open it in a browser")


def register(sub) -> None:
    p = sub.add_parser("neighbors", help="nearest neighbours in feature space vs pixel space (the digits experiment)")
    p.add_argument("--digits", action="store_true", help="scikit-learn's digits and the digits CNN (the one offered)")
    p.add_argument("--k", type=int, default=5, help="neighbours per query (default 5)")
    p.add_argument("--shift", type=int, default=DIGITS_SHIFT,
                   help=f"roll each query by up to this many pixels (default {DIGITS_SHIFT}; 0: none)")
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
