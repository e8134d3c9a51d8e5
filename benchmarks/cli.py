"""How fast the command line answers: ``jaxviz --help``, ``jaxviz CMD --help`` and a user mistake, wall seconds.

    python benchmarks/cli.py            # median of 5 fresh processes each

Each is a new Python process (``python -m jaxviz.cli ...``, what the ``jaxviz`` script runs), timed from start
to exit, as a user waits for it. No peer: the target is the issue's 0.5 s for help on the 2-core machine.
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
    "jaxviz dream --steps x (exit 2)": ["dream", "--steps", "x", "--out", "o.png"],
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
