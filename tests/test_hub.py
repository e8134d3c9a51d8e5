"""Download, verify and cache, on local files (file:// URLs)."""

from __future__ import annotations

import hashlib

import pytest

from jaxviz.models import WeightsNotFoundError, hub


@pytest.fixture
def served(tmp_path, monkeypatch):
    monkeypatch.setenv("JAXVIZ_CACHE", str(tmp_path / "cache"))
    source = tmp_path / "server" / "weights.bin"
    source.parent.mkdir()
    source.write_bytes(b"pretend weights" * 1000)
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    return source, {"file": "weights.bin", "url": source.as_uri(), "sha256": digest}


def test_downloads_verifies_and_caches(served, tmp_path):
    source, entry = served
    path = hub.fetch("x", entry=entry, progress=False)
    assert path == tmp_path / "cache" / "downloads" / "weights.bin"
    assert path.read_bytes() == source.read_bytes()
    source.unlink()  # the second fetch must come from the cache
    assert hub.fetch("x", entry=entry, progress=False) == path


def test_local_finds_only_what_needs_no_download(served, tmp_path):
    source, entry = served
    assert hub.local("x", entry=entry) is None  # on the server only: fetch would download it
    path = hub.fetch("x", entry=entry, progress=False)
    assert hub.local("x", entry=entry) == path
    path.write_bytes(b"tampered")
    with pytest.raises(ValueError, match="does not match the manifest"):
        hub.local("x", entry=entry)


def test_a_prefix_digest_is_checked_too(served):
    _, entry = served
    assert hub.fetch("x", entry=dict(entry, sha256=entry["sha256"][:8]), progress=False).exists()


def test_wrong_digest_is_refused_and_nothing_is_kept(served, tmp_path):
    _, entry = served
    with pytest.raises(ValueError, match="does not match the manifest"):
        hub.fetch("x", entry=dict(entry, sha256="0" * 64), progress=False)
    assert not any((tmp_path / "cache" / "downloads").iterdir())


def test_offline_names_url_and_destination(served, tmp_path):
    _, entry = served
    entry = dict(entry, url=(tmp_path / "nowhere.bin").as_uri())
    with pytest.raises(WeightsNotFoundError) as err:
        hub.fetch("x", entry=entry, progress=False)
    assert entry["url"] in str(err.value)
    assert str(tmp_path / "cache" / "downloads" / "weights.bin") in str(err.value)


def test_cache_dir_follows_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("JAXVIZ_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert hub.cache_dir() == tmp_path / "jaxviz"
    monkeypatch.setenv("JAXVIZ_CACHE", str(tmp_path / "mine"))
    assert hub.cache_dir() == tmp_path / "mine"


def test_manifest_entries_are_complete():
    for name, entry in hub.manifest().items():
        for field in ("file", "url", "license", "source", "preprocessing"):
            assert entry.get(field), f"{name} lacks {field}"
        assert entry["sha256"] or "weights=PATH" in entry["note"], f"{name}: no digest and no note"


def test_an_entry_without_a_digest_is_never_downloaded(served):
    _, entry = served
    with pytest.raises(WeightsNotFoundError, match="no published sha256"):
        hub.fetch("x", entry=dict(entry, sha256=None), progress=False)


def test_packaged_weights_match_the_manifest():
    path = hub.fetch("efficientnet_lite0")
    assert hub.sha256(path) == hub.manifest()["efficientnet_lite0"]["sha256"]
