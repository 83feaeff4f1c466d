"""A synthetic store + selection.parquet for tests, benchmarks and demos (no network).

Photo-like JPEGs (smooth random colour fields with shapes, so perceptual hashes differ) in the
store layout, and selection rows in the contract schema with boxes and attribution.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, ImageDraw

from oiforge.atomic import atomic_open, write_bytes_atomic
from oiforge.contracts import SELECTION_SCHEMA, store_path_parts

DEFAULT_CLASSES = (("/m/01yrx", "Cat"), ("/m/0bt9lr", "Dog"), ("/m/015p6", "Bird"))


@dataclass(frozen=True)
class SyntheticSet:
    """Paths of a generated store and selection."""

    store: Path
    selection: Path
    image_ids: list[str]


def photo_like(seed: int, width: int = 640, height: int = 480, quality: int = 90) -> bytes:
    """A JPEG that looks enough like a photo (smooth colour field, shapes, a little noise)."""
    rng = np.random.default_rng(seed)
    low = rng.integers(0, 256, (4, 5, 3), dtype=np.uint8)
    im = Image.fromarray(low).resize((width, height), Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(im)
    for _ in range(6):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        x1, y1 = x0 + int(rng.integers(10, width // 2)), y0 + int(rng.integers(10, height // 2))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        draw.ellipse((x0, y0, x1, y1), fill=colour)
    noise = rng.normal(0, 6, (height, width, 3))
    arr = np.clip(np.asarray(im, dtype=np.float32) + noise, 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def image_id_for(n: int) -> str:
    """A valid, deterministic ImageID."""
    return f"{(n * 2654435761 + 0x1234) % (1 << 64):016x}"


def selection_row(image_id: str, mid: str, name: str, split: str, **extra: Any) -> dict[str, Any]:
    """A selection row with attribution filled in; ``extra`` sets boxes and the rest."""
    row: dict[str, Any] = dict.fromkeys(SELECTION_SCHEMA.names)
    row.update(
        image_id=image_id,
        split=split,
        label_mid=mid,
        label_name=name,
        source="verification",
        confidence=1.0,
        license="https://creativecommons.org/licenses/by/2.0/",
        author=f"Author {image_id[:4]}",
        author_profile_url=f"https://www.flickr.com/people/{image_id[:6]}/",
        title=f"Photo {image_id}",
        landing_url=f"https://www.flickr.com/photos/x/{image_id}",
        original_url=f"https://farm.staticflickr.com/{image_id}_o.jpg",
        spec_hash="synthetic",
    )
    row.update(extra)
    return row


def write_selection(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write rows as selection.parquet (contract schema)."""
    table = pa.Table.from_pylist(rows, schema=SELECTION_SCHEMA)
    with atomic_open(path, "wb") as fh:
        pq.write_table(table, fh)


def store_file(store: Path, image_id: str) -> Path:
    """The store path of an image."""
    folder, name = store_path_parts(image_id)
    return store / folder / name


def _boxes(rng: np.random.Generator, n: int) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        x0, y0 = rng.uniform(0, 0.6, 2)
        w, h = rng.uniform(0.2, 0.4, 2)
        out.append({"box_index": i, "x_min": x0, "x_max": x0 + w, "y_min": y0, "y_max": y0 + h})
    return out


def make_synthetic(
    root: Path,
    images: int,
    boxes_per_image: int = 0,
    classes: tuple[tuple[str, str], ...] = DEFAULT_CLASSES,
    seed: int = 0,
    size: tuple[int, int] = (640, 480),
) -> SyntheticSet:
    """Generate ``images`` store files and their selection (box mode if ``boxes_per_image``)."""
    rng = np.random.default_rng(seed)
    store, rows, ids = root / "store", [], []
    splits = ("train",) * 8 + ("validation", "test")
    for n in range(images):
        iid = image_id_for(n + seed * 1_000_003)
        ids.append(iid)
        write_bytes_atomic(store_file(store, iid), photo_like(seed * 7919 + n, *size))
        mid, name = classes[n % len(classes)]
        split = splits[n % len(splits)]
        if boxes_per_image:
            rows += [
                selection_row(iid, mid, name, split, **b) for b in _boxes(rng, boxes_per_image)
            ]
        else:
            rows.append(selection_row(iid, mid, name, split))
    write_selection(root / "selection.parquet", rows)
    return SyntheticSet(store, root / "selection.parquet", ids)
