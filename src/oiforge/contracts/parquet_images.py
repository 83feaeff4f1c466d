"""A dataset's images as Parquet bytes: ``dataset/parquet/<split>.parquet``.

Written by ``oiforge build --format parquet`` through :func:`write_parquet_split`, in the
Hugging Face layout (``datasets.load_dataset("parquet", ...)`` yields decoded images and named
labels): an ``image`` column of ``{bytes, path}`` structs, then either ``label`` (single-label,
a class index; with ``label_mid`` and ``box_index``) or ``labels``, ``negatives`` and
``machine`` (multi-label: lists of class indexes verified present, verified absent, and
machine-made), and ``key``, ``image_id``, ``sha256``; :data:`ROW_GROUP` rows per row group.
The schema's ``huggingface`` metadata names the classes. Read here by training, evaluation
and ``present`` (any file with the ``image`` and label columns reads, whoever wrote it):

- :func:`read_parquet_split` reads everything but the image bytes (one row group at a time),
  checking the columns; a truncated or corrupt file, or one without the columns, is a
  :class:`~oiforge.errors.MalformedFileError` naming the file.
- :func:`row_groups_cached`: how many row groups that cache holds, for readers that order
  their rows by row group (training's block shuffle).
- :func:`read_parquet_image` reads one row's bytes (:func:`find_parquet_image`: by key).
  Reads go by row group (Parquet's unit of compression): each process keeps the image
  columns of the row groups it read last, up to :data:`ROW_GROUP_CACHE_BYTES`, so reading
  rows in order reads each group once, and so does reading them in any order while the
  split's images fit. A row group that cannot be read raises ``ValueError`` naming the
  file: callers count its images as undecodable, as they do a corrupt JPEG.
"""

from __future__ import annotations

import bisect
import json
import logging
import os
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Final

import pyarrow as pa
import pyarrow.parquet as pq

from oiforge.atomic import atomic_open
from oiforge.contracts.dataset import Task
from oiforge.errors import MalformedFileError

log = logging.getLogger(__name__)

PARQUET_DIR: Final = "parquet"
#: Image bytes of recently read row groups kept per process (a row group holds 256 images).
ROW_GROUP_CACHE_BYTES: Final = 256 * 2**20
#: Rows per row group as build writes them.
ROW_GROUP: Final = 256
#: The multi-label list columns, in schema order.
MULTI_LABEL_LISTS: Final = ("labels", "negatives", "machine")
_IMAGE: Final = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
_STRINGS: Final = ("key", "image_id")
SINGLE_LABEL_SCHEMA: Final = pa.schema(
    [
        ("image", _IMAGE),
        ("label", pa.int64()),
        *((c, pa.string()) for c in (*_STRINGS, "label_mid")),
        ("box_index", pa.int32()),
        ("sha256", pa.string()),
    ]
)
MULTI_LABEL_SCHEMA: Final = pa.schema(
    [
        ("image", _IMAGE),
        *((c, pa.list_(pa.int64())) for c in MULTI_LABEL_LISTS),
        *((c, pa.string()) for c in (*_STRINGS, "sha256")),
    ]
)


@dataclass(frozen=True)
class ParquetImage:
    """One row to write: the image file ``source`` (its bytes go in) and its labels:
    ``label`` (+ ``label_mid``, ``box_index``) single-label, the lists multi-label."""

    key: str
    image_id: str
    sha256: str
    source: Path
    label: int = -1
    label_mid: str = ""
    box_index: int | None = None
    labels: tuple[int, ...] = ()
    negatives: tuple[int, ...] = ()
    machine: tuple[int, ...] = ()


def parquet_schema(class_folders: Sequence[str], task: Task) -> pa.Schema:
    """The file's schema, its Hugging Face features naming ``class_folders`` (by index)."""
    names = {"_type": "ClassLabel", "names": list(class_folders)}
    text = {"dtype": "string", "_type": "Value"}
    features: dict[str, object] = {"image": {"_type": "Image"}}
    if task == "multilabel":
        features |= {k: {"_type": "Sequence", "feature": names} for k in MULTI_LABEL_LISTS}
        features |= dict.fromkeys((*_STRINGS, "sha256"), text)
        schema = MULTI_LABEL_SCHEMA
    else:
        features |= {"label": names, **dict.fromkeys((*_STRINGS, "label_mid"), text)}
        features |= {"box_index": {"dtype": "int32", "_type": "Value"}, "sha256": text}
        schema = SINGLE_LABEL_SCHEMA
    return schema.with_metadata({"huggingface": json.dumps({"info": {"features": features}})})


def _row(r: ParquetImage, multi: bool) -> dict[str, Any]:
    image = {"bytes": r.source.read_bytes(), "path": f"{r.key}.jpg"}
    out: dict[str, Any] = {"image": image, "key": r.key, "image_id": r.image_id}
    if multi:
        return out | {k: list(getattr(r, k)) for k in MULTI_LABEL_LISTS} | {"sha256": r.sha256}
    return out | {"label": r.label, "label_mid": r.label_mid, "box_index": r.box_index,
                  "sha256": r.sha256}  # fmt: skip


def write_parquet_split(
    path: Path, rows: Sequence[ParquetImage], class_folders: Sequence[str], task: Task
) -> None:
    """Write ``rows`` to ``path`` atomically, :data:`ROW_GROUP` rows (and their image bytes,
    read then) at a time; the same rows give the same bytes."""
    schema = parquet_schema(class_folders, task)
    multi = task == "multilabel"
    with atomic_open(path, "wb") as fh, pq.ParquetWriter(fh, schema) as writer:
        for start in range(0, len(rows), ROW_GROUP):
            chunk = [_row(r, multi) for r in rows[start : start + ROW_GROUP]]
            writer.write_table(pa.Table.from_pylist(chunk, schema=schema))


@dataclass(frozen=True)
class ParquetSplit:
    """What one Parquet file holds, bar the image bytes; ``rows`` lists are in file order.

    ``labels`` (single-label) or ``positives``/``negatives`` (multi-label) are set, never
    both; ``class_names`` are the Hugging Face ``ClassLabel`` names of the schema, if any."""

    path: Path
    keys: list[str]
    names: list[str]  # the image's file name (``image.path``, else ``<key>.jpg``)
    labels: list[int] | None = None
    positives: list[tuple[int, ...]] | None = None
    negatives: list[tuple[int, ...]] | None = None
    class_names: tuple[str, ...] = ()
    #: each row's row group (the unit a read decompresses)
    groups: list[int] = field(default_factory=list)

    @property
    def multilabel(self) -> bool:
        return self.positives is not None


def list_parquet_files(root: Path) -> list[Path]:
    """The image Parquet files of a dataset (``root/parquet/**/*.parquet``), sorted."""
    folder = root / PARQUET_DIR
    return sorted(folder.rglob("*.parquet")) if folder.is_dir() else []


def _open(path: Path) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(path, memory_map=True)
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise MalformedFileError(str(path), f"not a readable Parquet file ({exc})") from exc


def _check_schema(path: Path, schema: pa.Schema) -> None:
    image = schema.field("image").type if "image" in schema.names else None
    if image is None or not pa.types.is_struct(image) or image.get_field_index("bytes") < 0:
        raise MalformedFileError(
            str(path), "no `image` column of {bytes, path} structs (Hugging Face Image)"
        )
    if "label" not in schema.names and "labels" not in schema.names:
        raise MalformedFileError(
            str(path), "no `label` column (single-label) or `labels` list column (multi-label)"
        )


def read_parquet_split(path: Path) -> ParquetSplit:
    """Keys, file names and labels of every row of ``path`` (named errors, see module)."""
    pf = _open(path)
    schema = pf.schema_arrow
    _check_schema(path, schema)
    multi = "label" not in schema.names
    wanted = ["labels", "negatives"] if multi else ["label"]
    wanted = [c for c in (*wanted, "key") if c in schema.names]
    if "path" in _fields(schema):
        wanted.append("image.path")
    columns: dict[str, list[Any]] = {}
    try:
        for batch in pf.iter_batches(columns=wanted):
            for name, values in _batch_columns(batch).items():
                columns.setdefault(name, []).extend(values)
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise MalformedFileError(str(path), f"unreadable rows ({exc})") from exc
    split = _split_of(path, pf.metadata.num_rows, columns, multi, _class_names(schema))
    meta = pf.metadata
    groups = [g for g in range(meta.num_row_groups) for _ in range(meta.row_group(g).num_rows)]
    return replace(split, groups=groups)


def row_groups_cached(paths: Iterable[str | Path]) -> int:
    """How many of these files' largest row groups one process keeps read (at least 1):
    reading rows in an order that mixes no more row groups at a time reads each once."""
    largest = 0
    for path in set(map(str, paths)):
        meta = _open(Path(path)).metadata
        sizes = (meta.row_group(g).total_byte_size for g in range(meta.num_row_groups))
        largest = max(largest, *sizes, 0)
    return max(1, ROW_GROUP_CACHE_BYTES // largest) if largest else 1


def _fields(schema: pa.Schema) -> list[str]:
    image = schema.field("image").type
    return [image.field(i).name for i in range(image.num_fields)]


def _batch_columns(batch: pa.RecordBatch) -> dict[str, list[Any]]:
    out = {n: batch.column(n).to_pylist() for n in batch.schema.names if n != "image"}
    if "image" in batch.schema.names:
        image = batch.column("image")
        out["image.path"] = image.field("path").to_pylist()
    return out


def _split_of(
    path: Path, rows: int, columns: dict[str, list[Any]], multi: bool, names: tuple[str, ...]
) -> ParquetSplit:
    paths = columns.get("image.path") or [None] * rows
    keys = [
        str(k) if k else Path(p).stem if p else f"{n:08d}"
        for n, (k, p) in enumerate(zip(columns.get("key") or [None] * rows, paths, strict=True))
    ]
    files = [Path(p).name if p else f"{k}.jpg" for k, p in zip(keys, paths, strict=True)]
    if not multi:
        labels = columns["label"]
        if any(not isinstance(v, int) for v in labels):
            raise MalformedFileError(str(path), "a `label` that is not a class index")
        return ParquetSplit(path, keys, files, labels=labels, class_names=names)
    pos = _index_lists(path, "labels", columns["labels"])
    neg = _index_lists(path, "negatives", columns.get("negatives") or [[]] * rows)
    return ParquetSplit(path, keys, files, positives=pos, negatives=neg, class_names=names)


def _index_lists(path: Path, column: str, values: list[Any]) -> list[tuple[int, ...]]:
    out = []
    for value in values:
        items = value or []
        if not isinstance(items, list) or not all(isinstance(i, int) for i in items):
            raise MalformedFileError(str(path), f"`{column}` is not a list of class indexes")
        out.append(tuple(sorted(set(items))))
    return out


def _class_names(schema: pa.Schema) -> tuple[str, ...]:
    """The ``ClassLabel`` names of the Hugging Face features in the schema, if any."""
    raw = (schema.metadata or {}).get(b"huggingface")
    try:
        features = json.loads(raw)["info"]["features"] if raw else {}
    except (ValueError, KeyError, TypeError):
        return ()
    for column in ("label", "labels"):
        feature = features.get(column) if isinstance(features, dict) else None
        if isinstance(feature, dict) and feature.get("_type") == "Sequence":
            feature = feature.get("feature")
        names = feature.get("names") if isinstance(feature, dict) else None
        if isinstance(names, list) and all(isinstance(n, str) for n in names):
            return tuple(names)
    return ()


class _Reader:
    """This process's open files and the image bytes of its recent row groups."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.files: dict[str, tuple[pq.ParquetFile, list[int]]] = {}
        self.groups: OrderedDict[tuple[str, int], pa.Array] = OrderedDict()
        self.held = 0

    def image(self, path: str, row: int) -> bytes:
        pf, starts = self._file(path)
        group = bisect.bisect_right(starts, row) - 1
        if group < 0 or row >= pf.metadata.num_rows:
            raise ValueError(f"{Path(path).name}: no row {row}")
        data = self._group(path, pf, group)[row - starts[group]].as_py()
        if not isinstance(data, bytes):
            raise ValueError(f"{Path(path).name}: row {row} has no image bytes")
        return data

    def _file(self, path: str) -> tuple[pq.ParquetFile, list[int]]:
        if path not in self.files:
            pf = _open(Path(path))
            meta, starts, at = pf.metadata, [], 0
            for i in range(meta.num_row_groups):
                starts.append(at)
                at += meta.row_group(i).num_rows
            self.files[path] = (pf, starts)
        return self.files[path]

    def _group(self, path: str, pf: pq.ParquetFile, group: int) -> pa.Array:
        key = (path, group)
        if key in self.groups:
            self.groups.move_to_end(key)
            return self.groups[key]
        try:
            table = pf.read_row_group(group, columns=["image.bytes"])
        except (OSError, ValueError, pa.ArrowException) as exc:
            log.warning("%s: row group %d is unreadable: %s", path, group, exc)
            raise ValueError(f"{Path(path).name}: row group {group} is unreadable") from exc
        data = table.column("image").combine_chunks().field("bytes")
        self.groups[key] = data
        self.held += data.nbytes
        while self.held > ROW_GROUP_CACHE_BYTES and len(self.groups) > 1:
            _, dropped = self.groups.popitem(last=False)
            self.held -= dropped.nbytes
        return data


_reader: _Reader | None = None


def read_parquet_image(path: str | Path, row: int) -> bytes:
    """The image bytes of row ``row`` of ``path`` (see the module for errors and caching)."""
    global _reader  # one per process: a forked DataLoader worker starts its own
    if _reader is None or _reader.pid != os.getpid():
        _reader = _Reader()
    try:
        return _reader.image(str(path), row)
    except MalformedFileError as exc:
        raise ValueError(str(exc)) from exc


def find_parquet_image(path: Path, key: str) -> bytes | None:
    """The image bytes of the row whose key is ``key``; None if no row has it."""
    stat = path.stat()
    row = _rows_by_key(str(path), stat.st_size, stat.st_mtime_ns).get(key)
    return None if row is None else read_parquet_image(path, row)


@lru_cache(maxsize=8)
def _rows_by_key(path: str, size: int, mtime_ns: int) -> dict[str, int]:  # noqa: ARG001
    """Key -> row of a file (cached per file version: ``size`` and ``mtime_ns`` say which)."""
    return {k: i for i, k in enumerate(read_parquet_split(Path(path)).keys)}
