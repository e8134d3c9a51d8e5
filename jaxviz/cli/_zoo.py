"""What the command line knows about the zoo before JAX loads: names, sizes, classes, layers, default layers.

``zoo.json`` beside this module is generated from ``jaxviz.models`` (``python -m jaxviz.cli._zoo``) and a test
keeps the two equal, so a wrong model, layer, class or size is answered in a fraction of a second, before
anything heavy is imported or any weights are read.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import NamedTuple

__all__ = ["Info", "info", "names", "describe", "table"]


class Info(NamedTuple):
    name: str
    input_size: int
    num_classes: int
    labels: str
    layers: tuple[str, ...]
    cam_layer: str | None
    dream_layer: str
    style_layers: tuple[str, ...]
    content_layer: str


@functools.cache
def table() -> dict[str, Info]:
    rows = json.loads(resources.files("jaxviz.cli").joinpath("zoo.json").read_text())
    return {name: Info(name=name, **{k: tuple(v) if isinstance(v, list) else v for k, v in row.items()})
            for name, row in rows.items()}


def names() -> tuple[str, ...]:
    return tuple(table())


def info(name: str) -> Info:
    """The row for ``name``; the same error as ``jaxviz.models.load`` for an unknown one."""
    rows = table()
    if name not in rows:
        raise ValueError(f"unknown model {name!r}; available models: {', '.join(rows)}")
    return rows[name]


def describe(name: str) -> dict:
    """The row of ``name`` computed from ``jaxviz.models`` (imports JAX): what ``zoo.json`` must hold."""
    from jaxviz import models
    from jaxviz.style import gram
    from jaxviz.synthesis import dream

    model = models.build(name)
    style = gram.default_layers(model)
    return {"input_size": model.input_size, "num_classes": model.num_classes, "labels": model.labels,
            "layers": list(model.layers), "cam_layer": model.cam_layer, "dream_layer": dream.default_layer(model),
            "style_layers": list(style.style), "content_layer": style.content}


def _write() -> None:
    from pathlib import Path

    from jaxviz import models

    rows = {name: describe(name) for name in models.available()}
    path = Path(__file__).with_name("zoo.json")
    path.write_text(json.dumps(rows, indent=1) + "\n")
    print(f"wrote {path} ({len(rows)} models)")


if __name__ == "__main__":
    _write()
