"""Lazy package attributes (PEP 562), so importing a stage's package stays cheap.

    __getattr__ = lazy_attributes(__name__, {"oiforge.serve.app": ("create_app",), ...})

A name is imported from its module the first time it is used; the CLI's ``--help`` and the
commands that need none of them never pay for FastAPI, torch or Ray.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any


def lazy_attributes(
    package: str, names_by_module: Mapping[str, tuple[str, ...]]
) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports each name from its module on first use."""
    where = {name: module for module, names in names_by_module.items() for name in names}

    def lazy_getattr(name: str) -> Any:
        if name in where:
            return getattr(import_module(where[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return lazy_getattr
