"""``run_build_sharded``: the build's heavy part (decode, check, crop, encode) over shards.

The build has two halves. Rendering is per image and embarrassingly parallel; assembling
(dedupe across images, splits, exporters, manifest, lock) needs every image at once but only
reads small records and copies finished files. So each shard job renders its images into the
build's own resumable cache (``.<out>.oiforge-partial/.cache``, on a file system every node
sees), with the build stage's own planner and renderer; then the driver runs
:func:`oiforge.build.build_dataset` unchanged (as its two halves, ``plan_build`` and
``finish_build``), which finds every image in the cache and only assembles. The dataset is
therefore byte-identical to a local build, and a shard that failed for good costs time, not
correctness: the final build renders what is left.
Records this run's shard jobs wrote carry its token; their workers hashed each sample from the
bytes they wrote, so the final pass reads neither their sources nor their samples again (it
checks each sample's size); records from an earlier run (a resume) are checked in full.

What a run costs beyond the rendering itself, and what hides it: the final pass is planned
(selection read, every image planned) on a thread as soon as one shard is done, while the
others still render; the Ray connection is closed on a thread while the final pass runs.
"""

from __future__ import annotations

import logging
import secrets
import shutil
import sys
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from oiforge.build import (
    BuildInputs,
    BuildResult,
    PlannedBuild,
    build_cache_dir,
    build_dataset,
    check_out_dir,
    finish_build,
    plan_build,
    prepare_build_cache,
    render_fingerprint,
    render_images,
)
from oiforge.contracts.selection import count_selected_images
from oiforge.distributed.engine import (
    Backend,
    EventCallback,
    ProgressMerger,
    Reporter,
    ShardEvent,
    ShardProgress,
    Tick,
    announce,
    check_backend,
    open_engine,
    read_marker,
    write_marker,
)
from oiforge.distributed.shards import (
    Shard,
    auto_num_shards,
    check_num_shards,
    remove_other_layouts,
    split_selection,
)

log = logging.getLogger(__name__)

BuildProgress = Callable[[int, int], None]


@dataclass(frozen=True)
class RenderJob:
    """One shard's rendering, picklable for a Ray task."""

    shard: Shard
    inputs: BuildInputs
    cache: Path
    options_key: str
    run: str  # this build's token: the driver trusts the records tagged with it


@dataclass(frozen=True)
class Rendered:
    """What a shard job rendered: images, those usable, those found in the cache already."""

    images: int
    ok: int
    reused: int


def render_shard(job: RenderJob, reporter: Reporter) -> Rendered:
    """Render one shard's images into the shared build cache; write its marker."""

    def on_progress(done: int, total: int) -> None:
        reporter.progress(ShardProgress(done, total))

    inputs = job.inputs
    rendered = render_images(
        job.shard.path,
        inputs.store,
        job.cache,
        inputs.spec,
        exclude=inputs.exclude,
        workers=inputs.workers or _assigned_cpus(),
        progress=on_progress,
        run=job.run,
    )
    done = Rendered(len(rendered.records), rendered.ok, rendered.reused)
    key = f"{job.shard.key}:{job.options_key}"
    write_marker(job.shard.path.parent, {"key": key, "complete": True, **asdict(done)})
    return done


def _assigned_cpus() -> int | None:
    """The CPUs Ray gave the running shard task (1 by default), so a shard renders on its own
    share instead of starting a pool as wide as the node; None outside a Ray task."""
    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return None
    try:
        cpus = ray.get_runtime_context().get_assigned_resources().get("CPU")
    except Exception:  # a driver, or an older Ray: keep the stage's default
        return None
    return max(1, int(cpus)) if cpus else None


def _report(progress: BuildProgress | None) -> Callable[[ShardProgress, float], None] | None:
    if progress is None:
        return None
    return lambda total, _: progress(total.done, total.total)


def shards_dir(out: Path) -> Path:
    """Where a sharded build of ``out`` keeps its shard selections and markers."""
    return out.parent / f".{out.name}.oiforge-shards"


def run_build_sharded(
    inputs: BuildInputs,
    progress: BuildProgress | None = None,
    *,
    backend: Backend | str = "local",
    address: str | None = None,
    num_shards: int | None = None,
    on_event: EventCallback | None = None,
) -> BuildResult:
    """:func:`oiforge.build.build_dataset` with its rendering spread over shards."""
    chosen = check_backend(str(backend), address)
    if num_shards is not None:
        check_num_shards(num_shards)
    if chosen == "local" and num_shards is None:
        return build_dataset(inputs, progress)
    check_out_dir(inputs.out)
    cache = build_cache_dir(inputs.out)
    prepare_build_cache(cache, inputs.spec)  # once, here: shard jobs never reset a shared cache
    work = shards_dir(inputs.out)
    options_key = render_fingerprint(inputs.spec)
    run = secrets.token_hex(8)
    final = FinalPlan(replace(inputs, trusted_run=run))
    with open_engine(chosen, address, close_in_background=True) as engine:
        announce(engine, on_event)
        n = (
            num_shards
            if num_shards is not None
            else auto_num_shards(count_selected_images(inputs.selection), engine.cpus())
        )
        remove_other_layouts(work, n)
        jobs = _jobs(split_selection(inputs.selection, work, n), inputs, cache, options_key, run)
        merger = ProgressMerger({j.shard.name: j.shard.images for j in jobs}, on_event)
        outcomes = engine.run(
            render_shard,
            [(j.shard.name, j.shard.path.parent, j) for j in jobs],
            final.tick(merger.tick(_report(progress))),
        )
    for failed in (o for o in outcomes if o.error):
        log.warning(
            "shard %s failed (%s); the final build renders its images", failed.shard, failed.error
        )
    try:
        result = finish_build(final.result(), progress)
    finally:
        engine.join()
    shutil.rmtree(work, ignore_errors=True)
    return result


class FinalPlan:
    """Plans the final pass (:func:`oiforge.build.plan_build`) on a thread, started once a
    shard has finished (a CPU is free then; on a cluster, the driver's own work overlaps the
    last shards) or, at the latest, when ``result`` is asked for."""

    def __init__(self, inputs: BuildInputs) -> None:
        self._inputs = inputs
        self._future: Future[PlannedBuild] | None = None

    def start(self) -> None:
        if self._future is None:
            pool = ThreadPoolExecutor(1, thread_name_prefix="oiforge-final-plan")
            self._future = pool.submit(plan_build, self._inputs)
            pool.shutdown(wait=False)  # the thread ends with its one task

    def tick(self, inner: Tick) -> Tick:
        """``inner``, after starting the plan when a shard reports all its images done."""

        def tick(progress: dict[str, ShardProgress], events: list[ShardEvent]) -> None:
            if any(p.total and p.done >= p.total for p in progress.values()):
                self.start()
            inner(progress, events)

        return tick

    def result(self) -> PlannedBuild:
        self.start()
        assert self._future is not None
        return self._future.result()


def _jobs(
    shards: list[Shard], inputs: BuildInputs, cache: Path, options_key: str, run: str
) -> list[RenderJob]:
    jobs = []
    for shard in shards:
        marker = read_marker(shard.path.parent)
        if marker and marker.get("key") == f"{shard.key}:{options_key}" and marker.get("complete"):
            continue
        jobs.append(RenderJob(shard, inputs, cache, options_key, run))
    return jobs
