"""CSV → Parquet ingest with DuckDB: typed, renamed, sorted copies of the official files.

Each official CSV becomes ``<home>/parquet/<relpath>.parquet`` (snake_case columns plus
``split``), sorted by ``label_mid, image_id`` for label/box files (a class query reads only
the row groups of its classes) and by ``image_id`` for image metadata. A manifest maps each
source (by MD5) to its Parquet copy, so ingest is incremental and idempotent: a file is
converted again only when its bytes changed. Per-class counts are kept beside each copy.

An image list also gets a copy keyed by ``image_key`` (``keyed_list``), where ``select`` looks
up the image columns of the rows whose selection copy holds none (machine labels:
``own_images``), after ordering its narrow key rows:

- ``<list>.keyed.arrow``: ``image_key`` (the ImageID as an unsigned 64-bit integer, same order)
  and the image columns, valid ImageIDs only, in ``image_key`` order (the Parquet copy's
  ``image_id`` order: no sort), uncompressed Arrow IPC record batches of ``_KEYED_ROWS``;
- ``<list>.keyed.json``, written last: the inputs' fingerprint (the Parquet copy's name, size
  and mtime; the layout version), the IPC file's size and mtime and each batch's first key.
  A stale, torn or half-built list (no index, or one that does not match) is rebuilt.

Why this layout: the 452k machine rows of a 50-class query at full size name 5% of the 9.0M
images at random, so every batch holds wanted rows whatever its size. Decoding a compressed list
(the LZ4 Parquet this replaces: every value of every column) cost ~1.9 CPU-s on the bench's 2
cores; mapping the uncompressed batches and taking only the wanted rows ~0.9 CPU-s. A batch is
mapped for its task and unmapped after it (the pages of a map held over the whole file would
count against the process's memory: 3.4 GB). The price is disk: 3.1 GB for the bench's
9.0M-image list (was 370 MB), built in ~9 s.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc

from oiforge.arrays import from_numpy, to_numpy
from oiforge.atomic import atomic_open, write_text_atomic
from oiforge.catalog.fetch import file_md5, recorded_md5
from oiforge.catalog.files import OfficialFile
from oiforge.catalog.rowrules import valid_id
from oiforge.contracts import SPLITS
from oiforge.errors import MalformedFileError

log = logging.getLogger(__name__)

SCHEMA_VERSION: Final = 2
TABLE_KINDS: Final = ("images", "human_labels", "machine_labels", "boxes")
_FLAGS = ("IsOccluded", "IsTruncated", "IsGroupOf", "IsDepiction", "IsInside")

#: official column -> (our column, DuckDB type); per kind, in output order.
COLUMNS: Final[dict[str, tuple[tuple[str, str, str], ...]]] = {
    "images": (
        ("ImageID", "image_id", "VARCHAR"),
        ("OriginalURL", "original_url", "VARCHAR"),
        ("OriginalLandingURL", "landing_url", "VARCHAR"),
        ("License", "license", "VARCHAR"),
        ("AuthorProfileURL", "author_profile_url", "VARCHAR"),
        ("Author", "author", "VARCHAR"),
        ("Title", "title", "VARCHAR"),
        ("OriginalSize", "original_size", "BIGINT"),
        ("OriginalMD5", "original_md5", "VARCHAR"),
        ("Thumbnail300KURL", "thumbnail_url", "VARCHAR"),
        ("Rotation", "rotation", "FLOAT"),
    ),
    "human_labels": (
        ("ImageID", "image_id", "VARCHAR"),
        ("Source", "source", "VARCHAR"),
        ("LabelName", "label_mid", "VARCHAR"),
        ("Confidence", "confidence", "FLOAT"),
    ),
    "boxes": (
        ("ImageID", "image_id", "VARCHAR"),
        ("Source", "source", "VARCHAR"),
        ("LabelName", "label_mid", "VARCHAR"),
        ("Confidence", "confidence", "FLOAT"),
        ("XMin", "x_min", "FLOAT"),
        ("XMax", "x_max", "FLOAT"),
        ("YMin", "y_min", "FLOAT"),
        ("YMax", "y_max", "FLOAT"),
        *((f, re.sub(r"(?<!^)([A-Z])", r"_\1", f).lower(), "TINYINT") for f in _FLAGS),
    ),
}
COLUMNS["machine_labels"] = COLUMNS["human_labels"]
#: the image columns a selection row carries (all but ``image_id``)
IMAGE_COLS: Final = tuple(ours for _, ours, _ in COLUMNS["images"] if ours != "image_id")
#: columns a file must have; the rest (Rotation, box flags, ...) become NULL when absent.
REQUIRED: Final = {
    "images": ("ImageID", "OriginalURL"),
    "human_labels": ("ImageID", "LabelName", "Confidence"),
    "machine_labels": ("ImageID", "LabelName", "Confidence"),
    "boxes": ("ImageID", "LabelName", "XMin", "XMax", "YMin", "YMax"),
}
SORT_KEYS: Final = {
    "images": "image_id",
    "human_labels": "label_mid, image_id",
    "machine_labels": "label_mid, image_id",
    "boxes": "label_mid, image_id",
}
_LINE_RE = re.compile(r"Line: (\d+)")


@dataclass(frozen=True)
class Ingested:
    """One source file's Parquet copy and its per-class counts (label files only)."""

    relpath: str
    kind: str
    split: str
    parquet: Path
    counts: Path | None
    rows: int


def parquet_dir(home: Path) -> Path:
    return home / "parquet"


def ingest(con: duckdb.DuckDBPyConnection, file: OfficialFile, csv: Path, home: Path) -> Ingested:
    """The Parquet copy of ``csv``, converted now unless the manifest says it is current."""
    manifest = _load_manifest(home)
    entry = manifest.get(file.relpath)
    stat = csv.stat()
    if entry and (entry["size"], entry["mtime_ns"]) == (stat.st_size, stat.st_mtime_ns):
        found = _entry_to_ingested(file, entry, home)
        if found is not None:
            return found
    md5 = recorded_md5(csv) or file_md5(csv)
    if entry and entry.get("md5") == md5 and entry.get("schema") == SCHEMA_VERSION:
        found = _entry_to_ingested(file, entry, home)
        if found is not None:
            _save_entry(
                home, file.relpath, {**entry, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
            )
            return found
    done = convert(con, file, csv, parquet_dir(home) / f"{file.relpath}.parquet")
    _save_entry(home, file.relpath, _entry(done, home, md5, stat.st_size, stat.st_mtime_ns))
    return done


def files_change(con: duckdb.DuckDBPyConnection) -> None:
    """Stop ``con`` using cached Parquet footers: a file it may have read is about to be
    replaced (DuckDB checks a cached footer against the file's mtime, in whole seconds)."""
    con.execute("SET parquet_metadata_cache = false")


#: Share of the memory available now that a sort during ingest may hold before it spills.
SORT_MEMORY_SHARE: Final = 0.5


def available_memory() -> int | None:
    """Bytes of memory available now (``MemAvailable``), or None where unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


@contextlib.contextmanager
def bound_memory(con: duckdb.DuckDBPyConnection, spill: Path) -> Iterator[None]:
    """Let ``con``'s big sorts spill to ``spill`` once they hold half the memory available now.

    DuckDB's default limit is 80% of *installed* memory: sorting the full-size machine-label
    file (165M rows) grew to 17.5 GB on a 24 GB machine that other processes shared, and the
    kernel killed it. A limit from what is free keeps the ingest alive (slower, on disk).
    """
    free = available_memory()
    with contextlib.suppress(duckdb.Error):
        con.execute(f"SET temp_directory = {_quote(str(spill))}")
        if free is not None:
            mb = max(1024, int(free * SORT_MEMORY_SHARE) >> 20)
            con.execute(f"SET memory_limit = '{mb}MB'")
    try:
        yield
    except BaseException:
        # a failure mid-read leaves the result open, and DuckDB refuses any statement until it
        # is gone: the reset must not replace the error that matters (disk full, killed, ...)
        with contextlib.suppress(duckdb.Error):
            con.execute("RESET memory_limit")
        raise
    con.execute("RESET memory_limit")  # the catalog never sets one of its own


def convert(con: duckdb.DuckDBPyConnection, file: OfficialFile, csv: Path, out: Path) -> Ingested:
    """Read ``csv`` strictly, write a sorted Parquet copy (temp + rename) and its counts."""
    files_change(con)
    kind, split = file.kind, file.split or ""
    header = read_header(csv)
    select = _select_list(kind, header, csv)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    reader = _read_csv_sql(csv, header, kind)
    # An image listed twice in one file keeps its first row, so joins never multiply rows.
    dedupe = "QUALIFY row_number() OVER (PARTITION BY image_id) = 1" if kind == "images" else ""
    sql = (
        f"COPY (SELECT {select}, {_quote(split)} AS split FROM {reader} {dedupe} "
        f"ORDER BY {SORT_KEYS[kind]}) TO {_quote(str(tmp))} "
        "(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 122880)"
    )
    with bound_memory(con, out.parent / ".duckdb-spill"):
        _run_csv_sql(con, sql, csv)
    tmp.replace(out)
    rows = _scalar(con, f"SELECT count(*) FROM read_parquet({_quote(str(out))})")
    counts = _write_counts(con, kind, out) if kind != "images" else None
    log.info("ingested %s: %d rows -> %s", csv, rows, out)
    return Ingested(file.relpath, kind, split, out, counts, rows)


def read_header(csv: Path) -> list[str]:
    """The header fields of an official CSV (BOM and CR stripped)."""
    with csv.open("rb") as fh:
        first = fh.readline(65536)
    text = first.decode("utf-8-sig", errors="replace").rstrip("\r\n")
    if not text:
        raise MalformedFileError(str(csv), "empty file (no header line)", 1)
    return [h.strip().strip('"') for h in text.split(",")]


def _select_list(kind: str, header: list[str], csv: Path) -> str:
    missing = [c for c in REQUIRED[kind] if c not in header]
    if missing:
        raise MalformedFileError(
            str(csv), f"not a {kind} file: missing column(s) {', '.join(missing)}", 1
        )
    parts = []
    for official, ours, typ in COLUMNS[kind]:
        src = _ident(official) if official in header else "NULL"
        parts.append(f"CAST({src} AS {typ}) AS {ours}")
    return ", ".join(parts)


def _read_csv_sql(csv: Path, header: list[str], kind: str) -> str:
    types = {o: t for o, _, t in COLUMNS[kind]}
    cols = ", ".join(f"{_quote(h)}: {_quote(types.get(h, 'VARCHAR'))}" for h in header)
    return (
        f"read_csv({_quote(str(csv))}, header=true, auto_detect=false, delim=',', "
        f"quote='\"', escape='\"', strict_mode=true, columns={{{cols}}})"
    )


def _run_csv_sql(con: duckdb.DuckDBPyConnection, sql: str, csv: Path) -> None:
    try:
        con.execute(sql)
    except duckdb.Error as exc:
        msg = str(exc)
        found = _LINE_RE.search(msg)
        first = msg.splitlines()[0] if msg else type(exc).__name__
        reason = first.replace("Invalid Input Error: ", "")
        detail = next((ln for ln in msg.splitlines()[1:4] if "Expected" in ln or "quote" in ln), "")
        raise MalformedFileError(
            str(csv), f"{reason} {detail}".strip(), int(found.group(1)) if found else None
        ) from exc


def _write_counts(con: duckdb.DuckDBPyConnection, kind: str, parquet: Path) -> Path:
    out = parquet.with_name(parquet.name.replace(".parquet", ".counts.parquet"))
    where = "WHERE confidence = 1" if kind == "human_labels" else ""
    con.execute(
        "COPY (SELECT label_mid, count(*)::BIGINT AS n, "
        "count(DISTINCT image_id)::BIGINT AS images "
        f"FROM read_parquet({_quote(str(parquet))}) {where} GROUP BY label_mid ORDER BY label_mid) "
        f"TO {_quote(str(out))} (FORMAT parquet)"
    )
    return out


def _scalar(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    row = con.execute(sql).fetchone()
    return int(row[0]) if row else 0


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _manifest_path(home: Path) -> Path:
    return parquet_dir(home) / "manifest.json"


def _load_manifest(home: Path) -> dict[str, dict[str, Any]]:
    path = _manifest_path(home)
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        log.warning("unreadable ingest manifest %s; re-ingesting", path)
        return {}
    return data if isinstance(data, dict) else {}


def _save_entry(home: Path, relpath: str, entry: dict[str, Any]) -> None:
    manifest = _load_manifest(home)
    manifest[relpath] = entry
    write_text_atomic(_manifest_path(home), json.dumps(manifest, indent=1, sort_keys=True))


def _entry(done: Ingested, home: Path, md5: str, size: int, mtime_ns: int) -> dict[str, Any]:
    root = parquet_dir(home)
    return {
        "md5": md5,
        "size": size,
        "mtime_ns": mtime_ns,
        "schema": SCHEMA_VERSION,
        "kind": done.kind,
        "split": done.split,
        "parquet": str(done.parquet.relative_to(root)),
        "counts": str(done.counts.relative_to(root)) if done.counts else None,
        "rows": done.rows,
    }


def _entry_to_ingested(file: OfficialFile, entry: dict[str, Any], home: Path) -> Ingested | None:
    if entry.get("schema") != SCHEMA_VERSION:
        return None
    root = parquet_dir(home)
    parquet = root / entry["parquet"]
    counts = root / entry["counts"] if entry.get("counts") else None
    if not parquet.exists() or (counts is not None and not counts.exists()):
        return None
    return Ingested(file.relpath, file.kind, file.split or "", parquet, counts, int(entry["rows"]))


#: bump when the keyed list's layout changes: older ones are rebuilt
KEYED_VERSION: Final = 2
#: rows per record batch of a keyed list (~23 MB of image columns at full size)
_KEYED_ROWS: Final = 65_536


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

    def part(self, start: int, n: int) -> tuple[pa.Table, np.ndarray]:
        """What ``selcopy.attach`` takes for the key rows ``start`` to ``start + n``."""
        return self.table, self.at[start : start + n]


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
    # one chunk: each slice of ``select_into`` takes its rows from it (``selcopy._gather``)
    table = pa.concat_tables([p for p in parts if p.num_rows] or [_empty()]).combine_chunks()
    return OwnImages(table, at_rows)


def _lookup(keyed: KeyedList, keys: np.ndarray) -> tuple[np.ndarray, pa.Table]:
    """Per key of ``keys`` (ascending), whether ``keyed`` has it (>= 0) or not (-1), and the
    image columns of those it has, in ``keys``' order: a task per batch that holds any."""
    at = np.full(len(keys), -1, np.int64)
    if not len(keys) or not keyed.first_keys:
        return at, _empty()
    firsts = np.asarray(keyed.first_keys, np.uint64)
    batch = np.searchsorted(firsts, keys, side="right") - 1
    listed = np.flatnonzero(batch >= 0)  # ``keys`` ascending: so are their batches
    cuts = np.flatnonzero(np.diff(batch[listed])) + 1
    tasks = [(int(batch[m[0]]), m) for m in np.split(listed, cuts) if len(m)]
    if not tasks:
        return at, _empty()

    def piece(task: tuple[int, np.ndarray]) -> tuple[np.ndarray, pa.Table]:
        b, mine = task
        with pa.memory_map(str(keyed.path)) as source:  # unmapped after this batch
            got = ipc.open_file(source).get_batch(b)
            held = to_numpy(got.column("image_key"))
            pos = np.minimum(np.searchsorted(held, keys[mine]), len(held) - 1)
            hit = held[pos] == keys[mine]
            out = pa.Table.from_batches([got]).take(from_numpy(pos[hit]))  # a copy
            del got, held
        return mine[hit], out

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
        f"FROM read_parquet({_quote(str(done.parquet))}) WHERE {valid_id('image_id')}"
    )
    firsts: list[int] = []
    with bound_memory(con, path.parent / ".duckdb-spill"), atomic_open(path, "wb") as sink:
        reader = con.sql(sql).to_arrow_reader(_KEYED_ROWS)
        with ipc.new_file(sink, reader.schema) as out:
            for batch in _batches(reader):
                firsts.append(int(batch.column(0)[0].as_py()))
                out.write_batch(batch)
    return firsts


def _batches(reader: pa.RecordBatchReader) -> Iterator[pa.RecordBatch]:
    """``reader``'s rows as batches of ``_KEYED_ROWS`` (the last may be smaller)."""
    held: list[pa.RecordBatch] = []
    n = 0
    for batch in reader:
        held.append(batch)
        n += batch.num_rows
        while n >= _KEYED_ROWS:
            table = pa.Table.from_batches(held, reader.schema)
            yield table.slice(0, _KEYED_ROWS).combine_chunks().to_batches()[0]
            held, n = table.slice(_KEYED_ROWS).to_batches(), n - _KEYED_ROWS
    if n:
        yield pa.Table.from_batches(held, reader.schema).combine_chunks().to_batches()[0]
