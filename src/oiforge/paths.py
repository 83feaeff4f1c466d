"""Where oiforge keeps things on disk by default."""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "OIFORGE_HOME"


def oiforge_home() -> Path:
    """The cache/home directory: ``$OIFORGE_HOME`` or ``~/.cache/oiforge``."""
    env = os.environ.get(HOME_ENV)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "oiforge"


def package_data(*parts: str) -> Path:
    """A file shipped inside the package (``src/oiforge/data/...``)."""
    return Path(__file__).parent.joinpath("data", *parts)
