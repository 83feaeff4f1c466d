"""Render every image task: reuse what the cache already holds, the rest in a process pool."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict
from pathlib import Path

from oiforge import __version__
from oiforge.build.lock import file_sha256
from oiforge.build.records import OK, ImageRecord, ImageTask, RenderOptions, task_hash
from oiforge.build.render import record_path, run_batch, sample_path

Progress = Callable[[int, int], None]
BATCH = 16


def prepare_cache(cache: Path, opts: RenderOptions) -> None:
    """Keep the cache only if it was made with the same options and tool version."""
    params = json.dumps({"options": asdict(opts), "tool": __version__}, sort_keys=True)
    marker = cache / "params.json"
    if marker.is_file() and marker.read_text(encoding="utf-8") == params:
        return
    shutil.rmtree(cache, ignore_errors=True)
    cache.mkdir(parents=True)
    marker.write_text(params, encoding="utf-8")


def cached_record(task: ImageTask, cache: Path) -> ImageRecord | None:
    """A finished record for ``task`` whose source and sample files still hash right."""
    path = record_path(cache, task.image_id)
    try:
        rec = ImageRecord.from_json(path.read_text(encoding="utf-8"))
        if rec.task_hash != task_hash(task) or file_sha256(Path(task.path)) != rec.source_sha256:
            return None
        for s in rec.samples:
            if s.status == OK and file_sha256(sample_path(cache, s.key)) != s.sha256:
                return None
    except (OSError, ValueError, TypeError, KeyError):
        return None
    return rec


def _batches(tasks: list[ImageTask]) -> Iterator[list[ImageTask]]:
    for start in range(0, len(tasks), BATCH):
        yield tasks[start : start + BATCH]


def _run_pool(
    todo: list[ImageTask],
    opts: RenderOptions,
    cache: Path,
    workers: int,
    done: Callable[[list[ImageRecord]], None],
) -> None:
    ctx = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        pending: set[Future[list[ImageRecord]]] = set()
        for batch in _batches(todo):
            if len(pending) >= workers * 4:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    done(fut.result())
            pending.add(pool.submit(run_batch, batch, opts, str(cache)))
        for fut in wait(pending).done:
            done(fut.result())


def render_all(
    tasks: list[ImageTask],
    opts: RenderOptions,
    cache: Path,
    workers: int | None = None,
    progress: Progress | None = None,
) -> tuple[dict[str, ImageRecord], int]:
    """Image id → record for every task; also how many came from the cache."""
    records: dict[str, ImageRecord] = {}
    todo = []
    for task in tasks:
        rec = cached_record(task, cache)
        if rec is None:
            todo.append(task)
        else:
            records[task.image_id] = rec
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
            done(run_batch(batch, opts, str(cache)))
    else:
        _run_pool(todo, opts, cache, n, done)
    return records, reused
