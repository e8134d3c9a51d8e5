"""Lazy attributes for packages: ``import jaxviz`` (and the CLI's ``--help``) loads no JAX."""

from __future__ import annotations

import importlib
from collections.abc import Mapping


def lazy(package: str, modules: tuple[str, ...] = (), names: Mapping[str, str] | None = None):
    """``(__getattr__, __dir__)`` for ``package``: its ``modules`` and ``{name: "module:attr"}`` on first use."""
    names = dict(names or {})

    def __getattr__(attr: str):
        if attr in modules:
            return importlib.import_module(f"{package}.{attr}")
        if attr in names:
            module, _, inner = names[attr].partition(":")
            return getattr(importlib.import_module(f"{package}.{module}"), inner or attr)
        raise AttributeError(f"module {package!r} has no attribute {attr!r}")

    def __dir__():
        return sorted({*modules, *names})

    return __getattr__, __dir__
