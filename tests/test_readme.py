"""Every Python block of README.md and docs/*.md runs as written, top to bottom, in one fresh interpreter.

The blocks of one file share their names (a later block may use ``model`` from the first one), as a reader
pasting them into one session would; each file gets its own interpreter and an empty working directory, so
a block that reads a file it never wrote, or needs a name nobody defined, fails here.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
#: a README block should take seconds; the whole README a few minutes on 2 cores (measured: 331 s for README.md under
#: the suite's two workers on a fresh clone, 2026-12-02)
TIMEOUT_S = 900


def blocks(markdown: str) -> list[str]:
    return BLOCK.findall(markdown)


def script(markdown: str) -> str:
    """One program: each block in turn, announced on stderr so a failure names its block."""
    parts = []
    for i, block in enumerate(blocks(markdown)):
        first = block.strip().splitlines()[0] if block.strip() else ""
        parts.append(f"import sys as _sys\nprint({f'block {i + 1}: {first}'!r}, file=_sys.stderr)\n{block}")
    return "\n".join(parts)


def run_blocks(markdown: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", script(markdown)], cwd=cwd, capture_output=True, text=True,
                          timeout=TIMEOUT_S, env={**os.environ, "PYTHONWARNINGS": "ignore"})


def test_a_broken_block_fails_and_names_itself(tmp_path):
    broken = textwrap.dedent("""\
        Some prose.

        ```python
        x = 1
        ```

        ```python
        print(y)  # never defined
        ```
        """)
    proc = run_blocks(broken, tmp_path)
    assert proc.returncode != 0 and "NameError" in proc.stderr
    assert "block 2: print(y)" in proc.stderr  # the failing block is the last one announced
    fixed = broken.replace("print(y)", "print(x)")
    assert run_blocks(fixed, tmp_path).returncode == 0


@pytest.mark.parametrize("path", [p for p in DOCS if blocks(p.read_text())], ids=lambda p: p.name)
def test_every_block_runs_as_written(path, tmp_path):
    proc = run_blocks(path.read_text(), tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
