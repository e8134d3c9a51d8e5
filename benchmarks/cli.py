"""How fast the command line answers: ``jaxviz --help``, ``jaxviz CMD --help`` and a user mistake, wall seconds.

    python benchmarks/cli.py            # median of 5 fresh processes each

Each is a new Python process (``python -m jaxviz.cli ...``, what the ``jaxviz`` script runs), timed from start
to exit, as a user waits for it. No peer: the targets are 0.5 s for help and 1 s for a user mistake on the
2-core machine (every check runs before JAX is imported).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

CASES = {
    "jaxviz --help": ["--help"],
    "jaxviz saliency --help": ["saliency", "--help"],
    "jaxviz classify missing.png (exit 2)": ["classify", "missing.png"],
    "jaxviz dream --size 0 (exit 2)": ["dream", "--size", "0", "--out", "o.png"],
    "jaxviz dream --layer nope (exit 2)": ["dream", "--layer", "nope", "--out", "o.png"],
    "jaxviz deepinversion --targets unicorn (exit 2)": ["deepinversion", "--targets", "unicorn", "--out", "d"],
    "jaxviz saliency --sample chelsea --target 5000 (exit 2)": ["saliency", "--sample", "chelsea", "--target",
                                                                  "5000", "--out", "s.png"],
}


def main() -> None:
    print("| command | median s | runs |")
    print("|---|---:|---|")
    for name, argv in CASES.items():
        runs = []
        for _ in range(5):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "jaxviz.cli", *argv], capture_output=True)
            runs.append(time.perf_counter() - t0)
        print(f"| `{name}` | {statistics.median(runs):.3f} | {', '.join(f'{r:.2f}' for r in runs)} |")


if __name__ == "__main__":
    main()
