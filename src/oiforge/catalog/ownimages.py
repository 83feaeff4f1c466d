"""The image columns of selection rows that have no selection copy (machine labels).

Why a step of its own: the key query returns narrow rows (integers, and a machine row's
``source`` and ``confidence``), ``order_rows`` sorts them, and only then are the wide image
columns looked up, once per distinct (image, split), in the *keyed image list* of the split:

- per ingested image list, ``<list>.keyed.arrow``: ``image_key`` (the ImageID as an unsigned
  64-bit integer, same order) and the image columns, valid ImageIDs only, in ``image_key``
  order (the Parquet copy's ``image_id`` order: no sort), uncompressed Arrow IPC record
  batches of ``_BATCH_ROWS``;
- ``<list>.keyed.json``, written last: the inputs' fingerprint (the Parquet copy's name, size
  and mtime; the layout version), the IPC file's size and mtime and each batch's first key.
  A stale, torn or half-built list (no index, or one that does not match) is rebuilt.

Why this layout: the 452k machine rows of a 50-class query at full size name 5% of the 9.0M
images at random, so every batch holds wanted rows whatever its size. Decoding a compressed
list (the LZ4 Parquet this replaces: every value of every column) cost ~1.9 CPU-s on the
bench's 2 cores; reading the batches uncompressed and taking the wanted rows ~1.2 CPU-s.
The price is disk: ~3.2 GB for the bench's 9.0M-image list (was 370 MB), built in ~10 s.
Batches are read (not memory-mapped: mapped pages would count against the process's memory),
one batch per thread at a time.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc

from oiforge.arrays import from_numpy, to_numpy
from oiforge.atomic import atomic_open, write_text_atomic
from oiforge.catalog.ingest import COLUMNS, Ingested, bound_memory, files_change
from oiforge.catalog.rowrules import valid_id
from oiforge.catalog.selcopy import IMAGE_COLS
from oiforge.contracts import SPLITS

log = logging.getLogger(__name__)

#: bump when the keyed list's layout changes: older ones are rebuilt
KEYED_VERSION: Final = 2
#: rows per record batch of a keyed list (~23 MB of image columns at full size)
_BATCH_ROWS: Final = 65_536


@dataclass(frozen=True)
class KeyedList:
    """The keyed image list of one split: its IPC file and each batch's first key."""

    split: str
    path: Path
    first_keys: tuple[int, ...]


@dataclass(frozen=True)
class OwnImages:
    """``table``: the image columns, a row per distinct (image, split) found in the lists;
    ``at``: per key row, its row in ``table`` (-1: the row has a copy, or its image is not
    listed for its split: null image columns, as a left join gives)."""

    table: pa.Table
    at: np.ndarray

    def put(self, rows: pa.Table, start: int) -> pa.Table:
        """``rows`` (the key rows from ``start``) with the image columns of their rows without
        a copy (null for the others: ``selcopy.attach`` fills those from the copies)."""
        at = self.at[start : start + rows.num_rows]
        found = at >= 0
        take = from_numpy(np.where(found, at, 0), valid=found)
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:  # a column a task
            picked = pool.map(lambda c: self.table.column(c).take(take), IMAGE_COLS)
            for name, col in zip(IMAGE_COLS, picked, strict=True):
                rows = rows.append_column(name, col)
        return rows


def own_images(rows: pa.Table, lists: Sequence[KeyedList]) -> OwnImages | None:
    """The image columns of ``rows``' rows without a ``ref`` (None when every row has one),
    matched on ``image_key`` and split like the plain route's left join of the image list
    (the first list of a split that has the image)."""
    own = to_numpy(pc.is_null(rows.column("ref")))
    if not own.any():
        return None
    keys = to_numpy(rows.column("image_key"))[own]
    ranks = to_numpy(rows.column("split_rank")).astype(np.int64)[own]
    order = np.lexsort((keys, ranks))
    keys, ranks = keys[order], ranks[order]
    first = np.r_[True, (keys[1:] != keys[:-1]) | (ranks[1:] != ranks[:-1])]
    inverse = np.empty(len(order), np.int64)
    inverse[order] = np.cumsum(first) - 1  # each own row's pair among the distinct pairs
    keys, ranks = keys[first], ranks[first]  # distinct pairs, by split then key
    where = np.full(len(keys), -1, np.int64)
    parts: list[pa.Table] = []
    found = 0
    for keyed in lists:
        pending = np.flatnonzero((ranks == SPLITS.index(keyed.split)) & (where < 0))
        at, table = _lookup(keyed, keys[pending])
        hit = at >= 0
        where[pending[hit]] = found + at[hit]
        found += table.num_rows
        parts.append(table)
    at_rows = np.full(rows.num_rows, -1, np.int64)
    at_rows[own] = where[inverse]
    table = pa.concat_tables([p for p in parts if p.num_rows] or [_empty()])
    return OwnImages(table, at_rows)


def _lookup(keyed: KeyedList, keys: np.ndarray) -> tuple[np.ndarray, pa.Table]:
    """Per key of ``keys`` (ascending), whether ``keyed`` has it (>= 0) or not (-1), and the
    image columns of those it has, in ``keys``' order: a task per batch that holds any."""
    at = np.full(len(keys), -1, np.int64)
    if not len(keys) or not keyed.first_keys:
        return at, _empty()
    firsts = np.asarray(keyed.first_keys, np.uint64)
    batch = np.searchsorted(firsts, keys, side="right") - 1
    tasks = [(int(b), np.flatnonzero(batch == b)) for b in np.unique(batch[batch >= 0])]
    if not tasks:
        return at, _empty()
    local = threading.local()

    def piece(task: tuple[int, np.ndarray]) -> tuple[np.ndarray, pa.Table]:
        b, mine = task
        if not hasattr(local, "reader"):  # read, not mapped: see the module's docstring
            local.reader = ipc.open_file(pa.OSFile(str(keyed.path)))
        got = local.reader.get_batch(b)
        listed = to_numpy(got.column("image_key"))
        pos = np.minimum(np.searchsorted(listed, keys[mine]), len(listed) - 1)
        hit = listed[pos] == keys[mine]
        return mine[hit], pa.Table.from_batches([got]).take(from_numpy(pos[hit]))

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        pieces = list(pool.map(piece, tasks))
    hits = np.concatenate([p[0] for p in pieces])
    at[hits] = np.arange(len(hits))
    return at, pa.concat_tables([p[1] for p in pieces]).select(list(IMAGE_COLS))


def _empty() -> pa.Table:
    """No image rows (no list for the split, or none of its images listed)."""
    types = {"VARCHAR": pa.string(), "BIGINT": pa.int64(), "FLOAT": pa.float32()}
    cols = [(ours, types[typ]) for _, ours, typ in COLUMNS["images"] if ours in IMAGE_COLS]
    return pa.schema(cols).empty_table()


def keyed_list(con: duckdb.DuckDBPyConnection, done: Ingested) -> KeyedList:
    """The keyed list of the image list ``done`` (built when missing, stale or torn)."""
    base = done.parquet.name.removesuffix(".parquet")
    path = done.parquet.with_name(f"{base}.keyed.arrow")
    index = done.parquet.with_name(f"{base}.keyed.json")
    st = done.parquet.stat()
    stamp = {"v": KEYED_VERSION, "src": [done.parquet.name, st.st_size, st.st_mtime_ns]}
    firsts = _current(index, stamp, path)
    if firsts is None:
        index.unlink(missing_ok=True)  # written last: a list without it is never taken as good
        firsts = _build(con, done, path)
        entry = {"stamp": stamp, "file": _stat(path), "first_keys": firsts}
        write_text_atomic(index, json.dumps(entry))
        done.parquet.with_name(f"{base}.keyed.parquet").unlink(missing_ok=True)  # layout 1
        log.info("built keyed image list %s", path)
    return KeyedList(done.split, path, tuple(firsts))


def _stat(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def _current(index: Path, stamp: dict[str, object], path: Path) -> list[int] | None:
    """The batches' first keys the index records when it matches ``stamp`` and the file."""
    try:
        entry = json.loads(index.read_text(encoding="utf-8"))
        if entry["stamp"] == stamp and entry["file"] == _stat(path):
            return [int(k) for k in entry["first_keys"]]
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        log.warning("unreadable keyed image list index %s; rebuilding", index)
    return None


def _build(con: duckdb.DuckDBPyConnection, done: Ingested, path: Path) -> list[int]:
    """Write the keyed list (temp + rename); each batch's first key."""
    files_change(con)
    cols = ", ".join(IMAGE_COLS)
    sql = (
        f"SELECT ('0x' || image_id)::UBIGINT AS image_key, {cols} "
        f"FROM read_parquet({_q(str(done.parquet))}) WHERE {valid_id('image_id')}"
    )
    firsts: list[int] = []
    with bound_memory(con, path.parent / ".duckdb-spill"), atomic_open(path, "wb") as sink:
        reader = con.sql(sql).to_arrow_reader(_BATCH_ROWS)
        with ipc.new_file(sink, reader.schema) as out:
            for batch in _batches(reader):
                firsts.append(int(batch.column(0)[0].as_py()))
                out.write_batch(batch)
    return firsts


def _batches(reader: pa.RecordBatchReader) -> Iterator[pa.RecordBatch]:
    """``reader``'s rows as batches of ``_BATCH_ROWS`` (the last may be smaller)."""
    held: list[pa.RecordBatch] = []
    n = 0
    for batch in reader:
        held.append(batch)
        n += batch.num_rows
        while n >= _BATCH_ROWS:
            table = pa.Table.from_batches(held, reader.schema)
            yield table.slice(0, _BATCH_ROWS).combine_chunks().to_batches()[0]
            held, n = table.slice(_BATCH_ROWS).to_batches(), n - _BATCH_ROWS
    if n:
        yield pa.Table.from_batches(held, reader.schema).combine_chunks().to_batches()[0]


def _q(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
