"""What the sharded download and build share: backends, shard markers, one merged progress."""

from __future__ import annotations

import contextlib
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final, Literal

from oiforge.atomic import write_text_atomic
from oiforge.distributed.engine import (
    DEFAULT_MAX_RETRIES,
    Engine,
    LocalEngine,
    ShardEvent,
    ShardProgress,
)
from oiforge.errors import InvalidInputError

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
    backend: Backend, address: str | None, cpus_per_shard: float = 1.0
) -> Iterator[Engine]:
    """The engine for ``backend``; a Ray instance this call started is shut down after."""
    if backend == "local":
        yield LocalEngine()
        return
    from oiforge.distributed.ray_engine import RayEngine

    with RayEngine(address, cpus_per_shard, DEFAULT_MAX_RETRIES) as engine:
        yield engine


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
