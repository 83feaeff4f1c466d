"""From per-image records to the dataset's samples: failures, duplicates, splits, classes."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from oiforge.build.classes import reindex
from oiforge.build.dedupe import duplicate_groups
from oiforge.build.plan import Exclusion, ImageMeta, Plan
from oiforge.build.records import OK, Box, ImageRecord, SampleTask
from oiforge.build.split import SPLIT_PRIORITY, assign_splits, official_keep
from oiforge.contracts import DATASET_SPLITS
from oiforge.contracts.dataset import ClassInfo
from oiforge.spec import BuildSpec


@dataclass(frozen=True)
class ExportSample:
    """One sample of the finished dataset."""

    key: str
    split: str
    cls: ClassInfo
    box_index: int | None
    box: Box | None
    sha256: str
    width: int
    height: int
    crop: str
    record: ImageRecord
    meta: ImageMeta

    @property
    def folder_path(self) -> str:
        return f"{self.split}/{self.cls.folder}/{self.key}.jpg"


@dataclass
class Assembly:
    """The samples to export (sorted), the classes they use, and everything left out."""

    samples: list[ExportSample]
    classes: list[ClassInfo]
    excluded: list[Exclusion]


def _failures(plan: Plan, records: dict[str, ImageRecord], out: list[Exclusion]) -> set[str]:
    """Record failed images and samples; return the ids of images with something to export."""
    usable = set()
    for task in plan.tasks:
        rec = records[task.image_id]
        for s in rec.samples:
            if s.status != OK:
                out.append(Exclusion(task.image_id, s.key, s.label_mid, s.box_index, s.status))
        if rec.status == OK and any(s.status == OK for s in rec.samples):
            usable.add(task.image_id)
    return usable


def _drop_image(rec: ImageRecord, reason: str, out: list[Exclusion]) -> None:
    for s in rec.samples:
        if s.status == OK:
            out.append(Exclusion(rec.image_id, s.key, s.label_mid, s.box_index, reason))


def _keep_order(plan: Plan, spec: BuildSpec) -> Callable[[str], tuple[int, str]]:
    """Which copy of a duplicate to keep: official mode keeps the one in the rarer split."""
    rank = {s: i for i, s in enumerate(SPLIT_PRIORITY)}

    def key(iid: str) -> tuple[int, str]:
        if spec.split != "official":
            return 0, iid
        return rank.get(plan.images[iid].official_split, len(rank)), iid

    return key


def _dedupe(
    ids: set[str],
    records: dict[str, ImageRecord],
    plan: Plan,
    spec: BuildSpec,
    out: list[Exclusion],
) -> dict[str, str]:
    """Drop exact copies (keeping one, see ``_keep_order``); return image id → group."""
    if not spec.dedupe:
        return {i: i for i in ids}
    sha = {i: records[i].source_sha256 for i in ids}
    groups = duplicate_groups(sha, {i: records[i].phash for i in ids}, spec.near_duplicate_distance)
    first_of: dict[str, str] = {}
    for iid in sorted(ids, key=_keep_order(plan, spec)):
        kept = first_of.setdefault(sha[iid], iid)
        if kept != iid:
            _drop_image(records[iid], f"exact_duplicate_of:{kept}", out)
            ids.discard(iid)
    return {i: groups[i] for i in ids}


def _splits(
    groups: dict[str, str],
    plan: Plan,
    records: dict[str, ImageRecord],
    spec: BuildSpec,
    out: list[Exclusion],
) -> dict[str, str]:
    """Image id → dataset split; duplicates never straddle two splits."""
    if spec.split == "official":
        known = {i: plan.images[i].official_split for i in groups}
        for iid in [i for i, s in known.items() if s not in DATASET_SPLITS]:
            _drop_image(records[iid], "unknown_split", out)
            del known[iid]
        keep = official_keep(known, {i: groups[i] for i in known})
        for iid in [i for i in known if known[i] != keep[i]]:
            _drop_image(records[iid], f"near_duplicate_in_{keep[iid]}:{groups[iid]}", out)
            del known[iid]
        return known
    labels: dict[str, list[str]] = defaultdict(list)
    for iid, gid in groups.items():
        labels[gid] += [s.label_mid for s in records[iid].samples if s.status == OK]
    by_group = assign_splits(labels, spec.split, spec.split_seed)
    return {iid: by_group[gid] for iid, gid in groups.items()}


def _tasks_by_key(plan: Plan) -> dict[str, SampleTask]:
    return {s.key: s for t in plan.tasks for s in t.samples}


def assemble(plan: Plan, records: dict[str, ImageRecord], spec: BuildSpec) -> Assembly:
    """Decide every sample's fate: exported (with split and class) or excluded (with reason)."""
    excluded = list(plan.excluded)
    ids = _failures(plan, records, excluded)
    split_of = _splits(_dedupe(ids, records, plan, spec, excluded), plan, records, spec, excluded)
    by_mid = {c.mid: c for c in plan.classes}
    tasks = _tasks_by_key(plan)
    raw = [(iid, s) for iid in sorted(split_of) for s in records[iid].samples if s.status == OK]
    classes = reindex(plan.classes, {s.label_mid for _, s in raw})
    by_mid = {c.mid: c for c in classes}
    samples = [
        ExportSample(
            s.key,
            split_of[iid],
            by_mid[s.label_mid],
            s.box_index,
            tasks[s.key].box,
            s.sha256,
            s.width,
            s.height,
            s.crop,
            records[iid],
            plan.images[iid],
        )
        for iid, s in raw
    ]
    order = {name: i for i, name in enumerate(DATASET_SPLITS)}
    samples.sort(key=lambda x: (order[x.split], x.cls.folder, x.key))
    return Assembly(samples, classes, sorted(excluded, key=lambda e: (e.image_id, e.key)))
