"""From per-image records to the dataset's samples: failures, duplicates, splits, classes.

Duplicates: exact (same bytes) and near (perceptual hashes within a distance), found with
multi-index hashing: split the 64-bit hash into ``d + 1`` bands; two hashes within Hamming
distance ``d`` agree on at least one band (pigeonhole), so only hashes sharing a band value are
compared. Identical hashes are merged first, so a thousand copies of one placeholder cost one
comparison, not a million.

Re-splitting is deterministic: stratified by class, grouped by source image (and duplicates).
Every group (a source image with all its crops, merged with its duplicates) goes to exactly
one split, so no photo and no near-copy of it sits in two splits. Groups of each class are
ordered by a seeded hash, then each goes where its class is furthest below the target.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from oiforge.build.plan import Exclusion, ImageLabels, ImageMeta, Plan, reindex
from oiforge.build.records import OK, Box, ImageRecord, SampleResult, SampleTask
from oiforge.contracts import DATASET_SPLITS
from oiforge.contracts.dataset import ClassInfo
from oiforge.spec import BuildSpec


@dataclass(frozen=True)
class Tags:
    """A ``multilabel`` sample's classes: verified positives, verified negatives, machine."""

    labels: tuple[ClassInfo, ...]
    negatives: tuple[ClassInfo, ...]
    machine: tuple[ClassInfo, ...]


#: The ``cls`` of a ``multilabel`` sample without a verified positive (no class folder).
NO_CLASS: Final = ClassInfo(-1, "", "", "")


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
    tags: Tags | None = None  # multilabel only; ``cls`` is then its first positive

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
        if iid in plan.labels:  # multilabel: stratified by all positives of the group
            labels[gid] += list(plan.labels[iid].labels) or [""]
        else:
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
    tasks = _tasks_by_key(plan)
    raw = [(iid, s) for iid in sorted(split_of) for s in records[iid].samples if s.status == OK]
    classes = reindex(plan.classes, _used_mids(plan, raw))
    by_mid = {c.mid: c for c in classes}
    samples = [
        ExportSample(
            s.key,
            split_of[iid],
            by_mid.get(s.label_mid, NO_CLASS),
            s.box_index,
            tasks[s.key].box,
            s.sha256,
            s.width,
            s.height,
            s.crop,
            records[iid],
            plan.images[iid],
            _tags(plan.labels[iid], by_mid) if plan.task == "multilabel" else None,
        )
        for iid, s in raw
    ]
    order = {name: i for i, name in enumerate(DATASET_SPLITS)}
    samples.sort(key=lambda x: (order[x.split], x.cls.folder, x.key))
    return Assembly(samples, classes, sorted(excluded, key=lambda e: (e.image_id, e.key)))


def _used_mids(plan: Plan, raw: list[tuple[str, SampleResult]]) -> set[str]:
    """The classes the exported samples use (multilabel: any known label of them)."""
    if plan.task != "multilabel":
        return {s.label_mid for _, s in raw}
    return {m for iid, _ in raw for m in plan.labels[iid].mids()}


def _tags(found: ImageLabels, by_mid: Mapping[str, ClassInfo]) -> Tags:
    def classes(mids: tuple[str, ...]) -> tuple[ClassInfo, ...]:
        return tuple(sorted((by_mid[m] for m in mids if m in by_mid), key=lambda c: c.index))

    return Tags(classes(found.labels), classes(found.negatives), classes(found.machine))


#: When duplicates in official splits disagree, keep the copy in the first of these.
SPLIT_PRIORITY = ("test", "val", "train")


def _order_key(seed: int, group: str) -> str:
    return hashlib.sha256(f"{seed}:{group}".encode()).hexdigest()


def primary_class(labels: Sequence[str]) -> str:
    """The most frequent label of a group (ties: the smallest MID)."""
    counts = Counter(labels)
    return min(counts, key=lambda mid: (-counts[mid], mid))


def _choose(counts: Counter[str], size: int, fractions: Sequence[float]) -> str:
    total = sum(counts.values()) + size
    best = max(
        range(len(DATASET_SPLITS)),
        key=lambda i: (fractions[i] * total - counts[DATASET_SPLITS[i]], fractions[i], -i),
    )
    return DATASET_SPLITS[best]


def assign_splits(
    groups: Mapping[str, Sequence[str]], fractions: Sequence[float], seed: int
) -> dict[str, str]:
    """Group id → split, for groups given as the class MIDs of their samples."""
    if len(fractions) != len(DATASET_SPLITS):
        raise ValueError("three split fractions: train, val, test")
    by_class: dict[str, list[str]] = defaultdict(list)
    for gid, labels in groups.items():
        if labels:
            by_class[primary_class(labels)].append(gid)
    out: dict[str, str] = {}
    for mid in sorted(by_class):
        counts: Counter[str] = Counter()
        for gid in sorted(by_class[mid], key=lambda g: _order_key(seed, g)):
            split = _choose(counts, len(groups[gid]), fractions)
            counts[split] += len(groups[gid])
            out[gid] = split
    return out


def official_keep(splits_of: Mapping[str, str], groups: Mapping[str, str]) -> dict[str, str]:
    """For official splits: image id → the split its duplicate group keeps (by priority)."""
    members: dict[str, set[str]] = defaultdict(set)
    for iid, gid in groups.items():
        members[gid].add(splits_of[iid])
    keep = {gid: next(s for s in SPLIT_PRIORITY if s in found) for gid, found in members.items()}
    return {iid: keep[gid] for iid, gid in groups.items()}


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        self.parent.setdefault(x, x)
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            lo, hi = sorted((ra, rb))
            self.parent[hi] = lo  # the smallest id is the root: deterministic


def _bands(distance: int) -> list[tuple[int, int]]:
    """(shift, mask) of ``distance + 1`` bands covering 64 bits."""
    n = distance + 1
    widths = [64 // n + (1 if i < 64 % n else 0) for i in range(n)]
    out, shift = [], 0
    for w in widths:
        out.append((shift, (1 << w) - 1))
        shift += w
    return out


def _near_pairs(hashes: list[int], distance: int) -> Iterable[tuple[int, int]]:
    """Index pairs of distinct ``hashes`` within ``distance`` bits."""
    if distance <= 0 or len(hashes) < 2:
        return
    seen: set[tuple[int, int]] = set()
    for shift, mask in _bands(min(distance, 63)):
        buckets: dict[int, list[int]] = defaultdict(list)
        for i, h in enumerate(hashes):
            buckets[(h >> shift) & mask].append(i)
        for members in buckets.values():
            for a_pos, a in enumerate(members):
                for b in members[a_pos + 1 :]:
                    if (a, b) not in seen and (hashes[a] ^ hashes[b]).bit_count() <= distance:
                        seen.add((a, b))
                        yield a, b


def duplicate_groups(
    sha256_of: Mapping[str, str], phash_of: Mapping[str, str], distance: int | None
) -> dict[str, str]:
    """Image id → group id (the smallest id of its duplicate cluster; itself if alone).

    Exact duplicates share ``sha256_of``; near duplicates have perceptual hashes within
    ``distance`` bits (``None`` turns near-duplicate search off).
    """
    uf = _UnionFind()
    for iid in sorted(sha256_of):
        uf.find(iid)
    by_value: dict[str, list[str]] = defaultdict(list)
    for iid, digest in sha256_of.items():
        by_value["s:" + digest].append(iid)
    if distance is not None:
        for iid, ph in phash_of.items():
            if ph:
                by_value["p:" + ph].append(iid)
    for ids in by_value.values():
        for other in ids[1:]:
            uf.union(ids[0], other)
    if distance:
        unique = sorted({ph for ph in phash_of.values() if ph})
        owner = {ph: next(i for i in by_value["p:" + ph]) for ph in unique}
        ints = [int(ph, 16) for ph in unique]
        for a, b in _near_pairs(ints, distance):
            uf.union(owner[unique[a]], owner[unique[b]])
    return {iid: uf.find(iid) for iid in sha256_of}
