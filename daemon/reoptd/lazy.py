"""Lazy public names for packages whose modules import heavy libraries (torch, Evidently, optuna).

A package lists its public names and the private module each lives in; the module is imported
the first time a name is read. That keeps the plugin declarations inside those packages cheap to
import: ``reoptd policy validate`` imports every built-in plugin module to learn its names and
parameters, and must not pay for torch or Evidently to do so. Who calls it: the ``__init__.py``
of ``models``, ``models.torch``, ``optimize``, ``optimize.compress``, ``monitor`` and ``data``.

    __getattr__, __dir__ = lazy_exports(__name__, {"TorchMLP": "._mlp", ...})
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, exports: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A module ``__getattr__`` and ``__dir__`` serving ``exports`` (name -> module, relative
    to ``package`` when it starts with a dot)."""

    def __getattr__(name: str) -> Any:
        where = exports.get(name)
        if where is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(where, package), name)
        setattr(sys.modules[package], name, value)  # read once, then a plain attribute
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *exports})

    return __getattr__, __dir__
