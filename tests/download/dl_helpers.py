"""Shared helpers for the download tests: real JPEG bytes and selection tables."""

from __future__ import annotations

import base64
import hashlib
import io

import numpy as np
import pyarrow as pa
from PIL import Image

from oiforge.contracts import SELECTION_SCHEMA


def jpeg_bytes(
    width: int = 64, height: int = 48, seed: int = 0, exif_orientation: int = 1
) -> bytes:
    """A small photo-like JPEG (smooth gradient plus noise)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 // max(width, 1), y * 255 // max(height, 1), (x + y) % 256], -1)
    arr = np.clip(base + rng.integers(-20, 20, base.shape), 0, 255).astype(np.uint8)
    out = io.BytesIO()
    exif = Image.Exif()
    if exif_orientation != 1:
        exif[0x0112] = exif_orientation
    Image.fromarray(arr).save(out, "JPEG", quality=90, exif=exif.tobytes())
    return out.getvalue()


def md5_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def selection_table(rows: list[dict[str, object]]) -> pa.Table:
    """A selection.parquet-shaped table; missing columns are nulls."""
    columns = {f.name: [r.get(f.name) for r in rows] for f in SELECTION_SCHEMA}
    return pa.table(columns, schema=SELECTION_SCHEMA)
