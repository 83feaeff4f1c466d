"""A progress board made of small files in each shard's folder, for shards on other machines.

A shard writes ``attempt-<n>.json`` (host, pid) when it starts and ``progress.json`` a few
times a second (temp + rename, no fsync: progress is a hint, never a record). The driver reads
them between waits. No actor, no sockets: it works on any file system every node mounts.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict
from pathlib import Path
from typing import Any, Final

from oiforge.distributed.engine import ShardEvent, ShardProgress

PROGRESS_FILE: Final = "progress.json"
ATTEMPT_GLOB: Final = "attempt-*.json"


def _write(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    tmp.replace(path)


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _int(value: object) -> int:
    if isinstance(value, int | float | str):
        try:
            return int(value)
        except (ValueError, OverflowError):
            return 0
    return 0


class FileBoard:
    """The shard side: one per shard folder (picklable: just a path)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def start(self, shard: str, host: str, pid: int, nice: int = 0) -> int:  # noqa: ARG002
        attempt = len(list(self.folder.glob(ATTEMPT_GLOB))) + 1
        _write(self.folder / f"attempt-{attempt}.json", {"host": host, "pid": pid, "nice": nice})
        return attempt

    def report(self, shard: str, progress: ShardProgress) -> None:  # noqa: ARG002
        _write(self.folder / PROGRESS_FILE, asdict(progress))


def reset_board(folder: Path) -> None:
    """Forget an earlier run's attempts and progress (before a shard is submitted again)."""
    for path in [*folder.glob(ATTEMPT_GLOB), folder / PROGRESS_FILE]:
        path.unlink(missing_ok=True)


class BoardReader:
    """The driver side: new ``started`` events and the latest progress of every shard."""

    def __init__(self, folders: dict[str, Path]) -> None:
        self.folders = folders
        self.attempts: dict[str, int] = {}

    def drain(self) -> tuple[dict[str, ShardProgress], list[ShardEvent]]:
        progress: dict[str, ShardProgress] = {}
        events: list[ShardEvent] = []
        for name, folder in self.folders.items():
            events += self._new_attempts(name, folder)
            data = _read(folder / PROGRESS_FILE)
            if data is not None:
                try:
                    progress[name] = ShardProgress(**data)
                except TypeError:
                    continue
        return progress, events

    def _new_attempts(self, name: str, folder: Path) -> list[ShardEvent]:
        events = []
        seen = self.attempts.get(name, 0)
        while (data := _read(folder / f"attempt-{seen + 1}.json")) is not None:
            seen += 1
            pid, nice = _int(data.get("pid")), _int(data.get("nice"))
            events.append(ShardEvent(name, "started", seen, str(data.get("host")), pid, nice=nice))
        self.attempts[name] = seen
        return events
