"""Run shard jobs: in this process one after another (``local``) or as Ray tasks (``ray``).

Both engines call the same shard function with the same job and a :class:`Reporter`; the only
difference is where it runs. Ray re-runs a task whose worker process died (``max_retries``);
a shard function is written to resume from its own journal, so a retry redoes only the
unfinished part. A shard that still fails is a value (:class:`ShardOutcome` with ``error``),
never an exception that stops the other shards.

Progress flows through a board: a plain :class:`Board` in this process; on a cluster small
files in each shard's folder (:mod:`oiforge.distributed.ray_engine`), because a Ray actor costs
seconds to start on every run. Each shard reports ``started`` (host, pid, attempt, niceness) and
throttled counters; the driver drains the board a few times a second into one progress bar.

Also what the sharded download and build share: the backend names, ``done.json`` shard
markers, the merged progress of all shards, a stopwatch of the driver's own work.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Generic, Literal, Protocol, TypeVar

from oiforge.atomic import write_text_atomic
from oiforge.errors import InvalidInputError, StageError, UserError

log = logging.getLogger(__name__)

J = TypeVar("J")
R = TypeVar("R")

POLL_S: Final = 0.25
REPORT_EVERY_S: Final = 0.25
DEFAULT_MAX_RETRIES: Final = 3


class BackendError(StageError):
    """The distributed backend could not start (Ray missing, cluster unreachable)."""


@dataclass(frozen=True)
class ShardProgress:
    """One shard's counters: images done of ``total``, ok, bytes, failures by status."""

    done: int = 0
    total: int = 0
    ok: int = 0
    bytes: int = 0
    failures: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class ShardEvent:
    """A shard started (again: ``attempt`` > 1 after its worker died), finished or failed."""

    shard: str  # "" for ``backend``: where the shards run (``detail``), once before they start
    kind: str  # started | finished | failed | skipped | backend
    attempt: int = 0
    host: str = ""
    pid: int = 0
    detail: str = ""
    nice: int = 0  # the worker's niceness (Ray starts its workers at 15 unless told not to)


@dataclass(frozen=True)
class ShardOutcome(Generic[R]):
    """What one shard job gave: its result, or the error that stopped it after all retries."""

    shard: str
    result: R | None
    error: str | None
    attempts: int


class Board:
    """Collects shard starts and progress; the driver drains it. A Ray actor on a cluster."""

    def __init__(self, listener: Callable[[], None] | None = None) -> None:
        self._listener = listener  # called after each change (in-process boards only)
        self._progress: dict[str, ShardProgress] = {}
        self._attempts: dict[str, int] = {}
        self._events: list[ShardEvent] = []

    def start(self, shard: str, host: str, pid: int, nice: int = 0) -> int:
        attempt = self._attempts.get(shard, 0) + 1
        self._attempts[shard] = attempt
        self._events.append(ShardEvent(shard, "started", attempt, host, pid, nice=nice))
        if self._listener is not None:
            self._listener()
        return attempt

    def report(self, shard: str, progress: ShardProgress) -> None:
        self._progress[shard] = progress
        if self._listener is not None:
            self._listener()

    def drain(self) -> tuple[dict[str, ShardProgress], list[ShardEvent], dict[str, int]]:
        events, self._events = self._events, []
        return dict(self._progress), events, dict(self._attempts)


class BoardLike(Protocol):
    def start(self, shard: str, host: str, pid: int, nice: int = 0) -> int: ...

    def report(self, shard: str, progress: ShardProgress) -> None: ...


class Reporter:
    """Handed to a shard function: ``started()`` once, then ``progress(...)`` as it goes."""

    def __init__(self, board: BoardLike, shard: str) -> None:
        self._board, self.shard = board, shard
        self._last = 0.0

    def started(self) -> None:
        self._board.start(self.shard, socket.gethostname(), os.getpid(), os.nice(0))

    def progress(self, progress: ShardProgress, final: bool = False) -> None:
        now = time.monotonic()
        if final or now - self._last >= REPORT_EVERY_S or progress.done >= progress.total:
            self._last = now
            self._board.report(self.shard, progress)


ShardFn = Callable[[J, Reporter], R]
Job = tuple[str, Path, J]  # shard name, its folder (on a file system every node sees), payload
Tick = Callable[[dict[str, ShardProgress], list[ShardEvent]], None]


class Engine(Protocol):
    """Runs shard jobs and returns one outcome per job, in the order given."""

    name: str
    description: str  # where the shards run, for the user ("started a local Ray instance ...")

    def cpus(self) -> int: ...

    def run(
        self, fn: ShardFn[J, R], jobs: Sequence[Job[J]], tick: Tick
    ) -> list[ShardOutcome[R]]: ...

    def join(self) -> None:
        """Wait until the engine, left with ``close_in_background``, has closed."""


def run_job(fn: ShardFn[J, R], job: J, reporter: Reporter) -> R:
    reporter.started()
    return fn(job, reporter)


class LocalEngine:
    """Shards one after another in this process: no Ray, same shard functions and files."""

    name = "local"
    description = "local: shards one after another in this process"

    def cpus(self) -> int:
        return os.cpu_count() or 1

    def join(self) -> None:
        """Nothing to wait for."""

    def run(self, fn: ShardFn[J, R], jobs: Sequence[Job[J]], tick: Tick) -> list[ShardOutcome[R]]:
        board = Board(lambda: tick(*board.drain()[:2]))
        outcomes: list[ShardOutcome[R]] = []
        for name, _, job in jobs:
            try:
                result: R | None = run_job(fn, job, Reporter(board, name))
                error = None
            except UserError:
                raise
            except Exception as exc:  # a shard's failure is a value; the others still run
                log.exception("shard %s failed", name)
                result, error = None, f"{type(exc).__name__}: {exc}"
            progress, events, attempts = board.drain()
            tick(progress, events)
            outcomes.append(ShardOutcome(name, result, error, attempts.get(name, 0)))
        return outcomes


Backend = Literal["local", "ray"]
BACKENDS: Final = ("local", "ray")
MARKER: Final = "done.json"
EventCallback = Callable[[ShardEvent], None]


def check_backend(backend: str, address: str | None) -> Backend:
    if backend not in BACKENDS:
        raise InvalidInputError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if address and backend != "ray":
        raise InvalidInputError("--ray-address needs --backend ray")
    return "ray" if backend == "ray" else "local"


@contextlib.contextmanager
def open_engine(
    backend: Backend,
    address: str | None,
    cpus_per_shard: float = 1.0,
    *,
    close_in_background: bool = False,
) -> Iterator[Engine]:
    """The engine for ``backend``; a Ray connection this call opened is closed after (on a
    thread with ``close_in_background``, when the block ended without an error: the caller
    goes on with its own work and calls ``engine.join()`` before it returns)."""
    if backend == "local":
        yield LocalEngine()
        return
    from oiforge.distributed.ray_engine import RayEngine

    with RayEngine(address, cpus_per_shard, DEFAULT_MAX_RETRIES, close_in_background) as engine:
        yield engine


def announce(engine: Engine, on_event: EventCallback | None) -> None:
    """Tell the caller where the shards run (a ``backend`` event), before any starts."""
    if on_event is not None:
        on_event(ShardEvent("", "backend", detail=engine.description))


def read_marker(folder: Path) -> dict[str, Any] | None:
    """A shard's ``done.json``, or None when absent or unreadable (the shard reruns)."""
    try:
        data = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_marker(folder: Path, data: dict[str, Any]) -> None:
    write_text_atomic(folder / MARKER, json.dumps(data, indent=2, sort_keys=True) + "\n")


class ProgressMerger:
    """Adds up the shards' counters; shards not yet reporting count with their expected size."""

    def __init__(self, expected: dict[str, int], on_event: EventCallback | None) -> None:
        self.expected = expected
        self.latest: dict[str, ShardProgress] = {}
        self.on_event = on_event
        self.started = time.monotonic()

    def update(self, progress: dict[str, ShardProgress], events: list[ShardEvent]) -> None:
        self.latest.update(progress)
        if self.on_event is not None:
            for event in events:
                self.on_event(event)

    def total(self) -> ShardProgress:
        failures: Counter[str] = Counter()
        done = total = ok = size = 0
        for name, expected in self.expected.items():
            p = self.latest.get(name)
            total += p.total if p is not None else expected
            if p is not None:
                done, ok, size = done + p.done, ok + p.ok, size + p.bytes
                failures.update(p.failures)
        return ShardProgress(done, total, ok, size, dict(failures))

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def tick(self, report: Callable[[ShardProgress, float], None] | None) -> Tick:
        """An engine's tick: take the shards' news, then ``report(total, elapsed_s)``."""

        def tick(progress: dict[str, ShardProgress], events: list[ShardEvent]) -> None:
            self.update(progress, events)
            if report is not None:
                report(self.total(), self.elapsed())

        return tick


class Stopwatch:
    """Named laps of the driver's own work (engine start, split, shards, merge) for stats."""

    def __init__(self) -> None:
        self.started = self._last = time.monotonic()
        self.laps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.monotonic()
        self.laps[name] = self.laps.get(name, 0.0) + now - self._last
        self._last = now

    def total(self) -> float:
        return time.monotonic() - self.started
