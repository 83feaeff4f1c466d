"""Selection copies: per label/box file, the rows ``select`` can use, with image metadata attached.

Why: a selection's rows name random ImageIDs, so joining the image list at query time reads
all of it (row-group pruning cannot help) and materialises wide rows; that dominated ``select``.
A selection copy is built once per (label file, image list) pair, beside the Parquet copy:

- only rows with a valid ImageID (16 lowercase hex characters; nothing else can become a file
  name), for human labels the verified positives and negatives (``confidence`` 1 and 0), for
  boxes only valid boxes, coordinates clamped (``rowrules``);
- ``image_key``: the ImageID as an unsigned 64-bit integer (same order as the hex text), so
  joins, windows and sorts work on integers;
- the image columns of the image list of the same split (NULL when it is not ingested);
- sorted by ``label_mid``, group-of boxes last (human labels: positives first),
  ``image_key``, then an image's boxes in ``rowrules.box_order``; a row group starts at a new
  class (or a class's negatives) once it holds ``_MIN_GROUP_ROWS``, so a class query decodes
  its classes' rows and at most a group of small neighbours (at full size the human labels
  have 20,931 classes: a group per class made 42,003 groups and a 44 MB footer every select
  parsed), and every output column only for the
  rows it finally keeps (by row number: ``attach``), in ascending runs (one per class for the
  default flags);
- two files in the same row order and groups: the *key rows* (``.selkeys.parquet``: class,
  ``image_key`` and the label columns the query filters by; what DuckDB reads and prunes) and
  the *fetched rows* (``.selrows.arrow``: label, box and image columns, Arrow IPC record
  batches of at most ``_FETCH_ROWS``; what ``attach`` gathers). One wide Parquet file had a
  2.9 MB footer at full size that every select parsed twice (DuckDB, pyarrow), and decoding
  its wide columns took ~3x as long as reading the same rows from IPC;
- LZ4 (the fetched rows at full size: ~4.5 GB, as zstd ~2.6 GB but read ~1.5x slower).

An index (``.sel.json``, written last) records a fingerprint of the inputs (Parquet copy and
image lists: name, size, mtime), the size and mtime of both files, each batch's first row and
each key row group's rows and first and last class (``KeyGroups``; added to an index of an
older build on first use): a copy is rebuilt when an input changed, and a build killed before
its index was written is never taken as good.

A select reads the key rows of its classes' row groups (found by the index, not by DuckDB's
check of the footer's statistics of 2,641 groups at full size) into memory when they are few
(``_MEMORY_ROWS``), and DuckDB queries them there: at full size the Parquet scan of a typical
50-class query took ~0.15 s (the footer parsed at the view's bind, every group's statistics
checked, 55 groups decoded, twice in multi-label mode), pyarrow reads the same groups in
~0.05 s.

Machine labels get a copy of key rows only (``.selkeys.parquet`` and ``.sel.json``, no fetched
rows: their image columns would cost tens of GB at ~165M rows; ``select`` looks them up in the
keyed image list, ``ingest.own_images``): ``label_mid``, ``image_key``, ``source`` and
``confidence``, in ``(label_mid, image_key, confidence DESC, source)`` order, groups by class
as above. A query reads its classes' few million integer rows instead of parsing text
ImageIDs (at full size 3.6M rows of a 50-class query: ~0.25 of 0.34 CPU-s of its key
query), and an image's machine labels of a class sit in the order ``select`` keeps one of
them by (highest confidence, then ``label_mid``, ``source``): the row's position (``rank``)
replaces the two strings in that choice. It has its own version (``MACHINE_VERSION``), and
no image list in its fingerprint.
"""

from __future__ import annotations

import bisect
import contextlib
import itertools
import json
import logging
import os
import threading
from collections.abc import Collection, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from oiforge.arrays import from_numpy, hex16, run_starts, to_numpy
from oiforge.atomic import atomic_open, write_text_atomic
from oiforge.catalog.ingest import COLUMNS, IMAGE_COLS, bound_memory, files_change
from oiforge.catalog.rowrules import (
    BOX_COLS,
    COORDS,
    box_keys,
    clamped,
    grouped,
    valid_box,
    valid_id,
)
from oiforge.contracts.selection import BOX_FLAGS, FEW_VALUES, SPLITS

if TYPE_CHECKING:
    from oiforge.catalog.catalog import Catalog
    from oiforge.catalog.ingest import Ingested

log = logging.getLogger(__name__)

COPY_VERSION: Final = 12
#: the layout of a machine-label copy (key rows only); its own, so that a change of one
#: rebuilds neither the other nor the human-label and box copies
MACHINE_VERSION: Final = 1
#: the kinds whose copies hold fetched rows too (``attach`` gathers their columns)
COPY_KINDS: Final = ("boxes", "human_labels")
MACHINE: Final = "machine_labels"
#: every kind with a selection copy (a ``sel_<kind>`` view while a select runs)
KEY_KINDS: Final = (*COPY_KINDS, MACHINE)
#: rows per file, so that ``(file index << REF_BITS) + row`` is a unique row reference.
REF_BITS: Final = 40
#: rows per row group at most; a gather decodes whole groups.
_GROUP_ROWS: Final = 65_536
#: a class change starts a new group only past this many rows (small classes share a group).
_MIN_GROUP_ROWS: Final = 16_384
#: rows per record batch of the fetched rows at most: a gather decompresses whole batches (a
#: typical class has a few thousand rows), and an IPC batch costs no footer, unlike a row group
#: (smaller batches read whole cost more: 2,048 rows 3x, 8,192 rows 1.2x as long as 65,536).
_FETCH_ROWS: Final = 8_192
_BATCH_ROWS: Final = 1 << 17
#: columns with few distinct values by nature get dictionary pages (the rest decode faster
#: plain); statistics only for what a query prunes row groups by (every select parses the
#: footer: 3.0 MB at full size with all statistics and 20,480-row groups, 1.2 MB now).
_PRUNED_BY: Final = ("label_mid", "image_key", "confidence", *BOX_FLAGS)
_ARROW: Final = {
    "VARCHAR": pa.string(),
    "BIGINT": pa.int64(),
    "FLOAT": pa.float32(),
    "TINYINT": pa.int8(),
}
_TYPES: Final = {ours: typ for kind in ("boxes", "images") for _, ours, typ in COLUMNS[kind]}
_LABEL_COLS: Final = ("source", "confidence")
#: a gather returns slices of what it read (no copy) up to this many slices, or when they
#: average at least ``_MIN_SLICE`` rows; otherwise a compact take.
_MAX_SLICES: Final = 256
_MIN_SLICE: Final = 512
#: a select reads its classes' key row groups into memory up to this many rows (a typical
#: 50-class query at full size: ~1M); past it (the most frequent classes) DuckDB streams the
#: Parquet copy, pruning groups by their statistics, in bounded memory.
_MEMORY_ROWS: Final = 1 << 22


@dataclass(frozen=True)
class KeyGroups:
    """The row groups of a copy's key rows: each one's rows, first and last class (the rows
    are sorted by class, so a class's rows lie in a run of groups found by bisection)."""

    rows: tuple[int, ...]
    first: tuple[str, ...]
    last: tuple[str, ...]

    def holding(self, mids: Collection[str]) -> list[int]:
        """The groups that hold rows of any of ``mids``, ascending."""
        out: set[int] = set()
        for mid in mids:
            start = bisect.bisect_left(self.last, mid)
            out.update(range(start, bisect.bisect_right(self.first, mid)))
        return sorted(out)

    def to_json(self) -> dict[str, list[Any]]:
        return {"rows": list(self.rows), "first": list(self.first), "last": list(self.last)}

    @staticmethod
    def from_json(entry: Any) -> KeyGroups | None:
        """The groups an index records (None for an index without them, or with a group
        whose class is not known: a copy of rows without a class uses no group index)."""
        if not isinstance(entry, dict):
            return None
        rows, first, last = (entry.get(k) for k in ("rows", "first", "last"))
        if not (isinstance(rows, list) and isinstance(first, list) and isinstance(last, list)):
            return None
        if not len(rows) == len(first) == len(last):
            return None
        if not all(isinstance(m, str) for m in [*first, *last]):
            return None
        return KeyGroups(tuple(int(n) for n in rows), tuple(first), tuple(last))


@dataclass(frozen=True)
class SelectionCopy:
    """The selection copy of one label/box file: its key rows (Parquet, read by DuckDB) and
    the same rows' other columns (Arrow IPC, gathered by ``attach``), in the same order."""

    kind: str
    split: str
    keys: Path
    #: the fetched rows (None for a machine-label copy: key rows only)
    rows: Path | None
    #: the first row of each record batch of ``rows`` (read from the file when None)
    starts: tuple[int, ...] | None = field(default=None, compare=False, repr=False)
    #: the row groups of ``keys`` (None: unknown; every select then scans ``keys`` in DuckDB)
    groups: KeyGroups | None = field(default=None, compare=False, repr=False)

    def fetched(self) -> Path:
        """The fetched rows' file (a ``ref`` never names a row of a machine-label copy)."""
        if self.rows is None:
            raise ValueError(f"the machine-label copy {self.keys} has no fetched rows")
        return self.rows

    def batch_starts(self) -> np.ndarray:
        if self.starts is not None:
            return np.asarray(self.starts, np.int64)
        with pa.memory_map(str(self.fetched())) as source:
            reader = ipc.open_file(source)
            sizes = [reader.get_batch(i).num_rows for i in range(reader.num_record_batches)]
        return np.concatenate(([0], np.cumsum(sizes)[:-1])).astype(np.int64)


def view_name(kind: str) -> str:
    """The temp view over the selection copies of ``kind`` (see :func:`copy_views`)."""
    return f"sel_{kind}"


def ensure_copies(
    cat: Catalog, kinds: tuple[str, ...], splits: tuple[str, ...] = SPLITS
) -> list[SelectionCopy]:
    """The selection copies of the ingested files of ``kinds`` x ``splits`` (built when stale)."""
    out = []
    for done in sorted(cat.ingested.values(), key=lambda i: i.relpath):
        if done.kind in kinds and done.kind in KEY_KINDS and done.split in splits:
            images = sorted(
                i.parquet
                for i in cat.ingested.values()
                if i.kind == "images" and i.split == done.split and done.kind != MACHINE
            )
            out.append(_ensure(cat.file_connection(), done, images))  # files by path
    return out


@contextlib.contextmanager
def copy_views(
    con: duckdb.DuckDBPyConnection, copies: list[SelectionCopy], mids: Collection[str]
) -> Iterator[None]:
    """Temp views ``sel_<kind>`` while the block runs: the copies' key rows plus ``split``,
    ``split_rank``, ``ref`` and ``rank`` (see :func:`_part_sql`), for a query that reads the
    rows of ``mids`` only (every class it filters by: ``label_mid IN ...`` or a join with such
    a list).

    A copy whose groups of ``mids`` hold at most ``_MEMORY_ROWS`` rows contributes just those
    groups, read into memory (a superset of the rows the query reads); otherwise its Parquet
    file. The views and the rows read are dropped on exit.
    """
    held: list[str] = []
    try:
        for kind in KEY_KINDS:
            parts = []
            for n, c in enumerate(copies):
                if c.kind == kind and c.split in SPLITS:
                    parts.append(_part_sql(n, c, _key_source(con, n, c, mids, held)))
            body = " UNION ALL ".join(parts) if parts else _empty_sql(kind)
            con.execute(f"CREATE OR REPLACE TEMP VIEW {view_name(kind)} AS {body}")
        yield
    finally:  # never in place of the error that matters (a failed read leaves its result
        # open, and DuckDB may refuse any statement until it is gone)
        with contextlib.suppress(duckdb.Error):
            for kind in KEY_KINDS:
                con.execute(f"DROP VIEW IF EXISTS {view_name(kind)}")
            for name in held:
                con.unregister(name)


def _key_source(
    con: duckdb.DuckDBPyConnection,
    n: int,
    c: SelectionCopy,
    mids: Collection[str],
    held: list[str],
) -> str:
    """What the view of copy ``n`` reads: its key rows of ``mids``' groups in memory (a name
    registered on ``con``, added to ``held``), or its Parquet file."""
    if c.groups is not None:
        groups = c.groups.holding(mids)
        if sum(c.groups.rows[g] for g in groups) <= _MEMORY_ROWS:
            table = _read_groups(c.keys, c.groups, groups)
            if table is not None:
                name = f"sel_keys_{n}"
                con.register(name, table)
                held.append(name)
                return name
    return f"read_parquet({_q(str(c.keys))}, file_row_number = true)"


def _read_groups(keys: Path, index: KeyGroups, groups: list[int]) -> pa.Table | None:
    """Row groups ``groups`` of ``keys`` with their ``file_row_number`` (as DuckDB names it);
    None when the file's groups are not the index's."""
    # the class and source as dictionaries, as stored: half the decoding of plain strings
    with pq.ParquetFile(keys, read_dictionary=["label_mid", "source"]) as source:
        if source.num_row_groups != len(index.rows):
            log.warning("the group index of %s does not match it; scanning it whole", keys)
            return None
        table = source.read_row_groups(groups) if groups else source.schema_arrow.empty_table()
    starts = np.r_[0, np.cumsum(index.rows, dtype=np.int64)]
    numbers = [np.arange(starts[g], starts[g + 1], dtype=np.int64) for g in groups]
    row = np.concatenate(numbers) if numbers else np.zeros(0, np.int64)
    return table.append_column("file_row_number", from_numpy(row))


#: the image columns of a table's rows without a ``ref``: a table of ``IMAGE_COLS`` and per row
#: its row there (-1: none, or the row has a ``ref``), see ``ingest.OwnImages``
Own = tuple[pa.Table, np.ndarray]


def attach(
    table: pa.Table, copies: list[SelectionCopy], box_mode: bool, own: Own | None = None
) -> pa.Table:
    """``table`` (rows with ``image_key`` and ``ref``) with ``image_id`` and the label, box and
    image columns from the copies.

    Rows without a ``ref`` (machine labels) keep the label values ``table`` has for them, and
    take their image columns from ``own`` (null where neither has them). Box columns are null
    in image mode.
    """
    ref = table.column("ref").cast(pa.int64())
    has_ref = to_numpy(pc.is_valid(ref))
    cols = [*_LABEL_COLS, *(BOX_COLS if box_mode else ()), *IMAGE_COLS]
    fetched = _gather(to_numpy(ref, null_as=0), has_ref, copies, cols, own)
    mask = from_numpy(has_ref)
    for name in cols:
        col = fetched.column(name)
        if name in table.column_names and not has_ref.all():
            col = pc.if_else(mask, col, table.column(name).cast(col.type))
        table = _put(table, name, col)
    if not box_mode:
        for name in BOX_COLS:
            table = _put(table, name, pa.nulls(table.num_rows, _ARROW[_TYPES[name]]))
    table = _put(table, "image_id", hex16(to_numpy(table.column("image_key"))))
    return table.drop_columns(["ref"])


def _put(table: pa.Table, name: str, col: pa.Array | pa.ChunkedArray) -> pa.Table:
    idx = table.schema.get_field_index(name)
    return table.set_column(idx, name, col) if idx >= 0 else table.append_column(name, col)


def _gather(
    refs: np.ndarray,
    has_ref: np.ndarray,
    copies: list[SelectionCopy],
    cols: list[str],
    own: Own | None = None,
) -> pa.Table:
    """The copies' ``cols`` at ``refs`` (a row per ref; where ``has_ref`` is false, ``own``'s
    image columns, else null).

    The distinct refs are read in file order (a row group per task), then put in ``refs``'
    order. A selection's refs are mostly ascending runs (a class's rows in a copy are sorted
    as the output is), so the result is usually a few slices of what was read, not a copy.
    With ``own`` rows: this slice's rows of ``own`` first (a take from its one-chunk
    table), then one take per column from the rows read followed by those (chunks side by
    side), instead of a merge by mask. Not a take over the whole of ``own`` chained to the
    rows read: Arrow copies a string column's chunks together before taking from them, which
    copied all of ``own`` (452k rows of image columns at full size) once per slice.
    """
    if not has_ref.any() and own is None:
        return pa.table({c: pa.nulls(len(refs), _ARROW[_TYPES[c]]) for c in cols})
    wanted = refs[has_ref]
    order = np.argsort(wanted, kind="stable")  # timsort: near-linear on ascending runs
    ascending = wanted[order]
    first = run_starts(ascending)
    distinct = ascending[first]
    where = np.empty(len(wanted), np.int64)
    where[order] = np.cumsum(first) - 1  # each wanted row's place among the distinct refs
    threads = os.cpu_count() or 1  # Arrow's reads and takes release the GIL
    with ThreadPoolExecutor(max_workers=threads) as pool:
        found = (
            _read_distinct(distinct, copies, cols, pool)
            if len(distinct)
            else pa.table({c: pa.array([], _ARROW[_TYPES[c]]) for c in cols})
        )
        if has_ref.all():
            starts = np.r_[0, np.flatnonzero(np.diff(where) != 1) + 1]
            if len(starts) <= max(_MAX_SLICES, len(where) // _MIN_SLICE):
                ends = np.r_[starts[1:], len(where)]
                slices = zip(where[starts].tolist(), (ends - starts).tolist(), strict=True)
                return pa.concat_tables([found.slice(a, n) for a, n in slices])
        index = np.zeros(len(refs), np.int64)
        index[has_ref] = where
        valid = has_ref
        if own is not None:
            extra, at = own
            mine = ~has_ref & (at >= 0)
            part = extra.take(from_numpy(at[mine]))
            index[mine] = found.num_rows + np.arange(int(mine.sum()))
            valid = has_ref | mine
            found = _followed_by(found, part)
        take = from_numpy(index, valid=valid)
        return _take(found, take, pool, threads, combine=own is None)


def _followed_by(found: pa.Table, extra: pa.Table) -> pa.Table:
    """``found``'s rows then ``extra``'s, as chunks (its columns ``extra`` lacks: null)."""
    cols = {}
    for name, col in zip(found.column_names, found.columns, strict=True):
        more = (
            extra.column(name).cast(col.type)
            if name in extra.column_names
            else pa.nulls(extra.num_rows, col.type)
        )
        cols[name] = pa.chunked_array([*col.chunks, *pa.chunked_array(more).chunks], col.type)
    return pa.table(cols)


def _take(
    found: pa.Table, take: pa.Array, pool: ThreadPoolExecutor, threads: int, combine: bool = True
) -> pa.Table:
    """``found.take(take)``, a column per thread, a wave of columns at a time (each dropped
    once gathered: only a few columns are ever held twice). ``combine=False``: take from the
    chunks as they are (the rows read and a slice's own image rows, chained: Arrow finds
    each index's chunk; 6 pairs of a machine-label select with every column combined first
    measured ~10% slower)."""
    names = found.column_names
    out: dict[str, pa.Array | pa.ChunkedArray] = {}
    for start in range(0, len(names), threads):
        wave = names[start : start + threads]
        columns = [found.column(c) for c in wave]
        found = found.drop_columns(wave)
        gathered = pool.map(
            lambda a: a.combine_chunks().take(take) if combine else a.take(take), columns
        )
        out.update(zip(wave, gathered, strict=True))
        del columns
    return pa.table(out)


def _read_distinct(
    refs: np.ndarray, copies: list[SelectionCopy], cols: list[str], pool: ThreadPoolExecutor
) -> pa.Table:
    """The rows at ``refs`` (ascending, distinct), in that order: a record batch per task."""
    files, rows = refs >> REF_BITS, refs & ((1 << REF_BITS) - 1)
    tasks: list[tuple[Path, int, np.ndarray]] = []
    for n in files[run_starts(files)]:  # the distinct files: ``refs`` is ascending
        copy = copies[int(n)]
        starts = copy.batch_starts()
        mine = rows[files == n]
        batch = np.searchsorted(starts, mine, side="right") - 1
        cuts = np.flatnonzero(np.diff(batch)) + 1
        for part, grp in zip(np.split(mine, cuts), np.split(batch, cuts), strict=True):
            g = int(grp[0])
            tasks.append((copy.fetched(), g, part - starts[g]))
    local = threading.local()

    def piece(task: tuple[Path, int, np.ndarray]) -> pa.Table:
        path, g, at = task
        readers = local.__dict__.setdefault("readers", {})  # a reader per thread and file
        if path not in readers:
            names = ipc.open_file(pa.memory_map(str(path))).schema.names
            options = ipc.IpcReadOptions(
                use_threads=False, included_fields=[names.index(c) for c in cols]
            )
            readers[path] = ipc.open_file(pa.memory_map(str(path)), options=options)
        part = pa.Table.from_batches([readers[path].get_batch(g)]).select(cols)
        if len(at) == part.num_rows:  # every row of the batch (``at`` is ascending, distinct)
            return part
        if at[-1] - at[0] + 1 == len(at) and 2 * len(at) >= part.num_rows:  # most, in a range
            return part.slice(int(at[0]), len(at))
        return part.take(from_numpy(at))  # a compact copy: the batch's buffers are let go

    return pa.concat_tables(pool.map(piece, tasks))


def _part_sql(n: int, c: SelectionCopy, source: str) -> str:
    """Copy ``n``'s rows with their split, ``rank`` (the row: ``(n << REF_BITS) + row``,
    unique over the copies) and ``ref`` (the same, for a copy with fetched rows; NULL in a
    machine-label copy: such rows carry their own label columns)."""
    split_rank = SPLITS.index(c.split)
    rank = f"({n}::BIGINT << {REF_BITS}) + file_row_number"
    ref = "CAST(NULL AS BIGINT)" if c.rows is None else "rank"
    return (
        f"SELECT *, {ref} AS ref FROM (SELECT * EXCLUDE (file_row_number), {_q(c.split)} AS "
        f"split, {split_rank} AS split_rank, {rank} AS rank FROM {source})"
    )


def _empty_sql(kind: str) -> str:
    cols = ", ".join(
        f"CAST(NULL AS {typ}) AS {name}" for name, typ in _copy_columns(kind) if _is_key(name)
    )
    return (
        f"SELECT {cols}, CAST(NULL AS VARCHAR) AS split, CAST(NULL AS INTEGER) AS split_rank, "
        "CAST(NULL AS BIGINT) AS rank, CAST(NULL AS BIGINT) AS ref WHERE false"
    )


def _copy_columns(kind: str) -> list[tuple[str, str]]:
    label = [(ours, typ) for _, ours, typ in COLUMNS[kind] if ours not in ("image_id", "label_mid")]
    image = [(ours, typ) for _, ours, typ in COLUMNS["images"] if ours != "image_id"]
    return [("label_mid", "VARCHAR"), ("image_key", "UBIGINT"), *label, *image]


def _is_key(name: str) -> bool:
    """A column of the key rows (what the selection query reads): class, image, label."""
    return name not in COORDS and name not in IMAGE_COLS


def _is_fetched(name: str) -> bool:
    """A column of the fetched rows (what ``attach`` gathers): label, box and image columns."""
    return name not in ("label_mid", "image_key")


def copy_paths(parquet: Path) -> tuple[Path, Path, Path]:
    """The key rows, fetched rows and index of the selection copy of an ingested file."""
    base = parquet.name.removesuffix(".parquet")
    names = (f"{base}.selkeys.parquet", f"{base}.selrows.arrow", f"{base}.sel.json")
    keys, rows, index = (parquet.with_name(n) for n in names)
    return keys, rows, index


def _ensure(con: duckdb.DuckDBPyConnection, done: Ingested, images: list[Path]) -> SelectionCopy:
    keys, fetched, index = copy_paths(done.parquet)
    rows = None if done.kind == MACHINE else fetched
    stamp = _fingerprint(done.parquet, images, done.kind)
    entry = _current(index, stamp, keys, rows)
    if entry is None:
        index.unlink(missing_ok=True)  # written last: a copy without it is never taken as good
        starts, groups = _build(con, done, images, keys, rows)
        entry = {"stamp": stamp, "keys": _stat(keys), "rows": _stat(rows), "starts": starts}
        entry["groups"] = groups.to_json() if groups is not None else None
        write_text_atomic(index, json.dumps(entry))
        _drop_superseded(done.parquet)
    elif "groups" not in entry:  # the index of an older build: add the group index once
        groups = _groups_of(con, keys)
        entry["groups"] = groups.to_json() if groups is not None else None
        with contextlib.suppress(OSError):  # a read-only cache: read from the footer each time
            write_text_atomic(index, json.dumps(entry))
    else:
        groups = KeyGroups.from_json(entry["groups"])
    return SelectionCopy(done.kind, done.split, keys, rows, tuple(entry["starts"]), groups)


def _groups_of(con: duckdb.DuckDBPyConnection, keys: Path) -> KeyGroups | None:
    """The group index of a copy's key rows from its Parquet footer (the ``label_mid``
    statistics of each group)."""
    found = con.execute(
        "SELECT row_group_num_rows, stats_min_value, stats_max_value FROM parquet_metadata(?) "
        "WHERE path_in_schema = 'label_mid' ORDER BY row_group_id",
        [str(keys)],
    ).fetchall()
    rows, first, last = ([r[i] for r in found] for i in range(3))
    return KeyGroups.from_json({"rows": rows, "first": first, "last": last})


def _drop_superseded(parquet: Path) -> None:
    """Delete the one-file copy of copy versions <= 11 (``.sel.parquet``, ~3 GB for the full
    human labels): nothing reads it once this layout is built, and it is this cache's own."""
    old = parquet.with_name(parquet.name.removesuffix(".parquet") + ".sel.parquet")
    try:
        size = old.stat().st_size
        old.unlink()
    except FileNotFoundError:
        return
    except OSError as exc:  # read-only or shared cache: leave it, say so
        log.warning("could not delete the old selection copy %s: %s", old, exc.strerror)
        return
    log.info("deleted the old selection copy %s (%.1f MB)", old, size / 1e6)


def _fingerprint(source: Path, images: list[Path], kind: str) -> str:
    def stat(p: Path) -> list[object]:
        return [p.name, *(_stat(p) or [])]

    version = f"machine-{MACHINE_VERSION}" if kind == MACHINE else COPY_VERSION
    return json.dumps({"v": version, "src": stat(source), "images": [stat(p) for p in images]})


def _stat(path: Path | None) -> list[int] | None:
    if path is None:
        return None
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def _current(index: Path, stamp: str, keys: Path, rows: Path | None) -> dict[str, Any] | None:
    """The index when it matches ``stamp`` and both files (else None: missing, stale, or from
    a build that was killed before it wrote the index)."""
    try:
        entry = json.loads(index.read_text(encoding="utf-8"))
        if entry["stamp"] == stamp and [entry["keys"], entry["rows"]] == [
            _stat(keys),
            _stat(rows),
        ]:
            entry["starts"] = [int(s) for s in entry["starts"]]
            return dict(entry)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        log.warning("unreadable selection copy index %s; rebuilding", index)
    return None


def _build(
    con: duckdb.DuckDBPyConnection,
    done: Ingested,
    images: list[Path],
    keys: Path,
    rows: Path | None,
) -> tuple[list[int], KeyGroups | None]:
    """Write the copy's key rows and fetched rows (each temp + rename; a machine-label copy:
    key rows only); their batch starts and the key rows' group index."""
    sql = _build_sql(done, images)
    files_change(con)
    # spill beside the cache (not into the cwd) once it holds half the memory available
    with (
        bound_memory(con, keys.parent / ".duckdb-spill"),
        atomic_open(keys, "wb") as key_sink,
        atomic_open(rows, "wb") if rows is not None else contextlib.nullcontext() as row_sink,
    ):
        reader = con.sql(sql).to_arrow_reader(_BATCH_ROWS)
        with _PairWriter(reader.schema, key_sink, row_sink) as out:
            _write_by_class(reader, out, _group_names(done.kind))
    log.info("built selection copy %s", keys)
    return out.starts, KeyGroups.from_json(out.groups)


def _build_sql(done: Ingested, images: list[Path]) -> str:
    """The copy's rows in its order: valid ImageIDs as ``image_key``, the label columns (a
    box's clamped), the image columns (none for machine labels)."""
    names = [name for name, _ in _copy_columns(done.kind)[2 : -len(IMAGE_COLS)]]
    label = ", ".join(f"{clamped('l.' + n)} AS {n}" if n in COORDS else f"l.{n}" for n in names)
    key = f"l.label_mid, ('0x' || l.image_id)::UBIGINT AS image_key, {label}"
    source = f"read_parquet({_q(str(done.parquet))}) l"
    if done.kind == MACHINE:  # no image columns; the order of ``selectsql._dedup``'s choice
        order = "l.label_mid, image_key, l.confidence DESC, l.source"
        return f"SELECT {key} FROM {source} WHERE {valid_id('l.image_id')} ORDER BY {order}"
    image = ", ".join(f"i.{c}" for c in IMAGE_COLS)
    valid = "l.confidence IN (0, 1)" if done.kind == "human_labels" else valid_box("l")
    if done.kind == "boxes":
        keys = ["l.label_mid", grouped("l"), "image_key", *box_keys("l", clamp=True)]
    else:
        keys = ["l.label_mid", "l.confidence DESC", "image_key", "l.source"]
    return (
        f"SELECT {key}, {image} FROM {source} LEFT JOIN {_images_sql(images, done)} i "
        f"USING (image_id) WHERE {valid_id('l.image_id')} AND {valid} ORDER BY {', '.join(keys)}"
    )


class _PairWriter:
    """Writes each group of rows twice: the key columns as a Parquet row group (LZ4; what
    DuckDB prunes by) and the fetched columns as LZ4 Arrow IPC record batches of at most
    ``_FETCH_ROWS`` (``starts``: each batch's first row).

    Why two files: every select parsed the footer of the one wide Parquet copy twice (DuckDB
    and pyarrow: 2.9 MB, 2,641 groups x 14 columns at full size, ~0.15 s), and decoding its
    wide columns took ~3x longer than reading the same rows as Arrow IPC.
    """

    def __init__(self, schema: pa.Schema, key_sink: IO[bytes], row_sink: IO[bytes] | None) -> None:
        key_names = [n for n in schema.names if _is_key(n)]
        self.row_names = [n for n in schema.names if _is_fetched(n)]
        self.key_names = key_names
        self.starts: list[int] = []
        #: each key row group's rows, first and last class (``KeyGroups``)
        self.groups: dict[str, list[Any]] = {"rows": [], "first": [], "last": []}
        self._rows = 0
        self._keys = pq.ParquetWriter(
            key_sink,
            pa.schema([schema.field(n) for n in key_names]),
            compression="lz4",
            use_dictionary=[c for c in FEW_VALUES if c in key_names],
            write_statistics=[c for c in _PRUNED_BY if c in key_names],
        )
        options = ipc.IpcWriteOptions(compression="lz4")
        row_schema = pa.schema([schema.field(n) for n in self.row_names])
        self._fetched = (
            ipc.new_file(row_sink, row_schema, options=options) if row_sink is not None else None
        )

    def __enter__(self) -> _PairWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self._keys.close()
        if self._fetched is not None:
            self._fetched.close()

    def write(self, table: pa.Table) -> None:
        """``table`` as groups of at most ``_GROUP_ROWS`` rows."""
        for start in range(0, table.num_rows, _GROUP_ROWS):
            group = table.slice(start, _GROUP_ROWS).combine_chunks()
            self._keys.write_table(group.select(self.key_names), row_group_size=_GROUP_ROWS)
            mids = group.column("label_mid")
            self.groups["rows"].append(group.num_rows)
            self.groups["first"].append(mids[0].as_py())
            self.groups["last"].append(mids[-1].as_py())
            if self._fetched is None:
                continue
            for batch in group.select(self.row_names).to_batches(max_chunksize=_FETCH_ROWS):
                self.starts.append(self._rows)
                self._rows += batch.num_rows
                self._fetched.write_batch(batch)


def _write_by_class(
    batches: pa.RecordBatchReader, out: _PairWriter, names: tuple[str, ...]
) -> None:
    """Write ``batches`` (sorted by ``label_mid``, the first column, then ``confidence`` for
    human labels) with a group boundary at a change of class (and of confidence) once the
    group holds ``_MIN_GROUP_ROWS``, and every ``_GROUP_ROWS`` rows.

    A class query then decodes its own rows and at most a small group of neighbours (DuckDB's
    writer cuts groups anywhere: a class of a few thousand rows would cost a whole group or
    two of other classes' rows), while the footer stays small for 20,000 classes.
    """
    schema = batches.schema
    held: list[pa.RecordBatch] = []  # the current class's rows not yet written
    current: object = None

    def write(final: bool) -> list[pa.RecordBatch]:
        table = pa.Table.from_batches(held, schema)
        whole = table.num_rows if final else table.num_rows // _GROUP_ROWS * _GROUP_ROWS
        if whole:
            out.write(table.slice(0, whole))
        rest: list[pa.RecordBatch] = table.slice(whole).to_batches()
        return rest

    for batch in batches:
        keys = [batch.column(n) for n in names]
        changes = pc.indices_nonzero(_changes(keys))
        bounds = [0, *(int(i) + 1 for i in changes.to_pylist()), len(batch)]
        for start, end in itertools.pairwise(bounds):
            if start == end:
                continue
            mid = tuple(k[start].as_py() for k in keys)
            if mid != current and sum(len(b) for b in held) >= _MIN_GROUP_ROWS:
                held = write(final=True)
            current = mid
            held.append(batch.slice(start, end - start))
        if sum(len(b) for b in held) >= _GROUP_ROWS:
            held = write(final=False)
    if held:
        write(final=True)


def _group_names(kind: str) -> tuple[str, ...]:
    """The columns a row group never spans two values of: ``label_mid`` (and ``confidence``,
    in a human-label copy: its positives and negatives)."""
    return ("label_mid", "confidence") if kind == "human_labels" else ("label_mid",)


def _changes(keys: list[pa.Array]) -> pa.Array:
    """True at row ``i`` when any key differs between rows ``i`` and ``i + 1``."""
    out = None
    for k in keys:
        diff = pc.fill_null(pc.not_equal(k.slice(1), k.slice(0, len(k) - 1)), True)
        out = diff if out is None else pc.or_(out, diff)
    assert out is not None
    return out


def _images_sql(images: list[Path], done: Ingested) -> str:
    """The image rows of ``images`` that ``done`` names (a smaller hash table to join with)."""
    cols = ", ".join(("image_id", *IMAGE_COLS))
    if not images:
        typed = ", ".join(f"CAST(NULL AS {typ}) AS {ours}" for _, ours, typ in COLUMNS["images"])
        return f"(SELECT {typed} WHERE false)"
    listed = ", ".join(_q(str(p)) for p in images)
    dedupe = " QUALIFY row_number() OVER (PARTITION BY image_id) = 1" if len(images) > 1 else ""
    named = f"image_id IN (SELECT image_id FROM read_parquet({_q(str(done.parquet))}))"
    return f"(SELECT {cols} FROM read_parquet([{listed}]) WHERE {named}{dedupe})"


def _q(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
