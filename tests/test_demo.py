"""The demo gallery: sections write PNGs and captions, index.html renders in headless Chromium with every
image decoded, and a rerun resumes instead of recomputing."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from jaxviz import cli
from jaxviz.experiments import demo
from jaxviz.io import image

CHEAP = ("classify", "filters", "activations")


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("JAXVIZ_REQUIRE_CHROMIUM"):  # set by .ci/run after it installs Debian's chromium
        pytest.fail("headless Chromium is missing: .ci/run installs Debian's chromium package")
    pytest.skip("no Chromium here (apt-get install chromium)")


_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
          "--disable-background-networking", "--disable-component-update", "--disable-sync",
          "--allow-file-access-from-files", "--virtual-time-budget=5000"]


def render(index, tmp_path):
    """Chromium's DOM after load (with the gallery's decoded-image count) and a full-page screenshot."""
    chromium = _chromium()
    profile = tmp_path / "profile"
    url = index.resolve().as_uri()
    dom = subprocess.run([chromium, *_FLAGS, f"--user-data-dir={profile}", "--dump-dom", url],
                         capture_output=True, text=True, timeout=120).stdout
    shot = tmp_path / "shot.png"
    subprocess.run([chromium, *_FLAGS, f"--user-data-dir={profile}", "--window-size=1200,2400",
                    f"--screenshot={shot}", url], capture_output=True, timeout=120)
    return dom, shot


def test_gallery_renders_in_headless_chromium_and_resumes(capsys, tmp_path):
    out = tmp_path / "gallery"
    assert cli.main(["demo", "--out", str(out), "--only", ",".join(CHEAP)]) == 0
    capsys.readouterr()
    page = (out / "index.html").read_text()
    sources = re.findall(r'<img src="([^"]+)"', page)
    assert sorted(sources) == sorted(f"{n}.png" for n in CHEAP)
    for name in CHEAP:  # every caption says what, which layer, the settings and the time
        figure = page[page.index(f'id="{name}"'):].split("</figure>")[0]
        assert all(word in figure for word in ("Layer:", "Settings:", "Time:"))
    dom, shot = render(out / "index.html", tmp_path)
    assert f'data-images-loaded="{len(CHEAP)}/{len(CHEAP)}"' in dom, dom[-500:]
    picture = image.load_image(shot)
    assert picture.shape[0] > 500 and np.std(picture) > 0.05  # not a blank page
    stamp = {n: (out / f"{n}.png").stat().st_mtime_ns for n in CHEAP}
    record = json.loads((out / "gallery.json").read_text())
    assert set(record["entries"]) == set(CHEAP)
    demo.run(out, only=CHEAP)  # everything done: nothing is recomputed
    assert stamp == {n: (out / f"{n}.png").stat().st_mtime_ns for n in CHEAP}


def test_demo_rejects_unknown_sections(capsys, tmp_path):
    assert cli.main(["demo", "--out", str(tmp_path), "--only", "classify,nope"]) == 2
    err = capsys.readouterr().err
    assert "nope" in err and "attribution" in err and len(err.strip().splitlines()) == 1


def test_filters_show_alexnet_beside_lite0_once_its_weights_are_cached(monkeypatch):
    """The demo never downloads: AlexNet's 11x11 filters join Lite0's only where hub.local finds its weights
    (here a stand-in: random AlexNet weights behind a patched hub.local)."""
    from jaxviz import models

    ctx = demo._Context(1.0, 160, 0, False)
    picture, what, layer, _ = demo._filters(ctx)
    if models.hub.local("alexnet") is None:
        assert "show beside them once alexnet-owt-7be5be79.pth is in" in what and layer == "stem"
    load = models.load
    monkeypatch.setattr(models.hub, "local", lambda name, entry=None: Path("alexnet-owt-7be5be79.pth"))
    monkeypatch.setattr(models, "load", lambda name=None, *a, **kw: load(name, weights=None) if name == "alexnet"
                        else load(name, *a, **kw))
    both, what, layer, _ = demo._filters(ctx)
    assert "beside AlexNet's 64 of 11x11x3" in what and layer == "stem | features.0"
    assert both.shape[1] > 2 * picture.shape[1] - 10  # two grids side by side
