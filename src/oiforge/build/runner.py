"""``build_dataset``: selection + store → a finished dataset directory, atomically.

Everything is written into a staging directory beside the output (``.<name>.oiforge-partial``)
whose ``.cache`` keeps rendered samples, so an interrupted build resumes; only a complete,
locked dataset is renamed into place.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import shutil
import sys
import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from oiforge.atomic import replace_dir
from oiforge.build.assemble import Assembly, assemble
from oiforge.build.cache import CACHE_NAME, prepare_cache, sample_path, staging_dir
from oiforge.build.card import (
    CardInfo,
    negatives_words,
    write_attribution,
    write_card,
    write_contact_sheet,
)
from oiforge.build.export import (
    write_excluded,
    write_folders,
    write_manifest,
    write_parquet,
    write_shards,
)
from oiforge.build.lock import (
    LOCK_NAME,
    compare,
    environment_changes,
    file_sha256,
    hash_files,
    make_lock,
    top_hash,
    write_lock,
)
from oiforge.build.plan import Plan, make_plan, negatives_source, read_selection
from oiforge.build.pool import BATCH, Progress, render_all, start_workers_early
from oiforge.build.records import RenderOptions
from oiforge.contracts.dataset import write_classes
from oiforge.contracts.excludes import ExcludeList
from oiforge.contracts.selection import selection_labels, selection_version
from oiforge.errors import ChecksumError, InvalidInputError
from oiforge.spec import BuildSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuildInputs:
    """Everything a build reads. ``expected_files`` (from a lock) makes it a checked rebuild."""

    selection: Path
    store: Path
    out: Path
    spec: BuildSpec = field(default_factory=BuildSpec)
    name: str = "dataset"
    version: str = "unknown"
    exclude: ExcludeList = field(default_factory=ExcludeList)
    catalog_md5s: Mapping[str, str] = field(default_factory=dict)
    workers: int | None = None
    expected_files: Mapping[str, str] | None = None
    expected_environment: Mapping[str, str] = field(default_factory=dict)  # from the lock
    #: A sharded build's run token: cached records its shard jobs wrote are trusted (their
    #: sources not hashed again; see ``pool.is_reusable``).
    trusted_run: str | None = None


@dataclass(frozen=True)
class BuildResult:
    """What a build produced."""

    out: Path
    samples: int
    per_split: dict[str, int]
    classes: int
    excluded: dict[str, int]  # reason (without detail) → samples
    reused_images: int
    top_hash: str
    timings: dict[str, float] = field(default_factory=dict)  # phase → seconds (wall)


class _Clock:
    """Wall time per build phase (for the log and benchmarks)."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        self.timings[phase] = round(now - self._last, 4)
        self._last = now

    def restart(self) -> None:
        """The next lap starts now."""
        self._last = time.perf_counter()


def check_out_dir(out: Path) -> None:
    """Refuse an ``out`` that exists and is not an oiforge dataset (a build replaces it)."""
    if out.exists() and (
        not out.is_dir() or (any(out.iterdir()) and not (out / LOCK_NAME).exists())
    ):
        raise InvalidInputError(
            f"{out} exists and is not an oiforge dataset; choose an empty or new --out directory"
        )


def _clear_outputs(staging: Path) -> None:
    for child in staging.iterdir():
        if child.name != CACHE_NAME:
            shutil.rmtree(child) if child.is_dir() else child.unlink()


def _export(root: Path, asm: Assembly, inputs: BuildInputs, cache: Path) -> list[dict[str, Any]]:
    def source(key: str) -> Path:
        return sample_path(cache, key)

    spec, task = inputs.spec, inputs.spec.task
    where: dict[str, dict[str, str]] = {}
    if "folders" in spec.formats:
        where["folders"] = write_folders(root, asm.samples, source)
    if "webdataset" in spec.formats:
        where["webdataset"] = write_shards(root, asm.samples, source, spec.shard_size)
    if "parquet" in spec.formats:
        where["parquet"] = write_parquet(root, asm.samples, source, asm.classes, task)
    rows = write_manifest(root, asm.samples, where, task)
    write_excluded(root, asm.excluded)
    write_classes(
        root, asm.classes, task, _class_details(inputs) if task != "singlelabel" else None
    )
    write_attribution(root, rows)
    write_contact_sheet(root, asm.classes, asm.samples, source)
    return rows


def _class_details(inputs: BuildInputs) -> dict[str, object]:
    """How a multilabel dataset's labels were made (from the selection's labels metadata)."""
    made = selection_labels(inputs.selection) or {}
    return {
        "expand_up": bool(made.get("expand_up", False)),
        "negatives_source": negatives_source(made),
        "min_confidence": made.get("min_confidence"),
    }


def _label_notes(inputs: BuildInputs, plan: Plan) -> tuple[str, ...]:
    """The card's "Labels" section (empty for a plain single-label selection)."""
    made = selection_labels(inputs.selection)
    if inputs.spec.task == "singlelabel" and not plan.background:
        return ()
    task = (
        "**multilabel**: one sample per photo; `manifest.parquet` lists its verified "
        "positives (`labels`), verified negatives (`negatives`) and unverified machine labels "
        "(`machine`); every other class is unknown for that photo, never a negative."
        if inputs.spec.task == "multilabel"
        else "**singlelabel**: one class per sample."
    )
    return (f"Task: {task}", "", *negatives_words(made or {}, plan.background))


def _known_hashes(asm: Assembly, inputs: BuildInputs) -> dict[str, str]:
    """Exported sample files whose hashes we already know (hard links of checked renders)."""
    if "folders" not in inputs.spec.formats:
        return {}
    return {s.folder_path: s.sha256 for s in asm.samples}


def _lock(root: Path, asm: Assembly, inputs: BuildInputs, selection_sha: str) -> dict[str, Any]:
    files = hash_files(root, _known_hashes(asm, inputs), ignore=(CACHE_NAME,))
    lock = make_lock(
        files,
        {s.key: s.sha256 for s in asm.samples},
        name=inputs.name,
        open_images_version=inputs.version,
        build=inputs.spec.model_dump(mode="json"),
        inputs={"selection_sha256": selection_sha},
        catalog_md5s=dict(sorted(inputs.catalog_md5s.items())),
        exclude_list=inputs.exclude.entries(),
    )
    write_lock(root, lock)
    return lock


def _check_expected(inputs: BuildInputs, lock: Mapping[str, Any], staging: Path) -> None:
    if inputs.expected_files is None:
        return
    report = compare(inputs.expected_files, lock["files"])
    if not report.ok:
        detail = (report.missing + report.changed + report.extra)[:5]
        changes = environment_changes(inputs.expected_environment)
        why = (
            f"; the lock was made with other library versions ({', '.join(changes)}): "
            "install those to rebuild byte for byte"
            if changes
            else ""
        )
        raise ChecksumError(
            f"rebuild differs from the lock ({len(report.missing)} missing, "
            f"{len(report.changed)} changed, {len(report.extra)} extra, e.g. {detail}; "
            f"kept in {staging}){why}",
            f"top hash {top_hash(inputs.expected_files)}",
            f"top hash {lock['top_hash']}",
        )


def _import_in_background(module: str) -> None:
    """Import ``module`` on a thread while the workers render and this process waits: the
    export needs it (pyarrow loads pandas to build the manifest) and it costs ~0.4 s."""
    if module not in sys.modules and importlib.util.find_spec(module) is not None:
        threading.Thread(target=importlib.import_module, args=(module,), daemon=True).start()


def _finalize(staging: Path, out: Path) -> None:
    shutil.rmtree(staging / CACHE_NAME)
    replace_dir(staging, out)


@dataclass(frozen=True)
class PlannedBuild:
    """A build planned but not yet rendered (:func:`plan_build`); :func:`finish_build` does
    the rest. A sharded build plans its final pass while its shard jobs render."""

    inputs: BuildInputs
    plan: Plan
    staging: Path
    cache: Path
    opts: RenderOptions
    clock: _Clock


def plan_build(inputs: BuildInputs) -> PlannedBuild:
    """The first phase of :func:`build_dataset`: read the selection, plan every image."""
    clock = _Clock()
    check_out_dir(inputs.out)
    if inputs.version == "unknown":
        inputs = replace(inputs, version=selection_version(inputs.selection) or "unknown")
    rows = read_selection(inputs.selection)
    if inputs.trusted_run is None:  # a sharded build's final pass finds its images rendered
        start_workers_early(len(rows), inputs.workers)
    plan = make_plan(rows, inputs.store, inputs.exclude, inputs.spec.task)
    staging = staging_dir(inputs.out)
    cache = staging / CACHE_NAME
    opts = RenderOptions.from_spec(inputs.spec)
    prepare_cache(cache, opts)
    clock.lap("plan")
    return PlannedBuild(inputs, plan, staging, cache, opts, clock)


def build_dataset(inputs: BuildInputs, progress: Progress | None = None) -> BuildResult:
    """Build the dataset described by ``inputs`` into ``inputs.out``."""
    return finish_build(plan_build(inputs), progress)


def finish_build(planned: PlannedBuild, progress: Progress | None = None) -> BuildResult:
    """Render (what the cache does not hold), assemble, export, lock and rename into place."""
    inputs, plan, staging, cache, clock = (
        planned.inputs, planned.plan, planned.staging, planned.cache, planned.clock
    )  # fmt: skip
    clock.restart()  # the time between planning and now is not this build's
    if len(plan.tasks) > BATCH:
        _import_in_background("pandas")
    records, reused = render_all(
        plan.tasks, planned.opts, cache, inputs.workers, progress, trust_run=inputs.trusted_run
    )
    clock.lap("render")
    asm = assemble(plan, records, inputs.spec)
    _clear_outputs(staging)
    clock.lap("assemble")
    _export(staging, asm, inputs, cache)
    selection_sha = file_sha256(inputs.selection)
    info = CardInfo(
        inputs.name, inputs.version, inputs.spec, selection_sha, _label_notes(inputs, plan)
    )
    write_card(staging, asm, info, list(inputs.spec.formats))
    clock.lap("export")
    lock = _lock(staging, asm, inputs, selection_sha)
    _check_expected(inputs, lock, staging)
    clock.lap("lock")
    _finalize(staging, inputs.out)
    clock.lap("finalize")
    log.info("build phases (s): %s", clock.timings)
    return BuildResult(
        out=inputs.out,
        samples=len(asm.samples),
        per_split=dict(Counter(s.split for s in asm.samples)),
        classes=len(asm.classes),
        excluded=dict(Counter(e.reason.split(":", 1)[0] for e in asm.excluded)),
        reused_images=reused,
        top_hash=str(lock["top_hash"]),
        timings=clock.timings,
    )
