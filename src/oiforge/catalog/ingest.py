"""CSV → Parquet ingest with DuckDB: typed, renamed, sorted copies of the official files.

Each official CSV becomes ``<home>/parquet/<relpath>.parquet`` (snake_case columns plus
``split``), sorted by ``label_mid, image_id`` for label/box files (a class query reads only
the row groups of its classes) and by ``image_id`` for image metadata. A manifest maps each
source (by MD5) to its Parquet copy, so ingest is incremental and idempotent: a file is
converted again only when its bytes changed. Per-class counts are kept beside each copy.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import duckdb

from oiforge.atomic import write_text_atomic
from oiforge.catalog.fetch import file_md5, recorded_md5
from oiforge.catalog.files import OfficialFile
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
