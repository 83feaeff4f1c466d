"""Render every image task into the build cache: reuse what it already holds, the rest in a
process pool (:func:`render_all`).

:func:`render_images` is the build's per-image half as one public call: it plans a selection
(any subset of one: a shard, a retry list) and renders every image into a build cache folder,
reusing what the folder already holds. ``build_dataset`` finds these renders when pointed at
the same cache (``build_cache_dir(out)``), so a distributed build only has to call this per
shard and then ``build_dataset`` once.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import multiprocessing.context
import os
from collections.abc import Callable, Iterator
from concurrent.futures import (
    FIRST_COMPLETED,
    Future,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
    wait,
)
from dataclasses import dataclass, field
from multiprocessing import forkserver
from pathlib import Path

from oiforge.build.cache import (
    CACHE_NAME,
    cache_params,
    check_cache,
    prepare_cache,
    read_records,
    sample_path,
    sample_writer,
    staging_dir,
)
from oiforge.build.lock import file_sha256
from oiforge.build.plan import make_plan, read_selection
from oiforge.build.records import OK, ImageRecord, RenderOptions, RenderTask, task_hash
from oiforge.build.render import run_batch
from oiforge.contracts.excludes import ExcludeList
from oiforge.spec import BuildSpec

Progress = Callable[[int, int], None]
BATCH = 16
#: Imported once in the fork server, so each worker starts without importing them again.
_PRELOAD = ["oiforge.build.render"]


def is_reusable(rec: ImageRecord, task: RenderTask, cache: Path, *, trusted: bool = False) -> bool:
    """Whether a journal record answers ``task`` and its source and samples are still right.

    ``trusted``: the record was written during this build (by one of its shard jobs), whose
    worker hashed every sample from the bytes it wrote and journaled it only after the write
    completed; so neither its source nor its samples are read again, only each sample's size
    checked (a missing or torn file, e.g. one a retried job was rewriting, is rendered
    again). Any other record is checked in full: source and samples hashed."""
    try:
        if rec.task_hash != task_hash(task):
            return False
        if trusted:
            return all(
                _has_size(sample_path(cache, s.key), s.size) for s in rec.samples if s.status == OK
            )
        if file_sha256(Path(task.path)) != rec.source_sha256:
            return False
        return all(
            file_sha256(sample_path(cache, s.key)) == s.sha256
            for s in rec.samples
            if s.status == OK
        )
    except OSError:
        return False


def _has_size(path: Path, size: int) -> bool:
    return size > 0 and os.stat(path).st_size == size  # noqa: PTH116 (hot loop)


def _reusable(
    tasks: list[RenderTask], cache: Path, trust_run: str | None
) -> dict[str, ImageRecord]:
    """The journal's records that still answer their task, checked on a few threads (file
    reads and hashing release the GIL)."""
    journal = read_records(cache)
    found = [(t, journal[t.image_id]) for t in tasks if t.image_id in journal]
    if not found:
        return {}

    def check(pairs: list[tuple[RenderTask, ImageRecord]]) -> list[ImageRecord]:
        return [
            rec
            for task, rec in pairs
            if is_reusable(rec, task, cache, trusted=bool(trust_run) and rec.run == trust_run)
        ]

    threads = min(4, os.cpu_count() or 1)  # more only fight over the GIL (measured)
    step = max(64, -(-len(found) // (4 * threads)))  # a future per chunk, not per image
    chunks = [found[i : i + step] for i in range(0, len(found), step)]
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return {rec.image_id: rec for good in pool.map(check, chunks) for rec in good}


def _batches(tasks: list[RenderTask]) -> Iterator[list[RenderTask]]:
    for start in range(0, len(tasks), BATCH):
        yield tasks[start : start + BATCH]


def _context() -> multiprocessing.context.ForkServerContext:
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(_PRELOAD)
    return ctx


def start_workers_early(images: int, workers: int | None) -> None:
    """Start the fork server (it imports the renderer: ~0.3 s) while the caller plans, when
    ``images`` will go to a pool; a running one is kept."""
    if (workers or os.cpu_count() or 1) > 1 and images > BATCH:
        _context()
        forkserver.ensure_running()


def _run_pool(
    todo: list[RenderTask],
    opts: RenderOptions,
    cache: Path,
    workers: int,
    done: Callable[[list[ImageRecord]], None],
    run: str,
) -> None:
    with ProcessPoolExecutor(max_workers=workers, mp_context=_context()) as pool:
        pending: set[Future[list[ImageRecord]]] = set()
        for batch in _batches(todo):
            if len(pending) >= workers * 4:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    done(fut.result())
            pending.add(pool.submit(run_batch, batch, opts, str(cache), run))
        for fut in wait(pending).done:
            done(fut.result())


def render_all(
    tasks: list[RenderTask],
    opts: RenderOptions,
    cache: Path,
    workers: int | None = None,
    progress: Progress | None = None,
    *,
    run: str = "",
    trust_run: str | None = None,
) -> tuple[dict[str, ImageRecord], int]:
    """Image id → record for every task; also how many came from the cache.

    ``run`` tags the records rendered now; cached records tagged ``trust_run`` (this build's
    own shard jobs) skip the source re-hash (see ``is_reusable``)."""
    records = _reusable(tasks, cache, trust_run)
    todo = [t for t in tasks if t.image_id not in records]
    reused = len(records)

    def done(batch: list[ImageRecord]) -> None:
        records.update((r.image_id, r) for r in batch)
        if progress is not None:
            progress(len(records), len(tasks))

    n = workers or os.cpu_count() or 1
    if progress is not None:
        progress(reused, len(tasks))
    if n <= 1 or len(todo) <= BATCH:
        for batch in _batches(todo):
            done(run_batch(batch, opts, str(cache), run))
        sample_writer().flush()  # this process's journal syncs
    else:
        _run_pool(todo, opts, cache, n, done, run)
    return records, reused


@dataclass(frozen=True)
class RenderedImages:
    """What ``render_images`` produced: a record per image (failures are statuses)."""

    records: dict[str, ImageRecord] = field(default_factory=dict)
    reused: int = 0  # records found valid in the cache, not rendered again

    @property
    def ok(self) -> int:
        """Images that decoded and passed the checks."""
        return sum(1 for r in self.records.values() if r.status == OK)


def build_cache_dir(out: Path) -> Path:
    """The render cache ``build_dataset(out=out)`` reads (inside its staging directory)."""
    return staging_dir(out) / CACHE_NAME


def render_fingerprint(spec: BuildSpec) -> str:
    """A short digest of everything rendered bytes depend on (options, renderer version)."""
    return hashlib.sha256(cache_params(RenderOptions.from_spec(spec)).encode()).hexdigest()[:16]


def prepare_build_cache(cache: Path, spec: BuildSpec) -> None:
    """Make ``cache`` ready for ``spec``: kept if made with the same options, else emptied.

    Call it once before shard jobs start; ``render_images`` never empties a cache.
    """
    prepare_cache(cache, RenderOptions.from_spec(spec))


def render_images(
    selection: Path,
    store: Path,
    cache: Path,
    spec: BuildSpec,
    *,
    exclude: ExcludeList | None = None,
    workers: int | None = None,
    progress: Progress | None = None,
    run: str = "",
) -> RenderedImages:
    """Render the images of ``selection`` (from ``store``) into ``cache``; return their records.

    Raises ``InvalidInputError`` when ``cache`` was made with other options (it is never reset
    here, since other jobs may be writing into it).
    """
    opts = RenderOptions.from_spec(spec)
    check_cache(cache, opts)
    plan = make_plan(read_selection(selection), store, exclude or ExcludeList(), spec.task)
    records, reused = render_all(plan.tasks, opts, cache, workers, progress, run=run)
    return RenderedImages(records, reused)
