"""The store and its download journal: what ``oiforge download`` writes and later stages read.

    store/<id[:2]>/<id>.jpg     one file per image (:func:`store_image_path`)
    store/journal.sqlite        one row per image (:data:`JOURNAL_SCHEMA`), SQLite in WAL mode

- writer: :class:`Journal` upserts :class:`JournalRow` batches, one transaction each, so a
  crash leaves whole batches or nothing; ``attempts`` adds up over runs.
- readers: :func:`read_journal` (the whole journal as a table), :func:`status_counts`,
  :func:`rotated_images` (what the build must not rotate again).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Final

import pyarrow as pa

from oiforge.contracts.selection import is_image_id
from oiforge.errors import StageError

log = logging.getLogger(__name__)

JOURNAL_NAME: Final = "journal.sqlite"

#: Download journal statuses. ``ok`` is the only one with bytes in the store.
DOWNLOAD_STATUSES: Final = (
    "ok",
    "missing",
    "placeholder",
    "bad_md5",
    "not_image",
    "too_large",
    "timeout",
    "error",
)  # plus "http_<code>"
#: Statuses worth another try on a plain rerun; the rest need ``retry_failed``.
TRANSIENT_STATUSES: Final = frozenset({"timeout", "error", "http_429"})


def is_transient(status: str) -> bool:
    """True for failures a plain rerun tries again (timeouts, 5xx, 429, connection errors)."""
    return status in TRANSIENT_STATUSES or (status.startswith("http_5") and len(status) == 8)


def store_path_parts(image_id: str) -> tuple[str, str]:
    """``store/<id[:2]>/<id>.jpg`` as (folder, file name); refuses anything but an ImageID."""
    if not is_image_id(image_id):
        raise ValueError(f"not an Open Images ImageID (16 hex chars): {image_id!r}")
    return image_id[:2], f"{image_id}.jpg"


def store_image_path(store: str | Path, image_id: str) -> Path:
    """Where the store keeps an image (``ValueError`` for anything but an ImageID)."""
    folder, name = store_path_parts(image_id)
    return Path(store) / folder / name


JOURNAL_SCHEMA: Final = pa.schema(
    [
        ("image_id", pa.string()),
        ("status", pa.string()),
        ("source", pa.string()),
        ("url", pa.string()),
        ("bytes", pa.int64()),
        ("sha256", pa.string()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("attempts", pa.int32()),
        ("error", pa.string()),
        ("started_at", pa.string()),
        ("finished_at", pa.string()),
        ("rotated", pa.int32()),  # degrees counter-clockwise applied to the stored pixels
    ]
)

_CREATE = """
CREATE TABLE IF NOT EXISTS journal (
    image_id TEXT PRIMARY KEY, status TEXT NOT NULL, source TEXT, url TEXT, bytes INTEGER,
    sha256 TEXT, width INTEGER, height INTEGER, attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT, started_at TEXT, finished_at TEXT, rotated INTEGER NOT NULL DEFAULT 0
)
"""
_UPSERT = """
INSERT INTO journal VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)
ON CONFLICT(image_id) DO UPDATE SET
    status=excluded.status, source=excluded.source, url=excluded.url, bytes=excluded.bytes,
    sha256=excluded.sha256, width=excluded.width, height=excluded.height,
    attempts=journal.attempts + excluded.attempts, error=excluded.error,
    started_at=excluded.started_at, finished_at=excluded.finished_at, rotated=excluded.rotated
"""


@dataclass(frozen=True)
class JournalRow:
    """One image's outcome, as stored."""

    image_id: str
    status: str
    source: str | None = None
    url: str | None = None
    bytes: int | None = None
    sha256: str | None = None
    width: int | None = None
    height: int | None = None
    attempts: int = 0
    error: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    rotated: int = 0


_FIELDS: Final = tuple(f.name for f in fields(JournalRow))


def _values(row: JournalRow) -> tuple[object, ...]:
    # Not dataclasses.astuple: that deep-copies every field (a third of the journal's cost).
    return tuple(getattr(row, name) for name in _FIELDS)


def journal_path(store: str | Path) -> Path:
    return Path(store) / JOURNAL_NAME


class Journal:
    """An open journal. Use as a context manager; ``append`` commits one batch atomically."""

    def __init__(self, store: str | Path) -> None:
        path = journal_path(store)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # One thread at a time (the run's journal thread, or the caller's), never two.
            self._db = sqlite3.connect(
                path, timeout=60.0, isolation_level=None, check_same_thread=False
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(_CREATE)
        except sqlite3.DatabaseError as exc:
            raise StageError(f"cannot open the download journal {path}: {exc}") from exc

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    def append(self, rows: Iterable[JournalRow]) -> None:
        """Upsert ``rows`` in one transaction (all or nothing)."""
        values = [_values(r) for r in rows]
        if not values:
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.executemany(_UPSERT, values)
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise

    def statuses(self) -> dict[str, str]:
        """``image_id -> status`` for every row."""
        return dict(self._db.execute("SELECT image_id, status FROM journal").fetchall())

    def counts(self) -> Mapping[str, int]:
        """Number of images per status."""
        q = "SELECT status, count(*) FROM journal GROUP BY status ORDER BY count(*) DESC"
        return dict(self._db.execute(q).fetchall())


def read_journal(store: str | Path) -> pa.Table:
    """The journal of ``store`` as a table (:data:`JOURNAL_SCHEMA`), sorted by image_id."""
    path = journal_path(store)
    if not path.is_file():
        raise StageError(f"no download journal at {path} (run `oiforge download` first)")
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=60.0)
    try:
        rows = _select_all(db)
    except sqlite3.DatabaseError as exc:
        raise StageError(f"cannot read the download journal {path}: {exc}") from exc
    finally:
        db.close()
    columns: list[tuple[object, ...]] = (
        list(zip(*rows, strict=True)) if rows else [() for _ in JOURNAL_SCHEMA]
    )
    return pa.table(
        [pa.array(c, type=f.type) for c, f in zip(columns, JOURNAL_SCHEMA, strict=True)],
        schema=JOURNAL_SCHEMA,
    )


def _select_all(db: sqlite3.Connection) -> list[tuple[object, ...]]:
    """Every row, or none while a first run is still creating the table."""
    known = db.execute("SELECT 1 FROM sqlite_master WHERE name = 'journal'").fetchall()
    if not known:
        return []
    cols = ", ".join(JOURNAL_SCHEMA.names)
    return db.execute(f"SELECT {cols} FROM journal ORDER BY image_id").fetchall()


def status_counts(store: str | Path) -> dict[str, int]:
    """Images per status in the journal of ``store`` (for ``oiforge download --status``)."""
    if not journal_path(store).is_file():
        raise StageError(f"no download journal at {journal_path(store)}")
    with Journal(store) as journal:
        return dict(journal.counts())


def rotated_images(store: str | Path) -> frozenset[str]:
    """ImageIDs whose stored pixels the downloader already turned upright (``rotated``).

    Their Open Images ``Rotation`` must not be applied a second time. Empty when the store has
    no journal (or one from before the column existed); an unreadable one is logged.
    """
    path = journal_path(store)
    if not path.is_file():
        return frozenset()
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            cols = {row[1] for row in con.execute("PRAGMA table_info(journal)")}
            if "rotated" not in cols:
                return frozenset()
            rows = con.execute("SELECT image_id FROM journal WHERE status = 'ok' AND rotated <> 0")
            return frozenset(str(r[0]) for r in rows)
        finally:
            con.close()
    except sqlite3.Error:
        log.warning("could not read %s; applying Rotation from the selection", path)
        return frozenset()
