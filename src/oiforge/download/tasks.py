"""Selection rows in, one :class:`ImageTask` per distinct image out.

selection.parquet has many rows per image (one per label or box); the downloader fetches
each ``image_id`` once. Only 16-hex ImageIDs become tasks; anything else is returned as an
invalid row so the run can record it, never as a path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from oiforge.contracts import SPLITS, is_image_id
from oiforge.errors import InvalidInputError, MalformedFileError

#: The selection columns the downloader reads; all but ``image_id`` may be absent.
TASK_COLUMNS = (
    "image_id",
    "split",
    "original_url",
    "thumbnail_url",
    "original_size",
    "original_md5",
    "rotation",
)


@dataclass(frozen=True)
class ImageTask:
    """One image to fetch, with what the metadata says about it."""

    image_id: str
    split: str | None = None
    original_url: str | None = None
    thumbnail_url: str | None = None
    original_size: int | None = None
    original_md5: str | None = None  # base64 of the binary MD5
    rotation: int = 0  # degrees counter-clockwise (0, 90, 180, 270)


@dataclass(frozen=True)
class Selection:
    """The distinct valid images of a selection, and the ids that were refused."""

    tasks: tuple[ImageTask, ...]
    invalid_ids: tuple[str, ...]


def load_selection(source: str | Path | pa.Table) -> Selection:
    """Read a selection table (or parquet path) into distinct image tasks."""
    table = source if isinstance(source, pa.Table) else _read_parquet(Path(source))
    if "image_id" not in table.column_names:
        raise MalformedFileError(str(source)[:200], "no `image_id` column")
    table = _project(table)
    table = table.group_by("image_id", use_threads=False).aggregate(
        [(c, "first") for c in TASK_COLUMNS[1:]]
    )
    table = table.rename_columns([n.removesuffix("_first") for n in table.column_names])
    tasks, invalid = [], []
    for row in table.sort_by("image_id").to_pylist():
        image_id = row["image_id"]
        if is_image_id(image_id):
            tasks.append(_task(row))
        elif image_id is not None:
            invalid.append(str(image_id))
    return Selection(tuple(tasks), tuple(invalid))


def _read_parquet(path: Path) -> pa.Table:
    if not path.is_file():
        raise InvalidInputError(f"selection file not found: {path} (run `oiforge select` first)")
    try:
        schema = pq.read_schema(path)
        columns = [c for c in TASK_COLUMNS if c in schema.names]
        return pq.read_table(path, columns=columns)
    except (pa.ArrowInvalid, OSError) as exc:
        raise MalformedFileError(str(path), f"not a readable Parquet file ({exc})") from exc


def _project(table: pa.Table) -> pa.Table:
    """Exactly TASK_COLUMNS with sane types; absent columns become nulls."""
    n = table.num_rows
    types = {
        "image_id": pa.string(),
        "split": pa.string(),
        "original_url": pa.string(),
        "thumbnail_url": pa.string(),
        "original_size": pa.int64(),
        "original_md5": pa.string(),
        "rotation": pa.float64(),
    }
    arrays = []
    for name, typ in types.items():
        if name not in table.column_names:
            arrays.append(pa.nulls(n, typ))
            continue
        try:
            arrays.append(pc.cast(table.column(name), typ))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise MalformedFileError("selection", f"column {name!r}: {exc}") from exc
    return pa.table(arrays, names=list(types))


def _task(row: dict[str, object]) -> ImageTask:
    split = row["split"] if row["split"] in SPLITS else None
    return ImageTask(
        image_id=str(row["image_id"]),
        split=split if isinstance(split, str) else None,
        original_url=_text(row["original_url"]),
        thumbnail_url=_text(row["thumbnail_url"]),
        original_size=_size(row["original_size"]),
        original_md5=_text(row["original_md5"]),
        rotation=_rotation(row["rotation"]),
    )


def _text(value: object) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _size(value: object) -> int | None:
    return value if isinstance(value, int) and value > 0 else None


def _rotation(value: object) -> int:
    if not isinstance(value, float) or math.isnan(value):
        return 0
    degrees = round(value) % 360
    return degrees if degrees in (0, 90, 180, 270) else 0
