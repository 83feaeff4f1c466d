"""Bring shard outputs home: images into the main store, shard journals into the main journal.

Images move with a rename (same file system; a copy + rename + unlink across file systems), so
a shard never costs twice the space. The main journal is rebuilt, never edited in place: a new
SQLite file gets the old main rows, then every shard's rows (a shard's row wins for its
images, which no other shard has), and is renamed over ``store/journal.sqlite``. Rebuilding
is idempotent, so a driver that dies mid-merge simply merges again on the next run.
"""

from __future__ import annotations

import errno
import secrets
import shutil
import sqlite3
from collections.abc import Iterable
from pathlib import Path

from oiforge.atomic import fsync_dir, write_bytes_atomic
from oiforge.contracts.journal import Journal, journal_path, read_journal, store_image_path
from oiforge.contracts.selection import is_image_id
from oiforge.download import Writer
from oiforge.errors import StageError


def move_image(src: Path, dst: Path) -> None:
    """Rename ``src`` over ``dst`` (atomic); across file systems copy atomically, then unlink."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        src.replace(dst)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        write_bytes_atomic(dst, src.read_bytes())
        src.unlink()


INCOMING = ".incoming"


class HomeWriter:
    """A shard's store writes, sent to the same place in the main store: no move afterwards.

    ``inner`` writes atomically (temp + rename); its temp folder must be on the main store's
    file system (the shard folder is inside the store, so :func:`fresh_incoming` is)."""

    def __init__(self, shard_store: Path, store: Path, inner: Writer) -> None:
        self._shard_store, self._store, self._inner = shard_store, store, inner

    def write(self, path: Path, data: bytes) -> None:
        self._inner.write(self._store / path.relative_to(self._shard_store), data)


def fresh_incoming(folder: Path) -> Path:
    """The shard's temp folder, emptied: one process runs a shard at a time, so whatever an
    earlier attempt left there is debris of a killed worker."""
    incoming = folder / INCOMING
    shutil.rmtree(incoming, ignore_errors=True)
    incoming.mkdir(parents=True)
    return incoming


def images_home(shard_store: Path, store: Path) -> frozenset[str]:
    """Images the shard journal has as ``ok`` whose file is already in the main store."""
    return frozenset(ok_images(shard_store, home=store))


def publish_images(shard_store: Path, store: Path) -> int:
    """Move ``ok`` images left in the shard store into the main store; returns how many."""
    if not journal_path(shard_store).is_file() or not any(shard_store.glob("??/*.jpg")):
        return 0
    table = read_journal(shard_store)
    moved = 0
    for image_id, status in zip(
        table.column("image_id").to_pylist(), table.column("status").to_pylist(), strict=True
    ):
        if status != "ok" or not is_image_id(image_id):
            continue
        src = store_image_path(shard_store, image_id)
        if src.is_file():
            move_image(src, store_image_path(store, image_id))
            moved += 1
    return moved


def ok_images(store: Path, home: Path | None = None) -> set[str]:
    """ImageIDs the journal of ``store`` has as ``ok`` whose file is in ``home`` (default:
    ``store`` itself)."""
    if not journal_path(store).is_file():
        return set()
    table = read_journal(store)
    ids = table.column("image_id").to_pylist()
    statuses = table.column("status").to_pylist()
    where = home or store
    return {
        i
        for i, s in zip(ids, statuses, strict=True)
        if s == "ok" and is_image_id(i) and store_image_path(where, i).is_file()
    }


def _checkpoint(db_path: Path) -> None:
    """Fold the WAL into the file and drop it, so a rename over it cannot meet a stale WAL."""
    if not db_path.is_file():
        return
    db = sqlite3.connect(db_path, timeout=60.0, isolation_level=None)
    try:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.execute("PRAGMA journal_mode=DELETE")
    except sqlite3.DatabaseError as exc:
        raise StageError(f"cannot merge into the journal {db_path}: {exc}") from exc
    finally:
        db.close()


def _copy_rows(db: sqlite3.Connection, sources: Iterable[Path]) -> None:
    for n, source in enumerate(sources):
        if not source.is_file():
            continue
        _checkpoint(source)
        db.execute(f"ATTACH DATABASE ? AS src{n}", (f"file:{source}?mode=ro",))
        try:
            db.execute("BEGIN IMMEDIATE")
            db.execute(f"INSERT OR REPLACE INTO journal SELECT * FROM src{n}.journal")
            db.execute("COMMIT")
        finally:
            db.execute(f"DETACH DATABASE src{n}")


def merge_journals(store: Path, shard_stores: Iterable[Path], scratch: Path) -> None:
    """Rebuild ``store/journal.sqlite`` from itself and the shard journals (shards win)."""
    tmp_store = scratch / f".merge-{secrets.token_hex(4)}"
    try:
        Journal(tmp_store).close()  # the download stage's own schema
        new_db = journal_path(tmp_store)
        db = sqlite3.connect(f"file:{new_db}", uri=True, timeout=60.0, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=DELETE")
            _copy_rows(db, [journal_path(store), *map(journal_path, shard_stores)])
        except sqlite3.DatabaseError as exc:
            raise StageError(f"cannot merge the shard journals: {exc}") from exc
        finally:
            db.close()
        _checkpoint(journal_path(store))  # fails while another process has it open
        store.mkdir(parents=True, exist_ok=True)
        new_db.replace(journal_path(store))
        fsync_dir(store)
    finally:
        shutil.rmtree(tmp_store, ignore_errors=True)
