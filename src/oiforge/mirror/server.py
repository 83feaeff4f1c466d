"""``MirrorServer``: a local HTTP server that impersonates the Open Images hosts.

Serves ``/openimages/<relpath>`` (GCS-like: ``x-goog-hash: md5=...``, ETag = MD5 hex),
``/open-images-dataset/<split>/<id>.jpg`` (S3-like ETag) and ``/flickr/<host>/<path>`` from a
directory made by :func:`oiforge.mirror.sample.make_sample`, with Range (206/416) and
Content-Length like the real hosts, and the faults of :mod:`oiforge.mirror.faults`.
``GET /_mirror/stats`` returns per-path request counts; ``POST /_mirror/reset`` clears
them and the burst state.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType

from aiohttp import web

from oiforge.errors import InvalidInputError, StageError
from oiforge.mirror.faults import FaultRule, load_rules, parse_flag
from oiforge.mirror.handlers import MirrorHandler

log = logging.getLogger(__name__)
FaultsArg = Path | str | Sequence[FaultRule | str] | None
FAULTS_FILE = "faults.yaml"


class MirrorState:
    """Per-path request counts and burst counters, shared between threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._bursts: Counter[tuple[str, str]] = Counter()

    def count(self, path: str) -> None:
        with self._lock:
            self._counts[path] += 1

    def burst_attempt(self, glob: str, path: str) -> int:
        """Number of this attempt (1-based) against a burst rule for ``path``."""
        with self._lock:
            self._bursts[(glob, path)] += 1
            return self._bursts[(glob, path)]

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()
            self._bursts.clear()


def resolve_rules(root: Path, faults: FaultsArg) -> list[FaultRule]:
    """Rules from ``faults``: None -> ``root/faults.yaml`` if present; a path; or rules/flags."""
    if faults is None:
        default = root / FAULTS_FILE
        return load_rules(default) if default.is_file() else []
    if isinstance(faults, str | Path):
        return load_rules(Path(faults))
    return [parse_flag(f) if isinstance(f, str) else f for f in faults]


def create_app(root: Path, rules: Sequence[FaultRule], state: MirrorState) -> web.Application:
    """The aiohttp application serving ``root`` with ``rules``."""
    handler = MirrorHandler(root, rules, state)
    app = web.Application()
    app.router.add_get("/_mirror/stats", handler.stats)
    app.router.add_post("/_mirror/reset", handler.reset)
    app.router.add_route("*", "/{tail:.*}", handler.serve)
    return app


async def _start(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise StageError(f"mirror cannot listen on {host}:{port}: {exc}") from exc
    bound = runner.addresses[0][1]
    return runner, int(bound)


def _check_root(root: Path) -> Path:
    if not root.is_dir():
        raise InvalidInputError(
            f"mirror root {root} is not a directory (create one with `oiforge mirror make-sample`)"
        )
    return root.resolve()


class MirrorServer:
    """The mirror on a background thread with its own event loop.

    ``with MirrorServer(root) as srv: srv.url`` -- ``faults=None`` uses ``root/faults.yaml``
    when present; pass a path, a list of :class:`FaultRule` or ``GLOB=KIND[:ARG]`` strings,
    or ``[]`` for none.
    """

    def __init__(
        self, root: str | Path, faults: FaultsArg = None, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.root = _check_root(Path(root))
        self.rules = resolve_rules(self.root, faults)
        self.host = host
        self.port = port
        self._state = MirrorState()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:41234`` (no trailing slash)."""
        return f"http://{self.host}:{self.port}"

    def request_counts(self) -> dict[str, int]:
        """Requests per URL path (query excluded) since start or the last reset."""
        return self._state.counts()

    def reset(self) -> None:
        """Clear request counts and burst state."""
        self._state.reset()

    def start(self) -> MirrorServer:
        ready = threading.Event()
        errors: list[BaseException] = []
        self._thread = threading.Thread(
            target=self._run, args=(ready, errors), name="oiforge-mirror", daemon=True
        )
        self._thread.start()
        ready.wait()
        if errors:
            raise errors[0]
        return self

    def _run(self, ready: threading.Event, errors: list[BaseException]) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        app = create_app(self.root, self.rules, self._state)
        try:
            self._runner, self.port = loop.run_until_complete(_start(app, self.host, self.port))
        except BaseException as exc:  # reported to the starting thread
            errors.append(exc)
            ready.set()
            loop.close()
            return
        ready.set()
        loop.run_forever()
        loop.run_until_complete(self._runner.cleanup())
        loop.close()

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=30)
        self._loop = self._thread = None

    def __enter__(self) -> MirrorServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:  # fmt: skip
        self.stop()


def serve(
    root: str | Path, host: str = "127.0.0.1", port: int = 8642, faults: FaultsArg = None,
    on_ready: Callable[[str, int], None] | None = None,
) -> None:  # fmt: skip
    """Serve until interrupted (the ``oiforge mirror serve`` command)."""
    base = _check_root(Path(root))
    rules = resolve_rules(base, faults)
    app = create_app(base, rules, MirrorState())
    asyncio.run(_serve_forever(app, host, port, lambda url: on_ready and on_ready(url, len(rules))))


async def _serve_forever(
    app: web.Application, host: str, port: int, on_ready: Callable[[str], object]
) -> None:
    runner, bound = await _start(app, host, port)
    on_ready(f"http://{host}:{bound}")
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
