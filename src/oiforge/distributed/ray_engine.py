"""The Ray engine: each shard job is a Ray task; progress comes back through small files.

``address=None`` joins the cluster named by ``$RAY_ADDRESS`` if set (as Ray's own tools do,
e.g. inside a Ray job), else starts a local Ray instance and stops it after, even when a
cluster runs on this machine (Ray's own default would silently join the one ``ray start`` last
started here). ``"auto"`` or ``"ray://host:10001"`` joins a running cluster. A process
already connected to Ray keeps its connection; ``description`` says which cluster was used.
Every node needs oiforge installed and the same paths (a shared file system for the store and
the work folders). A task whose worker process dies is re-run by Ray up to ``max_retries``
times; exceptions raised by the shard function itself are not retried (they would fail the
same way again).

The progress board is made of small files in each shard's folder: a shard writes
``attempt-<n>.json`` (host, pid) when it starts and ``progress.json`` a few times a second
(temp + rename, no fsync: progress is a hint, never a record). The driver reads them between
waits. No actor, no sockets: it works on any file system every node mounts.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import threading
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, Final

from oiforge.distributed.engine import (
    DEFAULT_MAX_RETRIES,
    POLL_S,
    BackendError,
    Job,
    Reporter,
    ShardEvent,
    ShardFn,
    ShardOutcome,
    ShardProgress,
    Tick,
    run_job,
)

log = logging.getLogger(__name__)

#: Ray starts its workers at nice 15 so that its own daemons stay responsive. Here a shard is
#: the work itself and the plain download runs at nice 0; at 15, a shard on a machine with
#: anything else busy (a server, the driver, other users) lost up to half its speed
#: (bench/RESULTS.md). A Ray instance this engine starts runs its workers at 0; a cluster you
#: start yourself: ``RAY_worker_niceness=0 ray start --head``.
NICENESS_ENV: Final = "RAY_worker_niceness"


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise BackendError("the ray backend needs Ray: pip install 'oiforge[distributed]'") from exc
    return ray


class RayEngine:
    """Shard jobs as Ray tasks (``num_cpus`` each), retried when their worker dies."""

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        cpus_per_shard: float = 1.0,
        max_retries: int = DEFAULT_MAX_RETRIES,
        close_in_background: bool = False,
    ) -> None:
        self.address = address
        self.cpus_per_shard = cpus_per_shard
        self.max_retries = max_retries
        self.close_in_background = close_in_background
        self._started_here = False
        self._closing: threading.Thread | None = None
        self.description = ""  # which cluster the run uses, for the user (set on enter)

    def __enter__(self) -> RayEngine:
        ray = _import_ray()
        if ray.is_initialized():
            self.description = f"this process's Ray connection ({_cluster_size(ray)})"
            return self
        address = resolve_address(self.address)
        try:
            with _env_default(NICENESS_ENV, "0"):  # read by a raylet started here, if any
                ray.init(
                    address=address,
                    include_dashboard=False,
                    log_to_driver=False,
                    configure_logging=False,
                )
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = "a new local instance" if address == LOCAL_ADDRESS else address
            raise BackendError(f"cannot start or join the Ray cluster ({where}): {exc}") from exc
        self._started_here = True
        self.description = _describe(ray, address, self.address)
        log.info("ray: %s", self.description)
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if not self._started_here:
            return
        self._started_here = False
        shutdown = _import_ray().shutdown
        if self.close_in_background and exc_type is None:
            # Disconnecting waits ~0.3 s on Ray's RPC threads (no CPU, GIL released): the
            # caller's own work goes on meanwhile; ``join`` waits for it.
            self._closing = threading.Thread(target=shutdown, name="oiforge-ray-shutdown")
            self._closing.start()
        else:
            shutdown()

    def join(self) -> None:
        """Wait until a background disconnect (``close_in_background``) has finished."""
        if self._closing is not None:
            self._closing.join()
            self._closing = None

    def cpus(self) -> int:
        ray = _import_ray()
        return max(1, int(ray.cluster_resources().get("CPU", os.cpu_count() or 1)))

    def run(
        self, fn: ShardFn[Any, Any], jobs: Sequence[Job[Any]], tick: Tick
    ) -> list[ShardOutcome[Any]]:
        ray = _import_ray()
        task = ray.remote(run_job).options(
            num_cpus=self.cpus_per_shard, max_retries=self.max_retries, retry_exceptions=False
        )
        refs = {}
        for name, folder, job in jobs:
            reset_board(folder)
            refs[task.remote(fn, job, Reporter(FileBoard(folder), name))] = name
        reader = BoardReader({name: folder for name, folder, _ in jobs})
        done: dict[str, tuple[Any, str | None]] = {}
        warned = False
        while refs:
            ready, _ = ray.wait(list(refs), num_returns=len(refs), timeout=POLL_S)
            for ref in ready:
                done[refs.pop(ref)] = _result(ray, ref)
            progress, events = reader.drain()
            warned = warned or _warn_if_niced(events)
            tick(progress, events)
        return [
            ShardOutcome(name, *done[name], reader.attempts.get(name, 0)) for name, _, _ in jobs
        ]


#: ``ray.init`` address that always starts a new local instance.
LOCAL_ADDRESS: Final = "local"
ADDRESS_ENV: Final = "RAY_ADDRESS"


def resolve_address(address: str | None) -> str:
    """``--ray-address``, else ``$RAY_ADDRESS``, else ``"local"`` (never Ray's own default of
    joining whatever cluster this machine last started)."""
    if address:
        return address
    return os.environ.get(ADDRESS_ENV, "").strip() or LOCAL_ADDRESS


def _cluster_size(ray: Any) -> str:
    try:
        gcs = ray.get_runtime_context().gcs_address
        nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
        cpus = int(ray.cluster_resources().get("CPU", 0))
    except Exception:  # a Ray Client connection answers less; the address is enough
        return "details unavailable"
    return f"GCS {gcs}, {nodes} node{'s' if nodes != 1 else ''}, {cpus} CPUs"


def _describe(ray: Any, address: str, given: str | None) -> str:
    size = _cluster_size(ray)
    if address == LOCAL_ADDRESS:
        return f"started a local Ray instance ({size}); it stops when the run ends"
    how = "--ray-address" if given else f"${ADDRESS_ENV}"
    return f"joined the Ray cluster at {address} (from {how}; {size})"


def _result(ray: Any, ref: Any) -> tuple[Any, str | None]:
    """The task's value, or its error as text (after Ray's retries ran out)."""
    try:
        return ray.get(ref), None
    except ray.exceptions.RayError as exc:
        first = str(exc).strip().splitlines()
        log.warning("shard task failed: %s", exc)
        return None, f"{type(exc).__name__}: {first[-1] if first else ''}"[:500]


@contextlib.contextmanager
def _env_default(name: str, value: str) -> Iterator[None]:
    """``name=value`` in the environment for the block, unless the user set it already."""
    if name in os.environ:
        yield
        return
    os.environ[name] = value
    try:
        yield
    finally:
        os.environ.pop(name, None)


def _warn_if_niced(events: list[ShardEvent]) -> bool:
    niced = [e for e in events if e.kind == "started" and e.nice > 0]
    if niced:
        log.warning(
            "shard %s runs at nice %d on %s (Ray's default for workers): it gets little CPU "
            "beside busy processes; start the cluster with %s=0",
            niced[0].shard, niced[0].nice, niced[0].host, NICENESS_ENV,
        )  # fmt: skip
    return bool(niced)


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
