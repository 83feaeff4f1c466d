"""Shared helpers for the download tests: real JPEG bytes and selection tables."""

from __future__ import annotations

import base64
import hashlib
import io
import json
from pathlib import Path
from typing import Any

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


def sample_images(sample_root: Path) -> list[dict[str, Any]]:
    """The per-image facts ``make_sample`` wrote (ids, URLs, MD5s, planted faults)."""
    facts = json.loads((sample_root / "sample.json").read_text(encoding="utf-8"))
    images: list[dict[str, Any]] = facts["images"]
    return images


def sample_selection(images: list[dict[str, Any]], labels_per_image: int = 2) -> pa.Table:
    """A selection table over sample images, several rows per image like the catalog's."""
    rows = []
    for img in images:
        rotation = float(img["rotation"]) if img.get("rotation") not in (None, "") else None
        for k in range(labels_per_image):
            rows.append({
                "image_id": img["image_id"], "split": img["split"], "label_mid": f"/m/{k}",
                "original_url": img["original_url"], "thumbnail_url": img["thumbnail_url"],
                "original_size": img["original_size"], "original_md5": img["original_md5"],
                "rotation": rotation,
            })  # fmt: skip
    return selection_table(rows)


def store_files(store: Path) -> list[Path]:
    """Every file under the store except the journal, stats and the temp folder itself."""
    return sorted(p for p in store.rglob("*") if p.is_file() and p.parent != store)
