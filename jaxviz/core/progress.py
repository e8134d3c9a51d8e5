"""One progress bar for every long computation (loops, data-set passes, gallery sections)."""

from __future__ import annotations

import sys
import time

__all__ = ["progress_bar", "log_when_not_a_terminal"]

_LOG = {"on": False, "every": 15.0}


def log_when_not_a_terminal(on: bool = True, every: float = 15.0) -> None:
    """Where stderr is not a terminal (a log file, CI), ``progress=None`` prints a line every ``every`` seconds
    instead of nothing. The command line turns this on; a library caller keeps tqdm's own rule."""
    _LOG.update(on=on, every=every)


class _Lines:
    """The part of tqdm's interface jaxviz uses, as plain lines on stderr: ``desc: 64/300 (21%), 12 s, ~44 s left``."""

    def __init__(self, total: int, desc: str, every: float):
        self.total, self.desc, self.every, self.n = total, desc, every, 0
        self.start = self.last = time.monotonic()
        self.postfix, self.printed = "", 0

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if n and now - self.last >= self.every:
            self.last = now
            self._print(now)

    def set_postfix(self, values=None, **kwargs) -> None:
        values = {**(values or {}), **kwargs}
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def _print(self, now: float) -> None:
        self.printed = self.n
        elapsed = now - self.start
        left = elapsed * (self.total - self.n) / self.n if self.n else float("nan")
        extra = f", {self.postfix}" if self.postfix else ""
        print(f"{self.desc}: {self.n}/{self.total} ({100 * self.n / max(self.total, 1):.0f}%), {elapsed:.0f} s, "
              f"~{left:.0f} s left{extra}", file=sys.stderr, flush=True)

    def close(self) -> None:
        now = time.monotonic()
        if now - self.start >= self.every and self.printed != self.n:  # a long run ends with its total
            self._print(now)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def progress_bar(total: int, desc: str, progress: bool | None):
    """A tqdm bar on stderr; ``progress=None`` shows it only on a terminal (or as log lines, see
    :func:`log_when_not_a_terminal`)."""
    if progress is None and _LOG["on"] and not sys.stderr.isatty():
        return _Lines(total, desc, _LOG["every"])
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=None if progress is None else not progress, leave=False)
