"""The fetch loop: many coroutines on one event loop (uvloop where installed) turn images into
journal rows, each handed to ``on_row`` as it ends; checksums and file writes run in a thread
pool (hashlib and the file calls release the GIL), JPEG work in the thread pool or a process
pool. Runs in the download's own process (:class:`InProcess`) or in each fetch process
(``procs``); the caller journals the rows.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from oiforge.contracts.journal import JournalRow
from oiforge.contracts.selection import ImageTask
from oiforge.download.config import DownloadConfig
from oiforge.download.fetch_image import ImageFetcher, Pools
from oiforge.download.http import Fetcher, create_session
from oiforge.download.store import Store, Writer, WrittenLog
from oiforge.endpoints import Endpoints

_WRITE_THREADS = 8

RowSink = Callable[[JournalRow], None]
StopCheck = Callable[[], "str | None"]


@dataclass(frozen=True)
class FetchJob:
    """What every fetch loop of a run shares: settings, URLs, the store and its temp folder."""

    config: DownloadConfig
    endpoints: Endpoints
    store_root: Path
    run_dir: Path


class RowSource(Protocol):
    """Fetches ``total`` images and hands each one's row to ``on_row``; stops early when
    ``stop`` returns a reason; returns why it stopped early itself (a full disk), else None."""

    total: int

    async def run(self, on_row: RowSink, stop: StopCheck) -> str | None: ...


class InProcess:
    """The fetch loop in this process (small runs, or a caller that already runs threads)."""

    def __init__(self, job: FetchJob, items: Sequence[ImageTask], writer: Writer) -> None:
        self.total = len(items)
        self._job, self._items, self._writer = job, items, writer
        self._written = WrittenLog(job.run_dir)

    async def run(self, on_row: RowSink, stop: StopCheck) -> str | None:
        return await fetch_items(self._job, self._items, self._writer, self._written, on_row, stop)

    def close(self) -> None:
        self._written.close()


async def fetch_items(
    job: FetchJob,
    items: Sequence[ImageTask],
    writer: Writer,
    written: WrittenLog | None,
    on_row: RowSink,
    stop: StopCheck,
) -> str | None:
    """Fetch ``items`` with up to ``connections`` coroutines; each row to ``on_row``. After a
    stop, the images not attempted get an ``error`` row (retried by the next run)."""
    config, stopped = job.config, None
    with _Pools(config) as pools:
        async with create_session(config) as session:
            fetcher = ImageFetcher(Fetcher(session, config), config, job.endpoints,
                                   Store(job.store_root), writer, pools, written)  # fmt: skip
            left = iter(items)

            def why() -> str | None:
                nonlocal stopped
                if fetcher.disk_error and stopped is None:
                    stopped = f"the store's disk is full ({fetcher.disk_error})"
                return stopped or stop()

            async def worker() -> None:
                for task in left:
                    on_row(await fetcher.fetch(task))
                    if why():
                        return

            await asyncio.gather(
                *(worker() for _ in range(min(config.connections, max(1, len(items)))))
            )
            for task in left:
                on_row(JournalRow(task.image_id, "error", error=f"not attempted: {why()}"))
    return stopped


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop where it is installed (less CPU per request), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class _Pools:
    """The write threads, and a process pool for pixel work made on first use."""

    def __init__(self, config: DownloadConfig) -> None:
        self.threads = ThreadPoolExecutor(_WRITE_THREADS, thread_name_prefix="oiforge-write")
        self.procs: Executor | None = None
        self.config = config

    def __enter__(self) -> Pools:
        return Pools(self.threads, self._procs)

    def _procs(self) -> Executor:
        if self.procs is None:
            if self.config.workers == 0:
                return self.threads
            ctx = multiprocessing.get_context("spawn")
            self.procs = ProcessPoolExecutor(self.config.workers, mp_context=ctx)
        return self.procs

    def __exit__(self, *exc: object) -> None:
        self.threads.shutdown(wait=True, cancel_futures=True)
        if self.procs is not None:
            self.procs.shutdown(wait=True, cancel_futures=True)
