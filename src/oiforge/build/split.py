"""Deterministic re-splitting: stratified by class, grouped by source image (and duplicates).

Every group (a source image with all its crops, merged with its duplicates) goes to exactly
one split, so no photo and no near-copy of it sits in two splits. Groups of each class are
ordered by a seeded hash, then each goes where its class is furthest below the target.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence

from oiforge.contracts import DATASET_SPLITS

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
