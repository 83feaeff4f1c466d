"""One download run: plan what to fetch, fetch (``fetch_loop``, in this process or in fetch
processes: ``procs``), count, report progress, journal; the run's summary (also written as
``stats.json``). Every image ends as one journal row; nothing here raises for a single image.

Group commit: files are written without an fsync each; every ~50 ms the journal thread takes
the rows that arrived, makes the store durable with one ``sync_filesystem`` when any of them
is ``ok``, and only then commits them. So the journal never says ``ok`` for a file an OS crash
could lose, and a file renamed into place but not yet journaled is adopted by the next run
(``adopt``) or fetched again.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import logging
import sqlite3
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from oiforge.atomic import sync_filesystem, write_text_atomic
from oiforge.contracts.journal import Journal, JournalRow, is_transient
from oiforge.contracts.selection import ImageTask, read_selected_images
from oiforge.download.adopt import adopt_leftovers
from oiforge.download.config import DownloadConfig
from oiforge.download.fetch_image import now_iso
from oiforge.download.fetch_loop import FetchJob, InProcess, RowSource, new_event_loop
from oiforge.download.procs import FetchProcesses, fetch_processes
from oiforge.download.store import FileWriter, Store, Writer, check_local_folder
from oiforge.endpoints import Endpoints
from oiforge.errors import StageError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProgressUpdate:
    """A snapshot for progress bars: images done of ``total`` this run, bytes, failures."""

    total: int
    done: int
    ok: int
    bytes: int
    elapsed_s: float
    failures: dict[str, int]


@dataclass(frozen=True)
class DownloadSummary:
    """What one run did. ``statuses`` counts this run's outcomes; ``journal`` all of them."""

    selected: int  # distinct valid images in the selection
    skipped: int  # already ok (or failed, without retry_failed): no request made
    attempted: int
    statuses: dict[str, int]
    sources: dict[str, int]
    invalid_ids: int
    bytes: int
    requests: int
    duration_s: float
    journal: dict[str, int]
    stopped: str | None = None  # why the run stopped early (disk full), else None
    adopted: int = 0  # images an interrupted run stored but had not journaled (``adopt``)
    processes: int = 1  # fetch processes this run used (``procs``)

    @property
    def ok(self) -> int:
        return self.statuses.get("ok", 0)

    @property
    def failed(self) -> int:
        return self.attempted - self.ok

    def to_json(self) -> dict[str, Any]:
        rate = self.attempted / self.duration_s if self.duration_s > 0 else 0.0
        return {
            "selected": self.selected,
            "skipped": self.skipped,
            "count": self.attempted,
            "successes": self.ok,
            "failed": self.failed,
            "status_dict": self.statuses,
            "sources": self.sources,
            "invalid_ids": self.invalid_ids,
            "bytes": self.bytes,
            "requests": self.requests,
            "duration_s": round(self.duration_s, 3),
            "images_per_s": round(rate, 2),
            "mb_per_s": round(self.bytes / 1e6 / self.duration_s, 3) if self.duration_s else 0.0,
            "journal": self.journal,
            "stopped": self.stopped,
            "adopted": self.adopted,
            "processes": self.processes,
        }


@dataclass
class Tally:
    """Mutable counters the run updates as outcomes arrive."""

    total: int
    started: float = field(default_factory=time.monotonic)
    statuses: Counter[str] = field(default_factory=Counter)
    sources: Counter[str] = field(default_factory=Counter)
    bytes: int = 0
    requests: int = 0

    def add(self, row: JournalRow) -> None:
        self.statuses[row.status] += 1
        self.requests += row.attempts
        if row.status == "ok":
            self.sources[row.source or "?"] += 1
            self.bytes += row.bytes or 0

    def snapshot(self) -> ProgressUpdate:
        failures = {k: v for k, v in self.statuses.items() if k != "ok"}
        done = sum(self.statuses.values())
        elapsed = time.monotonic() - self.started
        return ProgressUpdate(self.total, done, self.statuses["ok"], self.bytes, elapsed, failures)


ProgressCallback = Callable[[ProgressUpdate], None]


@dataclass(frozen=True)
class FetchPlan:
    """The images this run fetches, and how many it skips."""

    todo: tuple[ImageTask, ...]
    skipped: int


def plan(
    tasks: tuple[ImageTask, ...], done: dict[str, str], store: Store, retry_failed: bool
) -> FetchPlan:
    """Skip ``ok`` images whose file exists, and permanent failures unless retrying them."""
    todo = []
    for task in tasks:
        status = done.get(task.image_id)
        if status is None or is_transient(status):
            todo.append(task)
        elif status == "ok":
            if not store.has_image(task.image_id):
                todo.append(task)
        elif retry_failed:
            todo.append(task)
    return FetchPlan(tuple(todo), len(tasks) - len(todo))


def download(
    selection: str | Path | pa.Table,
    store: str | Path,
    config: DownloadConfig | None = None,
    endpoints: Endpoints | None = None,
    progress: ProgressCallback | None = None,
    writer: Writer | None = None,
) -> DownloadSummary:
    """Fetch every selected image into ``store``; see the package docstring."""
    config = config or DownloadConfig()
    endpoints = endpoints or Endpoints.from_env()
    sel = read_selected_images(selection)
    the_store = Store(check_local_folder(store, "the store"))
    adopted = len(adopt_leftovers(the_store, sel.tasks, endpoints))
    run_dir = the_store.open_run()

    def fetch_all() -> DownloadSummary:
        with Journal(the_store.root) as journal:
            run = _Run(sel.tasks, sel.invalid_ids, the_store, journal, config, progress)
            items = run.prepare()
            job = FetchJob(config, endpoints, the_store.root, run_dir)
            n_procs = fetch_processes(config, len(items), custom_writer=writer is not None)
            with ExitStack() as stack:
                if n_procs > 1:  # started before this process has an event loop or threads
                    source: RowSource = stack.enter_context(FetchProcesses(job, items, n_procs))
                else:
                    source = InProcess(job, items, writer or FileWriter(run_dir))
                    stack.callback(source.close)
                with asyncio.Runner(loop_factory=new_event_loop) as runner:
                    summary = runner.run(run.main(source))
            return dataclasses.replace(summary, adopted=adopted, processes=n_procs)

    try:
        summary = _outside_event_loop(fetch_all)
    finally:
        the_store.close_run(run_dir)
    stats = {**summary.to_json(), "config": config.to_json(), "finished_at": now_iso()}
    write_text_atomic(the_store.root / "stats.json", _dumps(stats))
    return summary


def _outside_event_loop(fn: Callable[[], DownloadSummary]) -> DownloadSummary:
    """Run ``fn`` here, or in a worker thread when this thread already runs an event loop
    (Jupyter, an async web app), where ``asyncio.run`` would refuse."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return fn()
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="oiforge-download") as pool:
        return pool.submit(fn).result()


def _dumps(data: object) -> str:
    import json

    return json.dumps(data, indent=2, sort_keys=True) + "\n"


class _Run:
    """State of one run: the journal buffer, counters and the stop flag. Rows come from a
    :class:`RowSource` (fetch loops in this process or in fetch processes); this side
    counts them, reports progress and journals them in group commits."""

    def __init__(
        self,
        tasks: tuple[ImageTask, ...],
        invalid_ids: tuple[str, ...],
        store: Store,
        journal: Journal,
        config: DownloadConfig,
        progress: ProgressCallback | None,
    ) -> None:
        self.tasks, self.invalid_ids, self.store = tasks, invalid_ids, store
        self.journal, self.config, self.progress = journal, config, progress
        self.pending: list[JournalRow] = []
        self.stopped: str | None = None
        self.todo = FetchPlan((), 0)
        self.tally = Tally(0)

    def prepare(self) -> tuple[ImageTask, ...]:
        """Plan the run (journaling lost files and malformed ids first); the images to fetch."""
        statuses = self.journal.statuses()
        self.todo = plan(self.tasks, statuses, self.store, self.config.retry_failed)
        items = self.todo.todo
        items = items[: self.config.limit] if self.config.limit is not None else items
        self._reopen_lost(items, statuses)
        self._record_invalid()
        return items

    async def main(self, source: RowSource) -> DownloadSummary:
        self.tally = Tally(source.total)
        finished = asyncio.Event()
        flusher = asyncio.create_task(self._flush_loop(finished))
        try:
            stopped = await source.run(self._on_row, lambda: self.stopped)
            self.stopped = self.stopped or stopped
        finally:
            finished.set()
            await flusher
        return self._summary(self.todo, self.tally)

    def _on_row(self, row: JournalRow) -> None:
        self.pending.append(row)
        self.tally.add(row)
        if self.progress is not None:
            self.progress(self.tally.snapshot())

    async def _flush_loop(self, finished: asyncio.Event) -> None:
        """Commit pending rows every ~50 ms on a journal thread, so the loop never blocks."""
        loop = asyncio.get_running_loop()
        with ThreadPoolExecutor(1, thread_name_prefix="oiforge-journal") as thread:
            while True:
                last = finished.is_set()
                await loop.run_in_executor(thread, self._flush)
                if last:
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(finished.wait(), 0.05)

    def _flush(self) -> None:
        """Commit the rows that arrived; ``ok`` ones only after their files are durable."""
        rows, self.pending = self.pending, []
        if any(r.status == "ok" for r in rows):
            self._sync()
        try:
            self.journal.append(rows)
        except sqlite3.OperationalError as exc:
            self.stopped = self.stopped or f"cannot write the journal ({exc})"
            raise StageError(f"download stopped: cannot write the journal: {exc}") from exc

    def _reopen_lost(self, items: tuple[ImageTask, ...], statuses: dict[str, str]) -> None:
        """Images journaled ``ok`` whose file is gone: journaled (durably) as ``error`` before
        they are fetched again, so an OS crash between the new file's rename and the next sync
        never leaves the old ``ok`` row over a file that did not reach the disk."""
        lost = [
            JournalRow(t.image_id, "error", error="file missing from the store; fetching again")
            for t in items
            if statuses.get(t.image_id) == "ok"
        ]
        if lost:
            self.pending.extend(lost)
            self._flush()
            self._sync()

    def _sync(self) -> None:
        try:
            sync_filesystem(self.store.root)
        except OSError as exc:  # unjournaled: the next run adopts or fetches them again
            self.stopped = self.stopped or f"cannot sync the store ({exc})"
            raise StageError(f"download stopped: cannot sync the store: {exc}") from exc

    def _record_invalid(self) -> None:
        for raw in self.invalid_ids:
            shown = raw if len(raw) <= 64 else raw[:61] + "..."
            self.pending.append(
                JournalRow(shown, "error", error="malformed ImageID (not 16 hex chars)")
            )

    def _summary(self, todo: FetchPlan, tally: Tally) -> DownloadSummary:
        return DownloadSummary(
            selected=len(self.tasks),
            skipped=todo.skipped,
            attempted=sum(tally.statuses.values()),
            statuses=dict(tally.statuses),
            sources=dict(tally.sources),
            invalid_ids=len(self.invalid_ids),
            bytes=tally.bytes,
            requests=tally.requests,
            duration_s=time.monotonic() - tally.started,
            journal=dict(self.journal.counts()),
            stopped=self.stopped,
        )
