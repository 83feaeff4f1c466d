"""Fetch processes: a large run's images dealt round-robin to a few forked processes, each
with its own event loop, connections and write threads (one Python process tops out below
two cores: its GIL, the event loop and the hashing threads take turns). They store files and
append to the written log as the one-process loop does, and send every journal row back over
a pipe; the download's process counts, reports and journals them (one group commit for all).

A fetch process dies with the download's process (``PR_SET_PDEATHSIG``), so a SIGKILL of the
run leaves no orphan writing into the store; its renamed-but-unjournaled files are adopted by
the next run as before. A fetch process that dies on its own ends the run with a named reason
after its unreported images are journaled ``error`` (retried by the next run), never a hang.
Processes are forked, so only from a process with no other thread (a fork copies no thread
and may copy a lock another one held); otherwise the run fetches in its own process.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Sequence
from dataclasses import replace
from multiprocessing.connection import Connection
from typing import Final

from oiforge.contracts.journal import JournalRow
from oiforge.contracts.selection import ImageTask
from oiforge.download.config import DownloadConfig
from oiforge.download.fetch_loop import FetchJob, RowSink, StopCheck, fetch_items, new_event_loop
from oiforge.download.store import FileWriter, WrittenLog

log = logging.getLogger(__name__)

#: Auto mode: at most this many fetch processes, and only with this many images for each.
MAX_AUTO_PROCESSES: Final = 4
MIN_IMAGES_PER_PROCESS: Final = 250
_PR_SET_PDEATHSIG: Final = 1


def fetch_processes(config: DownloadConfig, n_items: int, custom_writer: bool) -> int:
    """How many fetch processes this run uses (1: fetch in this process)."""
    if custom_writer or not _can_fork():
        return 1
    if config.processes:
        wanted = config.processes
    else:
        wanted = min(os.cpu_count() or 1, MAX_AUTO_PROCESSES, n_items // MIN_IMAGES_PER_PROCESS)
    return max(1, min(wanted, n_items, config.connections))


def _can_fork() -> bool:
    """Linux (for the parent-death signal), and no other thread in this process."""
    return sys.platform == "linux" and threading.active_count() == 1


def share_config(config: DownloadConfig, n: int) -> DownloadConfig:
    """One process's part of the run's politeness bounds, so all together keep them."""
    rate = config.rate_per_host / n if config.rate_per_host is not None else None
    return replace(config, connections=max(1, config.connections // n),
                   per_host=max(1, config.per_host // n), rate_per_host=rate)  # fmt: skip


class FetchProcesses:
    """``n`` forked fetch processes over ``items`` (round-robin); a :class:`RowSource`."""

    def __init__(self, job: FetchJob, items: Sequence[ImageTask], n: int) -> None:
        self.total = len(items)
        self._shares = [items[k::n] for k in range(n)]
        self._job = replace(job, config=share_config(job.config, n))
        self._procs: list[multiprocessing.process.BaseProcess] = []
        self._conns: list[Connection] = []
        self._reported: list[set[str]] = [set() for _ in range(n)]
        self._ends: dict[int, str | None] = {}  # process → its own stop reason, once it ended
        self._failures: dict[int, str] = {}

    def __enter__(self) -> FetchProcesses:
        ctx, parent = multiprocessing.get_context("fork"), os.getpid()
        try:
            for k, share in enumerate(self._shares):
                recv, send = ctx.Pipe(duplex=False)
                proc = ctx.Process(target=_child, args=(self._job, share, send, parent),
                                   name=f"oiforge-fetch-{k + 1}", daemon=True)  # fmt: skip
                proc.start()
                send.close()
                self._procs.append(proc)
                self._conns.append(recv)
        except BaseException:
            self._kill()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._kill()

    async def run(self, on_row: RowSink, stop: StopCheck) -> str | None:
        loop, done = asyncio.get_running_loop(), asyncio.Event()
        open_conns = set(range(len(self._conns)))

        def readable(k: int) -> None:
            if not self._read(k, on_row):
                loop.remove_reader(self._conns[k].fileno())
                open_conns.discard(k)
                if not open_conns:
                    done.set()
            if stop():  # the journal failed: end the processes (their pipes close)
                for proc in self._procs:
                    proc.kill()

        for k, conn in enumerate(self._conns):
            loop.add_reader(conn.fileno(), readable, k)
        await done.wait()
        return self._finish(on_row)

    def _read(self, k: int, on_row: RowSink) -> bool:
        """Take what process ``k`` sent; False once its pipe is closed (it exited)."""
        conn = self._conns[k]
        try:
            while conn.poll():
                message = conn.recv()
                if isinstance(message, JournalRow):
                    self._reported[k].add(message.image_id)
                    on_row(message)
                else:
                    kind, text = message
                    if kind == "end":
                        self._ends[k] = text
                    else:
                        self._failures[k] = text
        except (EOFError, OSError):
            return False
        return True

    def _finish(self, on_row: RowSink) -> str | None:
        """Join the processes; journal the unreported images of any that died; the reason the
        run stopped early (a process's full disk, or a process that died), else None."""
        reasons = [text for text in self._ends.values() if text]
        for k, proc in enumerate(self._procs):
            proc.join()
            if k in self._ends:
                continue
            why = self._failures.get(k) or _exit_text(proc.exitcode)
            reason = f"fetch process {k + 1} of {len(self._procs)} died ({why})"
            log.error("%s; its unfinished images are left for the next run", reason)
            reasons.append(reason)
            for task in self._shares[k]:
                if task.image_id not in self._reported[k]:
                    on_row(JournalRow(task.image_id, "error", error=f"not attempted: {reason}"))
        return reasons[0] if reasons else None

    def _kill(self) -> None:
        for proc in self._procs:
            if proc.is_alive():
                proc.kill()
        for proc in self._procs:
            proc.join()
        for conn in self._conns:
            conn.close()
        self._conns = []


def _exit_text(code: int | None) -> str:
    if code is not None and code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


def _child(job: FetchJob, items: Sequence[ImageTask], conn: Connection, parent: int) -> None:
    """A fetch process: fetch ``items``, send each row, then ``("end", stop reason)``."""
    _die_with(parent)
    written = WrittenLog(job.run_dir)
    try:
        with asyncio.Runner(loop_factory=new_event_loop) as runner:
            stopped = runner.run(
                fetch_items(job, items, FileWriter(job.run_dir), written, conn.send, lambda: None)
            )
        conn.send(("end", stopped))
    except BaseException as exc:  # reported by the parent as this process's failure
        with contextlib.suppress(OSError):
            conn.send(("failed", f"{type(exc).__name__}: {exc}"))
        os._exit(1)
    finally:
        written.close()


def _die_with(parent: int) -> None:
    """Ask Linux to SIGKILL this process when its parent dies; exit now if it already did."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)
