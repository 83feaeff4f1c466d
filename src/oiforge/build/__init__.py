"""The build stage: selection + store → a dataset to train on, share and rebuild.

Public API::

    from oiforge.build import BuildInputs, build_dataset, verify_dataset
    result = build_dataset(BuildInputs(selection=..., store=..., out=..., spec=BuildSpec()))
    report = verify_dataset(result.out)
    # the same in two steps (plan while something else runs, then render and assemble):
    result = finish_build(plan_build(inputs))
    # the per-image half alone (one shard of a distributed build), into build_dataset's cache:
    cache = build_cache_dir(out); prepare_build_cache(cache, spec)
    rendered = render_images(shard_selection, store, cache, spec)  # .records, .reused, .ok
    publish(result.out, "s3://bucket/name@v1"); pull("s3://bucket/name@v1", dest)
"""

from __future__ import annotations

from oiforge.build.lock import (
    LOCK_NAME,
    TransferResult,
    VerifyReport,
    catalog_md5s,
    publish,
    pull,
    read_lock,
    verify_dataset,
)
from oiforge.build.pool import (
    RenderedImages,
    build_cache_dir,
    prepare_build_cache,
    render_fingerprint,
    render_images,
)
from oiforge.build.runner import (
    BuildInputs,
    BuildResult,
    PlannedBuild,
    build_dataset,
    check_out_dir,
    finish_build,
    plan_build,
)
from oiforge.contracts.excludes import ExcludeList, read_exclude_list

__all__ = [
    "LOCK_NAME",
    "BuildInputs",
    "BuildResult",
    "ExcludeList",
    "PlannedBuild",
    "RenderedImages",
    "TransferResult",
    "VerifyReport",
    "build_cache_dir",
    "build_dataset",
    "catalog_md5s",
    "check_out_dir",
    "finish_build",
    "plan_build",
    "prepare_build_cache",
    "publish",
    "pull",
    "read_exclude_list",
    "read_lock",
    "render_fingerprint",
    "render_images",
    "verify_dataset",
]
