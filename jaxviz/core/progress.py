"""One progress bar for every long computation (loops, data-set passes, gallery sections)."""

from __future__ import annotations

__all__ = ["progress_bar"]


def progress_bar(total: int, desc: str, progress: bool | None):
    """A tqdm bar on stderr; ``progress=None`` shows it only on a terminal."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=None if progress is None else not progress, leave=False)
