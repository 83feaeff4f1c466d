"""The download stage's one frozen configuration object, with named defaults.

The CLI (or a caller) builds a :class:`DownloadConfig` once and passes it down whole; the
resolved config is written into ``stats.json`` next to the store.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Final, Literal

from oiforge import __version__
from oiforge.errors import InvalidInputError

Source = Literal["resized", "original", "thumbnail"]
SOURCES: Final[tuple[Source, ...]] = ("resized", "original", "thumbnail")

DEFAULT_MAX_BYTES: Final = 50 * 1024 * 1024
DEFAULT_CONNECTIONS: Final = 64
DEFAULT_PER_HOST: Final = 32
DEFAULT_CONNECT_TIMEOUT_S: Final = 10.0
DEFAULT_READ_TIMEOUT_S: Final = 30.0
DEFAULT_TOTAL_TIMEOUT_S: Final = 120.0
DEFAULT_RETRIES: Final = 3
DEFAULT_BACKOFF_S: Final = 0.5
DEFAULT_BACKOFF_MAX_S: Final = 30.0
USER_AGENT: Final = f"oiforge/{__version__} (+https://github.com/oiforge/oiforge)"


@dataclass(frozen=True)
class DownloadConfig:
    """Everything that shapes a download run. Frozen; build it once, pass it down whole."""

    sources: tuple[Source, ...] = SOURCES
    max_side: int | None = None  # resize so the longest side is at most this (keep aspect)
    jpeg_quality: int = 90
    max_bytes: int = DEFAULT_MAX_BYTES
    connections: int = DEFAULT_CONNECTIONS
    per_host: int = DEFAULT_PER_HOST
    rate_per_host: float | None = None  # requests per second per host; None = unlimited
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S
    read_timeout_s: float = DEFAULT_READ_TIMEOUT_S
    total_timeout_s: float = DEFAULT_TOTAL_TIMEOUT_S
    retries: int = DEFAULT_RETRIES  # extra tries per URL after the first
    backoff_s: float = DEFAULT_BACKOFF_S
    backoff_max_s: float = DEFAULT_BACKOFF_MAX_S
    retry_failed: bool = False  # also retry permanent failures (404, placeholder, ...)
    # Processes for pixel work; 0 = the thread pool. Pillow drops the GIL while it decodes,
    # resizes and encodes, so threads use both cores without shipping bodies between
    # processes: measured 1.1-1.3x faster and 35% less CPU than 2 processes (bench/RESULTS.md).
    workers: int = 0
    # Fetch processes (each its own event loop, connections and write threads; together they
    # keep ``connections``, ``per_host`` and ``rate_per_host``); 0 = auto: up to the CPU count
    # (at most 4) with at least 250 images each. Forked on Linux from a process without other
    # threads; elsewhere the run fetches in its own process.
    processes: int = 0
    user_agent: str = USER_AGENT
    placeholder_sha256: frozenset[str] = frozenset()  # extra known placeholder bodies
    limit: int | None = None  # fetch at most this many images this run (smoke tests)

    def __post_init__(self) -> None:
        _check_sources(self.sources)
        _check_range("max_side", self.max_side, 16, 1 << 16, optional=True)
        _check_range("jpeg_quality", self.jpeg_quality, 1, 100)
        _check_range("max_bytes", self.max_bytes, 1024, 1 << 40)
        _check_range("connections", self.connections, 1, 10_000)
        _check_range("per_host", self.per_host, 1, 10_000)
        _check_range("retries", self.retries, 0, 100)
        _check_range("workers", self.workers, 0, 1024)
        _check_range("processes", self.processes, 0, 256)
        for name in ("connect_timeout_s", "read_timeout_s", "total_timeout_s", "backoff_s"):
            if getattr(self, name) <= 0:
                raise InvalidInputError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.rate_per_host is not None and self.rate_per_host <= 0:
            raise InvalidInputError(f"rate_per_host must be > 0, got {self.rate_per_host}")

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict of the resolved config."""
        out = asdict(self)
        out["sources"] = list(self.sources)
        out["placeholder_sha256"] = sorted(self.placeholder_sha256)
        return out


def _check_sources(sources: tuple[str, ...]) -> None:
    if not sources:
        raise InvalidInputError("give at least one source (resized, original, thumbnail)")
    bad = [s for s in sources if s not in SOURCES]
    if bad or len(set(sources)) != len(sources):
        raise InvalidInputError(
            f"sources must be distinct names from {', '.join(SOURCES)}; got {', '.join(sources)}"
        )


def _check_range(name: str, value: int | None, lo: int, hi: int, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise InvalidInputError(f"{name} must be an integer in [{lo}, {hi}], got {value!r}")
