"""A plan's Open Images photos as ``selection.parquet`` (the download stage's input)."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from oiforge.atomic import write_bytes_atomic
from oiforge.book.model import BookPlan, LetterPlan, Photo
from oiforge.contracts import SELECTION_SCHEMA, is_image_id


def plan_hash(plan: BookPlan) -> str:
    """SHA-256 (first 16 hex) of the plan's selection options: the ``spec_hash`` column."""
    return hashlib.sha256(plan.select.model_dump_json().encode()).hexdigest()[:16]


def _row(entry: LetterPlan, photo: Photo, index: int, spec_hash: str) -> dict[str, Any]:
    box = photo.box
    return {
        "image_id": photo.image_id,
        "split": photo.split or "train",
        "label_mid": entry.mid,
        "label_name": entry.class_name,
        "source": "book",
        "confidence": 1.0,
        "box_index": index if box else None,
        "x_min": box.x_min if box else None,
        "x_max": box.x_max if box else None,
        "y_min": box.y_min if box else None,
        "y_max": box.y_max if box else None,
        "original_url": photo.original_url,
        "landing_url": photo.landing_url,
        "thumbnail_url": photo.thumbnail_url,
        "license": photo.license,
        "author": photo.author,
        "author_profile_url": photo.author_profile_url,
        "title": photo.title,
        "original_size": photo.original_size,
        "original_md5": photo.original_md5,
        "rotation": photo.rotation,
        "spec_hash": spec_hash,
    }


def plan_to_selection(plan: BookPlan) -> pa.Table:
    """One row per Open Images photo of the plan (local photos need no download)."""
    h = plan_hash(plan)
    rows = [
        _row(entry, photo, 0, h)
        for entry in plan.letters
        for photo in entry.photos
        if photo.source == "openimages" and is_image_id(photo.image_id)
    ]
    return pa.Table.from_pylist(rows, schema=SELECTION_SCHEMA)


def write_selection(plan: BookPlan, path: str | Path) -> int:
    """Write ``selection.parquet`` atomically; returns the row count."""
    table = plan_to_selection(plan)
    buf = io.BytesIO()
    pq.write_table(table, buf)
    write_bytes_atomic(path, buf.getvalue())
    return int(table.num_rows)
