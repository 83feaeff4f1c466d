"""``render_images``: the build's per-image half as one public call.

Plans a selection (any subset of one: a shard, a retry list) and renders every image into a
build cache folder, reusing what the folder already holds. ``build_dataset`` finds these renders
when pointed at the same cache (``build_cache_dir(out)``), so a distributed build only has to
call this per shard and then ``build_dataset`` once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from oiforge.build.cache import cache_params, check_cache, prepare_cache, staging_dir
from oiforge.build.excludes import ExcludeList
from oiforge.build.plan import make_plan, read_selection
from oiforge.build.pool import Progress, render_all
from oiforge.build.records import OK, ImageRecord, RenderOptions
from oiforge.spec import BuildSpec


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
    return staging_dir(out) / ".cache"


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
    plan = make_plan(read_selection(selection), store, exclude or ExcludeList())
    records, reused = render_all(plan.tasks, opts, cache, workers, progress, run=run)
    return RenderedImages(records, reused)
