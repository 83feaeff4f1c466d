"""Per-run counters, progress snapshots and the final summary (+ ``stats.json``)."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from oiforge.contracts.journal import JournalRow


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


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
