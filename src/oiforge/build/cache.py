"""The build cache: rendered sample JPEGs plus an append-only journal of image records.

Layout (inside the staging directory, removed once the dataset is renamed into place)::

    .cache/params.json                      options + renderer version the cache was made with
    .cache/samples/<key[:2]>/<key>.jpg      one rendered sample
    .cache/journal/<host>-<pid>-<token>.jsonl   one JSON ``ImageRecord`` a line, per process

Each process appends to its own journal (no locking, safe on shared file systems) once per
batch, after the batch's sample files are written; its background writer thread then
fdatasyncs it while the worker decodes the next batch (a failed sync fails the next batch; a
worker process finishes its syncs before it exits). On resume a torn or stale line costs
a re-render, never a wrong sample: a record is reused only when its task, source file and
sample files still hash right.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
from collections.abc import Iterable
from concurrent.futures import (
    Future,
    ThreadPoolExecutor,
)
from dataclasses import asdict
from pathlib import Path
from typing import Final

from oiforge import __version__
from oiforge.build.records import ImageRecord, RenderOptions
from oiforge.errors import InvalidInputError

#: Bumped whenever rendering changes its output bytes, so an old cache is never reused.
RENDER_VERSION: Final = 3
PARAMS: Final = "params.json"
#: The cache's folder inside the staging directory (left out of the lock, removed at the end).
CACHE_NAME: Final = ".cache"

_MADE_DIRS: set[str] = set()
_JOURNAL_NAME: dict[int, str] = {}  # pid → this process's journal file name


def staging_dir(out: Path) -> Path:
    """Where a build of ``out`` is assembled (and resumed from)."""
    return out.parent / f".{out.name}.oiforge-partial"


def cache_params(opts: RenderOptions) -> str:
    """The text of ``params.json`` for a cache rendered with ``opts``."""
    body = {"options": asdict(opts), "tool": __version__, "render": RENDER_VERSION}
    return json.dumps(body, sort_keys=True)


def prepare_cache(cache: Path, opts: RenderOptions) -> None:
    """Keep the cache only if it was made with the same options and renderer; else reset it."""
    marker = cache / PARAMS
    if marker.is_file() and marker.read_text(encoding="utf-8") == cache_params(opts):
        return
    shutil.rmtree(cache, ignore_errors=True)
    cache.mkdir(parents=True)
    marker.write_text(cache_params(opts), encoding="utf-8")


def check_cache(cache: Path, opts: RenderOptions) -> None:
    """Create a missing cache; refuse (never reset) one made with other options."""
    marker = cache / PARAMS
    if not marker.is_file():
        prepare_cache(cache, opts)
    elif marker.read_text(encoding="utf-8") != cache_params(opts):
        raise InvalidInputError(
            f"the build cache {cache} was made with other options; "
            "prepare it with the build's options first (or remove it)"
        )


def sample_path(cache: Path, key: str) -> Path:
    """Where a rendered sample lives in the build cache."""
    return Path(f"{cache}/samples/{key[:2]}/{key}.jpg")  # pathlib's ``/`` is slow in hot loops


def write_cache_file(path: Path, data: bytes) -> None:
    """Write in place, no temp file, no fsync: a torn sample fails its hash on resume and is
    rendered again; the build syncs once before the finished dataset is renamed into place."""
    parent = os.path.dirname(path)  # noqa: PTH120 (hot path: plain strings are cheaper)
    if parent not in _MADE_DIRS:
        os.makedirs(parent, exist_ok=True)  # noqa: PTH103
        _MADE_DIRS.add(parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    except FileNotFoundError:  # the folder was removed since we made it (an earlier build)
        os.makedirs(parent, exist_ok=True)  # noqa: PTH103
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        _write_all(fd, data)
    finally:
        os.close(fd)


class SampleWriter:
    """Writes sample files on one background thread, so a slow file system (file creation can
    block for milliseconds on a busy disk) overlaps with decoding and encoding the next ones.
    ``flush`` waits for every write and re-raises the first failure."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="oiforge-writer")
        self._pending: list[Future[None]] = []

    def write(self, path: Path, data: bytes) -> None:
        self._pending.append(self._pool.submit(write_cache_file, path, data))

    def flush(self) -> None:
        pending, self._pending = self._pending, []
        for fut in pending:
            fut.result()

    def sync_later(self, fd: int) -> None:
        """fdatasync and close ``fd`` on the writer thread, after every write queued so far."""
        self._pending.append(self._pool.submit(_sync_and_close, fd))


def _sync_and_close(fd: int) -> None:
    try:
        os.fdatasync(fd)
    finally:
        os.close(fd)


_WRITERS: dict[int, SampleWriter] = {}


def sample_writer() -> SampleWriter:
    """This process's background writer (a forked child makes its own)."""
    pid = os.getpid()
    if pid not in _WRITERS:
        _WRITERS[pid] = SampleWriter()
    return _WRITERS[pid]


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _journal_name() -> str:
    pid = os.getpid()
    if pid not in _JOURNAL_NAME:  # a forked child must not share its parent's file
        _JOURNAL_NAME[pid] = f"{socket.gethostname()}-{pid}-{secrets.token_hex(4)}.jsonl"
    return _JOURNAL_NAME[pid]


def append_records(
    cache: Path, records: Iterable[ImageRecord], writer: SampleWriter | None = None
) -> None:
    """Append records to this process's journal in one write, then make them durable: now,
    or with ``writer`` on its thread (the caller flushes it before relying on durability)."""
    data = "".join(r.to_json() + "\n" for r in records).encode()
    if not data:
        return
    folder = cache / "journal"
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / _journal_name(), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        _write_all(fd, data)
    except BaseException:
        os.close(fd)
        raise
    if writer is not None:
        writer.sync_later(fd)
    else:
        _sync_and_close(fd)


def read_records(cache: Path) -> dict[str, ImageRecord]:
    """Image id → its latest readable record (older journals first; torn lines skipped)."""
    folder = cache / "journal"
    try:
        files = sorted(folder.iterdir(), key=lambda p: (p.stat().st_mtime_ns, p.name))
    except OSError:
        return {}
    records: dict[str, ImageRecord] = {}
    for path in files:
        for line in path.read_bytes().splitlines():
            try:
                rec = ImageRecord.from_json(line.decode())
            except (ValueError, TypeError, KeyError, AttributeError, UnicodeDecodeError):
                continue
            records[rec.image_id] = rec
    return records
