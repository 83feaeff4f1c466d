"""``run_download_sharded``: the download stage over shards of the selection, local or on Ray.

Layout under the store (which every node must see, e.g. a shared file system)::

    store/<id[:2]>/<id>.jpg          the images (every shard writes its own straight here)
    store/journal.sqlite             the merged journal (rebuilt after every run)
    store/stats.json                 merged stats + per-shard stats + driver timings + backend
    store/.shards/<k>-of-<n>/        selection.parquet, store/ (the shard's own journal),
                                     .incoming/ (temp files), done.json (marker, written last)

Each shard job calls :func:`oiforge.download.download` on its shard selection and its own
shard store, exactly as the local path does, with a writer that puts each image at its place
in the main store (temp file in the shard folder, fsync, rename), so nothing is moved after.
A rerun skips shards whose marker names the same shard content and says complete; the others
resume from their own journals (an image their journal has as ``ok`` and the main store has is
not fetched again). Images already ``ok`` in the main journal are not fetched again either.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from oiforge.atomic import write_text_atomic
from oiforge.contracts.journal import is_transient, read_journal, status_counts
from oiforge.contracts.selection import count_selected_images, is_image_id
from oiforge.distributed.engine import (
    Backend,
    EventCallback,
    ProgressMerger,
    Reporter,
    ShardOutcome,
    ShardProgress,
    Stopwatch,
    announce,
    check_backend,
    open_engine,
    read_marker,
    write_marker,
)
from oiforge.distributed.merge import (
    HomeWriter,
    fresh_incoming,
    images_home,
    merge_journals,
    ok_images,
    publish_images,
)
from oiforge.distributed.shards import (
    Shard,
    auto_num_shards,
    check_num_shards,
    remove_other_layouts,
    shard_of,
    split_selection,
)
from oiforge.download import (
    DownloadConfig,
    DownloadSummary,
    FileWriter,
    ProgressUpdate,
    Writer,
    check_local_folder,
    download,
)
from oiforge.endpoints import Endpoints

log = logging.getLogger(__name__)

SHARDS_DIR: Final = ".shards"
ProgressCallback = Callable[[ProgressUpdate], None]


@dataclass(frozen=True)
class DownloadJob:
    """One shard's work, picklable for a Ray task."""

    shard: Shard
    store: Path
    config: DownloadConfig
    endpoints: Endpoints
    settled: frozenset[str]  # already ok in the main store: not fetched again
    writer: Writer | None = None

    @property
    def folder(self) -> Path:
        return self.shard.path.parent

    @property
    def shard_store(self) -> Path:
        return self.folder / "store"


@dataclass(frozen=True)
class ShardDone:
    """What a shard job reports back: the stage's summary, moved images, completeness."""

    summary: DownloadSummary
    published: int  # images of this shard now in the main store
    pending: int  # valid images of the shard that a rerun would still fetch
    settled: int  # images left out because the main store already had them


def download_shard(job: DownloadJob, reporter: Reporter) -> ShardDone:
    """Run the download stage on one shard, its images written straight into the main store
    (its journal stays in the shard store); write its marker."""
    table = _without(pq.read_table(job.shard.path), job.settled)
    home = images_home(job.shard_store, job.store)  # an earlier attempt's, before it died
    incoming = fresh_incoming(job.folder)
    writer = HomeWriter(job.shard_store, job.store, job.writer or FileWriter(incoming))

    def on_progress(u: ProgressUpdate) -> None:
        reporter.progress(ShardProgress(u.done, u.total, u.ok, u.bytes, u.failures))

    try:
        summary = download(
            _without(table, home), job.shard_store, job.config, job.endpoints,
            progress=on_progress, writer=writer,
        )  # fmt: skip
    finally:
        shutil.rmtree(incoming, ignore_errors=True)
    failures = {k: v for k, v in summary.statuses.items() if k != "ok"}
    n = summary.attempted
    reporter.progress(ShardProgress(n, n, summary.ok, summary.bytes, failures), final=True)
    moved = publish_images(job.shard_store, job.store)  # only an older layout left any there
    pending, failed = _pending(table, job.shard_store, job.config.retry_failed)
    settled = len(job.settled) + len(home)
    marker = {"key": job.shard.key, "complete": pending == 0 and not summary.stopped}
    stats = {"pending": pending, "failed": failed, "settled": settled}
    write_marker(job.folder, {**marker, **stats, "stats": summary.to_json()})
    return ShardDone(summary, summary.ok + moved, pending, settled)


def _without(table: pa.Table, image_ids: frozenset[str]) -> pa.Table:
    """The rows of ``table`` whose ImageID is not one of ``image_ids``."""
    if not image_ids:
        return table
    ids = table.column("image_id").cast(pa.string())
    keep = pc.invert(pc.is_in(ids, value_set=pa.array(sorted(image_ids), pa.string())))
    return table.filter(pc.fill_null(keep, True))


def _pending(table: pa.Table, shard_store: Path, retry_failed: bool) -> tuple[int, int]:
    """Valid images of the shard with no final journal row yet, and those failed for good."""
    statuses: dict[str, str] = {}
    journal = read_journal(shard_store)
    for i, s in zip(
        journal.column("image_id").to_pylist(), journal.column("status").to_pylist(), strict=True
    ):
        statuses[i] = s
    ids = {i for i in table.column("image_id").cast(pa.string()).to_pylist() if is_image_id(i)}

    def final(status: str | None) -> bool:
        if status is None or is_transient(status):
            return False
        return status == "ok" or not retry_failed

    pending = sum(1 for i in ids if not final(statuses.get(i)))
    failed = sum(1 for i in ids if statuses.get(i) not in (None, "ok"))
    return pending, failed


def run_download_sharded(
    selection: str | Path | pa.Table,
    store: str | Path,
    config: DownloadConfig | None = None,
    endpoints: Endpoints | None = None,
    progress: ProgressCallback | None = None,
    writer: Writer | None = None,
    *,
    backend: Backend | str = "local",
    address: str | None = None,
    num_shards: int | None = None,
    on_event: EventCallback | None = None,
) -> DownloadSummary:
    """:func:`oiforge.download.download` over shards; ``backend="local"`` without
    ``num_shards`` is exactly the local call. See the module docstring for the layout."""
    chosen = check_backend(str(backend), address)
    if num_shards is not None:
        check_num_shards(num_shards)
    root = check_local_folder(store, "the store")
    config = config or DownloadConfig()
    endpoints = endpoints or Endpoints.from_env()
    if chosen == "local" and num_shards is None:
        return download(selection, root, config, endpoints, progress=progress, writer=writer)
    work = root / SHARDS_DIR
    sel_path = _selection_file(selection, work)
    clock = Stopwatch()
    with open_engine(chosen, address) as engine:
        announce(engine, on_event)
        cluster = engine.description
        clock.lap("engine_start")
        n = (
            num_shards
            if num_shards is not None
            else auto_num_shards(count_selected_images(sel_path), engine.cpus())
        )
        remove_other_layouts(work, n)
        shards = split_selection(sel_path, work, n)
        settled = _settled_by_shard(root, n)
        jobs, skipped = _plan_jobs(shards, root, config, endpoints, settled, writer)
        clock.lap("split")
        merger = ProgressMerger({j.shard.name: j.shard.images for j in jobs}, on_event)
        outcomes = engine.run(
            download_shard,
            [(j.shard.name, j.shard.path.parent, j) for j in jobs],
            merger.tick(_report(progress)),
        )
        clock.lap("shards")
    clock.lap("engine_stop")
    merge_journals(root, [s.path.parent / "store" for s in shards], work)
    summary = _summarize(outcomes, skipped, root, clock.total())
    clock.lap("merge")
    _write_stats(root, summary, config, (chosen, cluster), n, outcomes, clock.laps)
    return summary


def _selection_file(selection: str | Path | pa.Table, work: Path) -> Path:
    if not isinstance(selection, pa.Table):
        return Path(selection)
    path = work / "selection.parquet"
    work.mkdir(parents=True, exist_ok=True)
    tmp = work / ".selection.parquet.tmp"
    pq.write_table(selection, tmp)
    tmp.replace(path)
    return path


def _settled_by_shard(store: Path, num_shards: int) -> dict[int, frozenset[str]]:
    by_shard: dict[int, set[str]] = {}
    for image_id in ok_images(store):
        by_shard.setdefault(shard_of(image_id, num_shards), set()).add(image_id)
    return {k: frozenset(v) for k, v in by_shard.items()}


def _plan_jobs(
    shards: list[Shard],
    store: Path,
    config: DownloadConfig,
    endpoints: Endpoints,
    settled: dict[int, frozenset[str]],
    writer: Writer | None,
) -> tuple[list[DownloadJob], list[dict[str, Any]]]:
    """Jobs for shards still to do; markers of the complete ones (skipped)."""
    jobs, skipped = [], []
    limits = _split_limit(config.limit, [s.images for s in shards])
    for shard, limit in zip(shards, limits, strict=True):
        marker = read_marker(shard.path.parent)
        if _is_complete(marker, shard, config.retry_failed):
            assert marker is not None
            skipped.append(marker)
            continue
        cfg = dataclasses.replace(config, limit=limit) if config.limit is not None else config
        jobs.append(
            DownloadJob(shard, store, cfg, endpoints, settled.get(shard.index, frozenset()), writer)
        )
    return jobs, skipped


def _is_complete(marker: dict[str, Any] | None, shard: Shard, retry_failed: bool) -> bool:
    if marker is None or marker.get("key") != shard.key or marker.get("complete") is not True:
        return False
    return not (retry_failed and marker.get("failed"))


def _split_limit(limit: int | None, sizes: list[int]) -> list[int | None]:
    """A run-wide ``limit`` shared out over the shards in order."""
    if limit is None:
        return [None] * len(sizes)
    out: list[int | None] = []
    left = limit
    for size in sizes:
        share = min(size, left)
        out.append(share)
        left -= share
    return out


def _report(progress: ProgressCallback | None) -> Callable[[ShardProgress, float], None] | None:
    if progress is None:
        return None
    return lambda t, secs: progress(
        ProgressUpdate(t.total, t.done, t.ok, t.bytes, secs, t.failures)
    )


def _summarize(
    outcomes: list[ShardOutcome[ShardDone]],
    skipped: list[dict[str, Any]],
    store: Path,
    duration_s: float,
) -> DownloadSummary:
    statuses: Counter[str] = Counter()
    sources: Counter[str] = Counter()
    totals: Counter[str] = Counter()
    stopped = [f"shard {o.shard}: {o.error}" for o in outcomes if o.error]
    for o in outcomes:
        if o.result is None:
            continue
        s = o.result.summary
        statuses.update(s.statuses)
        sources.update(s.sources)
        settled = o.result.settled
        totals.update(
            selected=s.selected + settled, skipped=s.skipped + settled, attempted=s.attempted,
            invalid=s.invalid_ids, bytes=s.bytes, requests=s.requests,
        )  # fmt: skip
        stopped += [f"shard {o.shard}: {s.stopped}"] if s.stopped else []
    for marker in skipped:
        before = int(marker.get("stats", {}).get("selected", 0)) + int(marker.get("settled", 0))
        totals.update(selected=before, skipped=before)
    return DownloadSummary(
        selected=totals["selected"], skipped=totals["skipped"], attempted=totals["attempted"],
        statuses=dict(statuses), sources=dict(sources), invalid_ids=totals["invalid"],
        bytes=totals["bytes"], requests=totals["requests"], duration_s=duration_s,
        journal=status_counts(store) if (store / "journal.sqlite").is_file() else {},
        stopped="; ".join(stopped)[:2000] or None,
    )  # fmt: skip


def _write_stats(
    store: Path,
    summary: DownloadSummary,
    config: DownloadConfig,
    backend: tuple[str, str],
    num_shards: int,
    outcomes: list[ShardOutcome[ShardDone]],
    driver_s: dict[str, float],
) -> None:
    import json

    shards = [
        {"shard": o.shard, "attempts": o.attempts, "error": o.error,
         "stats": o.result.summary.to_json() if o.result else None}
        for o in outcomes
    ]  # fmt: skip
    data = {
        **summary.to_json(),
        "config": config.to_json(),
        "backend": backend[0],
        "cluster": backend[1],
        "num_shards": num_shards,
        "shards_run": shards,
        "driver_s": {k: round(v, 3) for k, v in driver_s.items()},
    }
    write_text_atomic(store / "stats.json", json.dumps(data, indent=2, sort_keys=True) + "\n")
