"""Comparing two stores: the journal's lasting columns and every image file's hash."""

from __future__ import annotations

import hashlib
from pathlib import Path

from oiforge.download import read_journal

STABLE_COLUMNS = ("image_id", "status", "source", "sha256", "width", "height", "bytes")


def store_digest(store: Path) -> tuple[list[dict[str, object]], list[tuple[str, str]]]:
    """Journal rows (without timestamps/attempts) and (path, sha256) of every stored image."""
    rows = read_journal(store).select(list(STABLE_COLUMNS)).to_pylist()
    files = sorted(
        (p.relative_to(store).as_posix(), hashlib.sha256(p.read_bytes()).hexdigest())
        for p in store.glob("??/*.jpg")
    )
    return rows, files
