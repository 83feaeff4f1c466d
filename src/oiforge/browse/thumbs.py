"""Grid thumbnails: a store JPEG decoded at reduced scale (Pillow ``draft``), kept in memory.

A 1024-px store image becomes a ~400-px JPEG of ~25 KB in a few milliseconds; a page of 100
then moves ~2.5 MB instead of ~15 MB, and a repeat visit is served from the cache.
"""

from __future__ import annotations

import io
from functools import lru_cache
from pathlib import Path
from typing import Final

from PIL import Image

SIDE: Final = 400


@lru_cache(maxsize=4096)
def _thumb(path: str, version: int, side: int) -> bytes:
    del version  # part of the cache key: a re-downloaded file is a new thumbnail
    with Image.open(path) as im:
        im.draft("RGB", (side, side))
        small = im.convert("RGB")
    small.thumbnail((side, side), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    small.save(buf, "JPEG", quality=82)
    return buf.getvalue()


def thumbnail(path: Path, side: int = SIDE) -> bytes | None:
    """A JPEG of at most ``side`` px a side, or None when the file cannot be decoded."""
    try:
        return _thumb(str(path), path.stat().st_mtime_ns, side)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None
