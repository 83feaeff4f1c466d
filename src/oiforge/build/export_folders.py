"""Class folders: ``train|val|test/<class>/<key>.jpg`` (torchvision ImageFolder and friends)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

from oiforge.build.assemble import ExportSample


def _place(src: Path, dst: Path) -> None:
    """Hard-link the cached sample into place (copy across file systems)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def write_folders(
    root: Path, samples: list[ExportSample], source: Callable[[str], Path]
) -> dict[str, str]:
    """Write every sample into its class folder; return key → relative path."""
    paths = {}
    for s in samples:
        _place(source(s.key), root / s.folder_path)
        paths[s.key] = s.folder_path
    return paths
