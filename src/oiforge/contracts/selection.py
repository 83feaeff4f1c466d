"""``selection.parquet``: what ``oiforge select`` writes and download, build and book read.

One row per (image, label) in image mode, per (image, box) in box mode, in
:data:`SELECTION_SCHEMA`, stamped with the Open Images version (:data:`SELECTION_VERSION_KEY`).
Selections made with ``multi_label: multi`` or ``negatives`` add the column ``role``
(:func:`selection_schema`): ``positive``, ``negative`` (a human-verified negative of a
selected photo) or ``background`` (a photo added without the classes, "X vs not X"), and
the options that shaped their labels (:data:`SELECTION_LABELS_KEY`); without ``role`` every
row is a positive.

- writer: :class:`Selection` (``select``'s result: the table and its counts) ``.write(path)``;
  :func:`conform_selection` puts any table into the contract's columns and types first.
- readers: :func:`read_selection_table` (the rows, for the build), :func:`read_selected_images`
  (one :class:`ImageTask` per distinct valid image, for the download), :func:`open_selection`
  and :func:`count_selected_images` (streaming, for sharding), :func:`selection_version`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from oiforge.arrays import from_numpy, repeat_string, strings, to_numpy
from oiforge.atomic import atomic_open
from oiforge.errors import InvalidInputError, MalformedFileError

#: Official Open Images split names, as in the metadata files and bucket paths.
SPLITS: Final = ("train", "validation", "test")
#: Schema metadata key of ``selection.parquet``: the Open Images version it was selected from.
SELECTION_VERSION_KEY: Final = b"oiforge.open_images_version"
#: Schema metadata key (selections with ``role``): JSON of the options that shaped the labels
#: (``multi_label``, ``expand_up``, ``min_confidence``, ``negatives``, ``negatives_ratio``).
SELECTION_LABELS_KEY: Final = b"oiforge.labels"
#: ``role`` values: a positive label; a verified negative of a selected photo (human
#: Confidence 0); a photo added as a negative ("X vs not X": ``source`` is ``verification``
#: for a verified negative, ``random`` for a photo with no positive label of the classes).
ROLES: Final = ("positive", "negative", "background")
POSITIVE, NEGATIVE, BACKGROUND = ROLES
#: ``source`` of a background row drawn at random (nobody verified it: unknown, not negative).
RANDOM_SOURCE: Final = "random"

#: A photo's attribution columns, in the order they are shown and written (attribution.json).
ATTRIBUTION_COLUMNS: Final = (
    "title",
    "author",
    "author_profile_url",
    "license",
    "landing_url",
    "original_url",
)
IMAGE_ID_RE: Final = re.compile(r"^[0-9a-f]{16}$")
MID_RE: Final = re.compile(r"^/[a-z]{1,4}/[^\s,/]+$")
BOX_FLAGS: Final = ("is_occluded", "is_truncated", "is_group_of", "is_depiction", "is_inside")


def is_image_id(value: object) -> bool:
    """True for a 16-hex-char ImageID: the only thing that may ever become a path."""
    return isinstance(value, str) and IMAGE_ID_RE.match(value) is not None


def is_mid(text: str) -> bool:
    """True for a Knowledge-Graph MID like ``/m/0cmf2``, ``/g/11b7...`` or ``/oi/m_0dzf4``."""
    return MID_RE.match(text) is not None


#: selection.parquet: one row per (image, label) in image mode, per (image, box) in box mode.
SELECTION_SCHEMA: Final = pa.schema(
    [
        ("image_id", pa.string()),
        ("split", pa.string()),
        ("label_mid", pa.string()),
        ("label_name", pa.string()),
        ("source", pa.string()),
        ("confidence", pa.float32()),
        ("box_index", pa.int32()),  # n-th selected box of this image (null in image mode)
        ("x_min", pa.float32()),
        ("x_max", pa.float32()),
        ("y_min", pa.float32()),
        ("y_max", pa.float32()),
        ("is_occluded", pa.int8()),
        ("is_truncated", pa.int8()),
        ("is_group_of", pa.int8()),
        ("is_depiction", pa.int8()),
        ("is_inside", pa.int8()),
        ("original_url", pa.string()),
        ("landing_url", pa.string()),
        ("thumbnail_url", pa.string()),
        ("license", pa.string()),
        ("author", pa.string()),
        ("author_profile_url", pa.string()),
        ("title", pa.string()),
        ("original_size", pa.int64()),
        ("original_md5", pa.string()),  # base64 of the binary MD5, as in the metadata
        ("rotation", pa.float32()),
        ("spec_hash", pa.string()),
    ]
)

ROLE_FIELD: Final = pa.field("role", pa.string())


def selection_schema(with_roles: bool = False) -> pa.Schema:
    """:data:`SELECTION_SCHEMA`, with ``role`` after ``confidence`` when ``with_roles``."""
    if not with_roles:
        return SELECTION_SCHEMA
    return SELECTION_SCHEMA.insert(SELECTION_SCHEMA.get_field_index("confidence") + 1, ROLE_FIELD)


#: Columns with few distinct values (the catalog's selection copies share them).
FEW_VALUES: Final = ("label_mid", "source", "confidence", *BOX_FLAGS, "license", "rotation")
#: Dictionary pages for those, the rest (URLs, titles, ...) plain: a 625,000-row selection
#: writes in 0.44 s instead of 0.55 s.
_DICTIONARY: Final = [*FEW_VALUES, "split", "label_name", "spec_hash", "role"]
#: min/max statistics only for what a reader filters by (on URLs and titles they cost 0.04 s
#: of the 0.41 s write and prune nothing).
_STATISTICS: Final = ["label_mid", "label_name", "split", "image_id"]
#: values the writer encodes between its page-size checks (1,024 by default): a 3M-row
#: selection writes ~4% faster, its pages a little over the 1 MB limit at times.
_WRITE_BATCH: Final = 1 << 15
#: bytes the writer's pages collect in before they go to the Python file object: each write
#: to it takes the GIL, which ``select_into``'s thread gathering the next slice holds at
#: times (a page at a time, the writer of 3M rows waited ~0.2 s of its ~1.9 s for it).
_SINK_BUFFER: Final = 1 << 23


def conform_selection(
    table: pa.Table,
    spec_hash: str,
    version: str,
    labels: Mapping[str, object] | None = None,
    encoded: bool = False,
) -> pa.Table:
    """``table`` (every contract column but ``spec_hash``) in the contract's columns and types,
    stamped with ``spec_hash`` and the Open Images version (for the lock).

    ``labels`` (the options that shaped the labels) makes it a selection with ``role``: rows
    without one are positives. ``encoded``: the text columns of few values as dictionary
    arrays (kept as given, or encoded here), for :func:`selection_writer` only (see there).
    """
    schema = selection_schema(with_roles=labels is not None)
    stamp = _one_value if encoded else repeat_string
    table = table.append_column("spec_hash", stamp(spec_hash, table.num_rows))
    if labels is not None:
        role = table.column("role") if "role" in table.column_names else None
        filled = repeat_string(POSITIVE, table.num_rows)
        # coalesce of two arrays: ``fill_null`` with a Python str makes a scalar, which imports
        # pandas (0.2 s of a select with roles)
        table = _put(table, "role", filled if role is None else pc.coalesce(role, filled))
    meta = {SELECTION_VERSION_KEY: version.encode()}
    if labels is not None:
        meta[SELECTION_LABELS_KEY] = json.dumps(dict(labels), sort_keys=True).encode()
    target = _encoded(schema) if encoded else schema
    return table.select(schema.names).cast(target).replace_schema_metadata(meta)


def _one_value(value: str, n: int) -> pa.DictionaryArray:
    """``value`` ``n`` times, as a dictionary array of one value (an Arrow dictionary: a
    Python list would import pandas)."""
    return pa.DictionaryArray.from_arrays(from_numpy(np.zeros(n, np.int32)), strings([value]))


def _encoded(schema: pa.Schema) -> pa.Schema:
    """``schema`` with the text columns of ``_DICTIONARY`` as dictionaries."""
    for i, f in enumerate(schema):
        if f.name in _DICTIONARY and f.type == pa.string():
            schema = schema.set(i, f.with_type(pa.dictionary(pa.int32(), pa.string())))
    return schema


def _put(table: pa.Table, name: str, col: pa.Array | pa.ChunkedArray) -> pa.Table:
    idx = table.schema.get_field_index(name)
    return table.set_column(idx, name, col) if idx >= 0 else table.append_column(name, col)


def write_selection(table: pa.Table, path: str | Path) -> Path:
    """Write ``selection.parquet`` atomically (zstd; see ``_DICTIONARY``); returns the path."""
    with selection_writer(path, table.schema) as writer:
        writer.write_table(table)
    return Path(path)


@contextmanager
def selection_writer(path: str | Path, schema: pa.Schema) -> Iterator[pq.ParquetWriter]:
    """A Parquet writer of ``selection.parquet`` (``schema``: a conformed table's, with its
    metadata) for writing a selection a slice at a time; the file appears, atomically, when
    the block ends without an exception.

    It stores no Arrow schema, so that it takes the columns of few values as plain strings
    or as dictionary arrays (``conform_selection(encoded=True)``: their pages are written
    from the codes, without hashing every value) and either way they read back as
    :data:`SELECTION_SCHEMA`'s plain strings (the Parquet types give the same Arrow types);
    the schema's metadata is stored as the file's key-value metadata.
    """
    with atomic_open(Path(path), "wb") as fh:
        sink = pa.BufferedOutputStream(pa.PythonFile(fh, mode="w"), _SINK_BUFFER)
        try:
            with pq.ParquetWriter(
                sink,
                schema,
                compression="zstd",
                use_dictionary=[c for c in _DICTIONARY if c in schema.names],
                write_statistics=[c for c in _STATISTICS if c in schema.names],
                store_schema=False,
                write_batch_size=_WRITE_BATCH,
            ) as writer:
                if schema.metadata:
                    writer.add_key_value_metadata(dict(schema.metadata))
                yield writer
        except BaseException:
            with suppress(Exception):  # never in place of the error that matters
                sink.detach()
            raise
        sink.detach()  # flushed into ``fh``, which ``atomic_open`` syncs and closes


@dataclass
class Selection:
    """The selected rows (``table`` in ``SELECTION_SCHEMA``) and per-class/per-split counts.

    Counts are of positive and background rows (a ``role`` column's negatives are counted
    apart: :attr:`negative_image_counts`).
    """

    table: pa.Table
    spec_hash: str
    classes: list[str] = field(default_factory=list)  # output class names, in spec order

    @property
    def counts(self) -> dict[str, dict[str, int]]:
        """``{class name: {split: rows}}`` for every selected class (zeros included)."""
        return self._per_class_split(distinct_images=False)

    @property
    def image_counts(self) -> dict[str, dict[str, int]]:
        """``{class name: {split: distinct images}}``."""
        return self._per_class_split(distinct_images=True)

    @property
    def has_roles(self) -> bool:
        return "role" in self.table.column_names

    @property
    def negative_image_counts(self) -> dict[str, dict[str, int]]:
        """``{class name: {split: images with a verified negative}}`` (selections with roles)."""
        return self._per_class_split(distinct_images=True, role=NEGATIVE)

    def _per_class_split(
        self, distinct_images: bool, role: str | None = None
    ) -> dict[str, dict[str, int]]:
        """Rows (or distinct ``image_id``) per (class, split), with hash kernels and NumPy:
        ``Table.group_by`` runs on Acero, whose import pulls in pyarrow.dataset and pandas
        (~0.25 s of a CLI select that needs neither)."""
        out = {c: dict.fromkeys(SPLITS, 0) for c in self.classes}
        table = self.table
        if self.has_roles:
            wanted = pc.fill_null(pc.equal(table.column("role"), NEGATIVE), False)
            table = table.filter(wanted if role == NEGATIVE else pc.invert(wanted))
        if not table.num_rows:
            return out
        names, name_idx = _codes(table.column("label_name"))
        splits, split_idx = _codes(table.column("split"))
        group = name_idx * len(splits) + split_idx
        if distinct_images:
            group = _first_of_each_image(group, table.column("image_id"))
        n = np.bincount(group, minlength=len(names) * len(splits))
        for g in np.flatnonzero(n).tolist():
            name, split = names[g // len(splits)], splits[g % len(splits)]
            out.setdefault(name, dict.fromkeys(SPLITS, 0))[split] = int(n[g])
        return out

    def write(self, path: str | Path) -> Path:
        """Write ``selection.parquet`` atomically; returns the path."""
        return write_selection(self.table, path)


@dataclass(frozen=True)
class WrittenSelection:
    """A selection once written: its file, row count and the counts of :class:`Selection`
    (what ``oiforge select`` prints; ``catalog.select_into`` writes without holding the rows)."""

    path: Path
    num_rows: int
    spec_hash: str
    counts: dict[str, dict[str, int]]
    image_counts: dict[str, dict[str, int]]
    has_roles: bool
    negative_image_counts: dict[str, dict[str, int]]

    @classmethod
    def of(cls, selection: Selection, path: str | Path) -> WrittenSelection:
        """The counts of ``selection`` (its table needs only ``label_name``, ``split``,
        ``image_id`` and ``role``) written to ``path``."""
        roles = selection.has_roles
        return cls(
            Path(path),
            selection.table.num_rows,
            selection.spec_hash,
            selection.counts,
            selection.image_counts,
            roles,
            selection.negative_image_counts if roles else {},
        )


def _codes(column: pa.ChunkedArray) -> tuple[list[str], np.ndarray]:
    """A string column's distinct values and each row's index into them (int64)."""
    encoded = pc.dictionary_encode(column.combine_chunks())
    return encoded.dictionary.to_pylist(), to_numpy(encoded.indices).astype(np.int64)


def _first_of_each_image(group: np.ndarray, image_id: pa.ChunkedArray) -> np.ndarray:
    """``group`` at one row per distinct (group, image).

    A selection comes in output order (each group one run, images ascending within it): then
    a row starts an image where the group or the ImageID changes (no hashing of 16-byte
    strings: 0.2 s for 625,000 rows). Any other order falls back to hashing.
    """
    ids = image_id.combine_chunks()
    n = len(ids)
    same_group = group[1:] == group[:-1]
    earlier, later = ids.slice(0, n - 1), ids.slice(1)
    runs = 1 + int(np.count_nonzero(~same_group))
    if runs == np.count_nonzero(np.bincount(group)) and not np.any(
        same_group & to_numpy(pc.less(later, earlier))
    ):
        starts = np.r_[True, ~same_group | to_numpy(pc.not_equal(later, earlier))]
        return group[starts]
    _, image_idx = _codes(image_id)
    width = int(image_idx.max()) + 1
    return to_numpy(pc.unique(from_numpy(group * width + image_idx))) // width


# --- readers -------------------------------------------------------------------------------


def open_selection(path: str | Path) -> pq.ParquetFile:
    """The selection as a Parquet file, with a named error for a missing or broken one."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"selection file not found: {path} (run `oiforge select` first)")
    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise MalformedFileError(str(path), f"not a readable Parquet file ({exc})") from exc
    if "image_id" not in pf.schema_arrow.names:
        raise MalformedFileError(str(path), "no `image_id` column")
    return pf


def read_selection_table(
    path: str | Path, columns: Sequence[str] | None = None, required: Sequence[str] = ()
) -> pa.Table:
    """The contract's columns (or ``columns`` of them) that the file has; ``required`` ones
    must be there."""
    pf = open_selection(path)
    wanted = selection_schema(with_roles=True).names if columns is None else columns
    try:
        table = pf.read(columns=[c for c in wanted if c in pf.schema_arrow.names])
    except (pa.ArrowException, OSError) as exc:
        raise MalformedFileError(str(path), f"not a readable Parquet file ({exc})") from exc
    missing = [c for c in required if c not in table.column_names]
    if missing:
        raise MalformedFileError(str(path), f"missing columns {missing} (see SELECTION_SCHEMA)")
    return table


def selection_version(path: str | Path) -> str | None:
    """The Open Images version ``oiforge select`` stamped on a selection file, if any."""
    try:
        meta = pq.read_schema(path).metadata or {}
    except (pa.ArrowException, OSError):  # the readers name the problem
        return None
    value = meta.get(SELECTION_VERSION_KEY)
    return value.decode() if value else None


def selection_labels(path: str | Path) -> dict[str, object] | None:
    """The options that shaped a selection's labels (:data:`SELECTION_LABELS_KEY`), or None
    for a selection without ``role``."""
    try:
        meta = pq.read_schema(path).metadata or {}
    except (pa.ArrowException, OSError):  # the readers name the problem
        return None
    value = meta.get(SELECTION_LABELS_KEY)
    if not value:
        return None
    try:
        doc = json.loads(value)
    except ValueError as exc:
        raise MalformedFileError(str(path), f"unreadable {SELECTION_LABELS_KEY.decode()}") from exc
    return doc if isinstance(doc, dict) else None


def count_selected_images(path: str | Path) -> int:
    """Distinct ImageIDs in a selection (reads that one column)."""
    column = image_ids_as_text(open_selection(path).read(columns=["image_id"]).column("image_id"))
    return int(pc.count_distinct(column).as_py())


def image_ids_as_text(values: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """An ``image_id`` column as strings (a named error when it is not text)."""
    if values.type == pa.string():
        return values
    try:
        return values.cast(pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise MalformedFileError("selection", f"`image_id` is not text ({values.type})") from exc


#: The columns the downloader reads, with the types it reads them as; all but ``image_id``
#: may be absent.
_TASK_TYPES: Final = {
    "image_id": pa.string(),
    "split": pa.string(),
    "original_url": pa.string(),
    "thumbnail_url": pa.string(),
    "original_size": pa.int64(),
    "original_md5": pa.string(),
    "rotation": pa.float64(),
}


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
class SelectedImages:
    """The distinct valid images of a selection, and the ids that were refused."""

    tasks: tuple[ImageTask, ...]
    invalid_ids: tuple[str, ...]


def read_selected_images(source: str | Path | pa.Table) -> SelectedImages:
    """One :class:`ImageTask` per distinct ImageID (a selection has a row per label or box),
    sorted; anything but a 16-hex ImageID is returned as an invalid id, never as a task."""
    if isinstance(source, pa.Table):
        table = source
    else:
        table = read_selection_table(source, columns=list(_TASK_TYPES))
    if "image_id" not in table.column_names:
        raise MalformedFileError(str(source)[:200], "no `image_id` column")
    tasks, invalid = [], []
    for row in first_per_image(_project(table)).to_pylist():
        image_id = row["image_id"]
        if is_image_id(image_id):
            tasks.append(_task(row))
        elif image_id is not None:
            invalid.append(str(image_id))
    return SelectedImages(tuple(tasks), tuple(invalid))


def first_per_image(table: pa.Table) -> pa.Table:
    """One row per non-null ``image_id``, sorted by it; each other column holds the first
    non-null value of that image's rows (what Arrow's ``group_by(...).aggregate("first")``
    gives, without loading Acero, whose import pulls in pandas: a third of a second)."""
    table = table.filter(pc.is_valid(table.column("image_id")))
    table = table.take(pc.sort_indices(table, [("image_id", "ascending")]))  # stable
    ids = table.column("image_id").combine_chunks()
    starts = np.ones(len(ids), dtype=bool)
    if len(ids) > 1:
        starts[1:] = ~to_numpy(pc.equal(ids.slice(1), ids.slice(0, len(ids) - 1)))
    if starts.all():  # the common case of a deduplicated selection: nothing to merge
        return table
    group = np.cumsum(starts) - 1
    columns = [table.column("image_id").filter(pa.array(starts))]
    for name in table.column_names[1:]:
        columns.append(table.column(name).take(_first_valid(table.column(name), group)))
    return pa.table(columns, names=table.column_names)


def _first_valid(column: pa.ChunkedArray, group: np.ndarray) -> pa.Array:
    """Per group (sorted group numbers of the rows): the row of its first non-null value,
    null where the group has none."""
    rows = np.flatnonzero(to_numpy(pc.is_valid(column)))
    in_group = group[rows]
    first = np.ones(len(rows), dtype=bool)
    first[1:] = in_group[1:] != in_group[:-1]
    take = np.zeros(int(group[-1]) + 1, dtype=np.int64)
    has = np.zeros(len(take), dtype=bool)
    take[in_group[first]], has[in_group[first]] = rows[first], True
    return pa.array(take, mask=~has)


def _project(table: pa.Table) -> pa.Table:
    """Exactly the task columns with sane types; absent columns become nulls."""
    arrays = []
    for name, typ in _TASK_TYPES.items():
        if name not in table.column_names:
            arrays.append(pa.nulls(table.num_rows, typ))
            continue
        try:
            arrays.append(pc.cast(table.column(name), typ))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise MalformedFileError("selection", f"column {name!r}: {exc}") from exc
    return pa.table(arrays, names=list(_TASK_TYPES))


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
    if not isinstance(value, float) or not math.isfinite(value):
        return 0
    degrees = round(value) % 360
    return degrees if degrees in (0, 90, 180, 270) else 0
