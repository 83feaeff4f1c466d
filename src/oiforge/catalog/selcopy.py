"""Selection copies: per label/box file, the rows ``select`` can use, with image metadata attached.

Why: a selection's rows name random ImageIDs, so joining the image list at query time reads
all of it (row-group pruning cannot help) and materialises wide rows; that dominated ``select``.
A selection copy is built once per (label file, image list) pair, beside the Parquet copy:

- only rows with a valid ImageID (16 lowercase hex characters; nothing else can become a file
  name), and for human labels only positives (``confidence = 1``: all that ``select`` reads);
- ``image_key``: the ImageID as an unsigned 64-bit integer (same order as the hex text), so
  joins, windows and sorts work on integers;
- the image columns of the image list of the same split (NULL when it is not ingested);
- sorted by ``label_mid, image_key``, so a class query reads only its classes' row groups, and
  the wide columns only for the rows it finally keeps (joined back by row number).

A fingerprint of its inputs (Parquet copy and image lists: name, size, mtime) is stored in the
file's key-value metadata, so a copy is rebuilt only when an input changed. Machine labels get
no copy: at full size (~170M rows) it would cost tens of GB; ``select`` joins the image list
for the (rare) machine-label rows instead.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from oiforge.catalog.arrays import from_numpy, to_numpy
from oiforge.catalog.ingest import COLUMNS
from oiforge.contracts import SPLITS

if TYPE_CHECKING:
    from oiforge.catalog.catalog import Catalog
    from oiforge.catalog.ingest import Ingested

log = logging.getLogger(__name__)

COPY_VERSION: Final = 1
COPY_KINDS: Final = ("boxes", "human_labels")
IMAGE_COLS: Final = tuple(ours for _, ours, _ in COLUMNS["images"] if ours != "image_id")
_KEY: Final = "fingerprint"
_VALID_ID: Final = "regexp_full_match(l.image_id, '[0-9a-f]{16}')"
#: rows per file, so that ``(file index << _REF_BITS) + row`` is a unique row reference.
_REF_BITS: Final = 40
_ARROW: Final = {"VARCHAR": pa.string(), "BIGINT": pa.int64(), "FLOAT": pa.float32()}


@dataclass(frozen=True)
class SelectionCopy:
    """The selection copy of one label/box file."""

    kind: str
    split: str
    path: Path


def view_name(kind: str) -> str:
    """The temp view over the selection copies of ``kind`` (see :func:`register_views`)."""
    return f"sel_{kind}"


def ensure_copies(
    cat: Catalog, kinds: tuple[str, ...], splits: tuple[str, ...] = SPLITS
) -> list[SelectionCopy]:
    """The selection copies of the ingested files of ``kinds`` x ``splits`` (built when stale)."""
    out = []
    for done in sorted(cat.ingested.values(), key=lambda i: i.relpath):
        if done.kind in kinds and done.kind in COPY_KINDS and done.split in splits:
            images = sorted(
                i.parquet
                for i in cat.ingested.values()
                if i.kind == "images" and i.split == done.split
            )
            out.append(_ensure(cat.connection, done, images))
    return out


def register_views(con: duckdb.DuckDBPyConnection, copies: list[SelectionCopy]) -> None:
    """Temp views ``sel_<kind>``: the copies plus ``split``, ``split_rank`` and ``ref``."""
    for kind in COPY_KINDS:
        parts = [
            _part_sql(n, c) for n, c in enumerate(copies) if c.kind == kind and c.split in SPLITS
        ]
        body = " UNION ALL ".join(parts) if parts else _empty_sql(kind)
        con.execute(f"CREATE OR REPLACE TEMP VIEW {view_name(kind)} AS {body}")


def attach_images(table: pa.Table, copies: list[SelectionCopy]) -> pa.Table:
    """``table`` (rows with ``ref``) with ``image_id`` and image columns from the copies.

    Reads only the row groups that hold the rows and gathers them in ``table``'s order; rows
    without a ``ref`` keep the values they have.
    """
    ref = table.column("ref").cast(pa.int64())
    has_ref = to_numpy(pc.is_valid(ref))
    refs = to_numpy(ref, null_as=0)
    fetched = _gather(refs, has_ref, copies)
    mask = from_numpy(has_ref)
    for name in ("image_id", *IMAGE_COLS):
        idx = table.schema.get_field_index(name)
        col = fetched.column(name)
        if not has_ref.all():  # machine-label rows keep what the query joined in
            col = pc.if_else(mask, col, table.column(idx).cast(col.type))
        table = table.set_column(idx, name, col)
    return table.drop_columns(["ref"])


def _gather(refs: np.ndarray, has_ref: np.ndarray, copies: list[SelectionCopy]) -> pa.Table:
    """The copies' image columns at ``refs`` (a row per ref; null where ``has_ref`` is false)."""
    cols = ["image_id", *IMAGE_COLS]
    files, rows = refs >> _REF_BITS, refs & ((1 << _REF_BITS) - 1)
    if not has_ref.any():
        types = dict(_copy_columns("boxes"))
        return pa.table({c: pa.nulls(len(refs), _ARROW[types[c]]) for c in cols})
    index = np.zeros(len(refs), np.int64)
    pieces, offset = [], 0
    threads = os.cpu_count() or 1  # Arrow's reads and takes release the GIL
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for n in np.unique(files[has_ref]):
            mine = has_ref & (files == n)
            piece, local = _read_rows(copies[int(n)].path, rows[mine], cols, pool)
            index[mine] = offset + local
            pieces.append(piece)
            offset += piece.num_rows
        found, take = pa.concat_tables(pieces), from_numpy(index, valid=has_ref)
        del pieces
        out: dict[str, pa.Array] = {}
        # a column per thread, a wave at a time, each dropped once gathered: only a few
        # columns are ever held twice
        for start in range(0, len(cols), threads):
            wave = cols[start : start + threads]
            columns = [found.column(c) for c in wave]
            found = found.drop_columns(wave)
            gathered = pool.map(lambda a: a.combine_chunks().take(take), columns)
            out.update(zip(wave, gathered, strict=True))
            del columns
    return pa.table(out)


def _read_rows(
    path: Path, rows: np.ndarray, cols: list[str], pool: ThreadPoolExecutor
) -> tuple[pa.Table, np.ndarray]:
    """``rows`` of ``path`` (a row group per task on ``pool``), and where each landed in the
    result."""
    meta = pq.ParquetFile(path).metadata
    sizes = np.array([meta.row_group(g).num_rows for g in range(meta.num_row_groups)], np.int64)
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    wanted, where = np.unique(rows, return_inverse=True)
    group = np.searchsorted(starts, wanted, side="right") - 1
    cuts = np.flatnonzero(np.diff(group)) + 1
    local = threading.local()

    def piece(p: np.ndarray) -> pa.Table:
        if not hasattr(local, "file"):  # a ParquetFile per thread: one is not thread-safe
            local.file = pq.ParquetFile(path)
        g = int(group[p[0]])
        part = local.file.read_row_group(g, columns=cols, use_threads=False)
        return part.take(from_numpy(wanted[p] - starts[g]))

    pieces = list(pool.map(piece, np.split(np.arange(len(wanted)), cuts)))
    return pa.concat_tables(pieces), where


def _part_sql(n: int, c: SelectionCopy) -> str:
    rank = SPLITS.index(c.split)
    return (
        f"SELECT * EXCLUDE (file_row_number), {_q(c.split)} AS split, {rank} AS split_rank, "
        f"({n}::BIGINT << {_REF_BITS}) + file_row_number AS ref "
        f"FROM read_parquet({_q(str(c.path))}, file_row_number = true)"
    )


def _empty_sql(kind: str) -> str:
    cols = ", ".join(f"CAST(NULL AS {typ}) AS {name}" for name, typ in _copy_columns(kind))
    return (
        f"SELECT {cols}, CAST(NULL AS VARCHAR) AS split, CAST(NULL AS INTEGER) AS split_rank, "
        "CAST(NULL AS BIGINT) AS ref WHERE false"
    )


def _copy_columns(kind: str) -> list[tuple[str, str]]:
    label = [(ours, typ) for _, ours, typ in COLUMNS[kind] if ours not in ("image_id", "label_mid")]
    image = [(ours, typ) for _, ours, typ in COLUMNS["images"]]
    return [("label_mid", "VARCHAR"), ("image_key", "UBIGINT"), *label, *image]


def _ensure(con: duckdb.DuckDBPyConnection, done: Ingested, images: list[Path]) -> SelectionCopy:
    out = done.parquet.with_name(done.parquet.name.replace(".parquet", ".sel.parquet"))
    copy = SelectionCopy(done.kind, done.split, out)
    stamp = _fingerprint(done.parquet, images)
    if _stored_fingerprint(out) == stamp:
        return copy
    _build(con, done, images, out, stamp)
    return copy


def _fingerprint(source: Path, images: list[Path]) -> str:
    def stat(p: Path) -> list[object]:
        st = p.stat()
        return [p.name, st.st_size, st.st_mtime_ns]

    return json.dumps({"v": COPY_VERSION, "src": stat(source), "images": [stat(p) for p in images]})


def _stored_fingerprint(path: Path) -> str | None:
    if not path.exists():
        return None
    try:
        meta = pq.read_metadata(path).metadata or {}
    except (OSError, ValueError):
        log.warning("unreadable selection copy %s; rebuilding", path)
        return None
    value = meta.get(_KEY.encode())
    return value.decode() if value else None


def _build(
    con: duckdb.DuckDBPyConnection, done: Ingested, images: list[Path], out: Path, stamp: str
) -> None:
    label = ", ".join(
        f"l.{name}" for name, _ in _copy_columns(done.kind)[2 : -len(COLUMNS["images"])]
    )
    image = ", ".join(f"i.{c}" for c in IMAGE_COLS)
    where = _VALID_ID + (" AND l.confidence = 1" if done.kind == "human_labels" else "")
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    sql = (
        f"COPY (SELECT l.label_mid, ('0x' || l.image_id)::UBIGINT AS image_key, "
        f"{label}, l.image_id, {image} "
        f"FROM read_parquet({_q(str(done.parquet))}) l LEFT JOIN {_images_sql(images, done)} i "
        f"USING (image_id) WHERE {where} ORDER BY l.label_mid, image_key) "
        f"TO {_q(str(tmp))} (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 122880, "
        f"KV_METADATA {{{_KEY}: {_q(stamp)}}})"
    )
    with contextlib.suppress(duckdb.Error):  # spill beside the cache, not into the cwd
        con.execute(f"SET temp_directory = {_q(str(out.parent / '.duckdb-spill'))}")
    try:
        con.execute(sql)
        tmp.replace(out)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    log.info("built selection copy %s", out)


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
