"""Class folders: ``train|val|test/<class>/<key>.jpg`` (torchvision ImageFolder and friends)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

from oiforge.build.assemble import ExportSample


def _place(src: str, dst: str) -> None:
    """Hard-link the cached sample into place (copy across file systems)."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def write_folders(
    root: Path, samples: list[ExportSample], source: Callable[[str], Path]
) -> dict[str, str]:
    """Write every sample into its class folder; return key → relative path."""
    paths = {}
    made: set[str] = set()
    base = str(root)
    for s in samples:
        folder = f"{s.split}/{s.cls.folder}"
        if folder not in made:
            (root / folder).mkdir(parents=True, exist_ok=True)
            made.add(folder)
        _place(str(source(s.key)), f"{base}/{s.folder_path}")
        paths[s.key] = s.folder_path
    return paths
