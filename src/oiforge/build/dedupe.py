"""Duplicate detection: exact (same bytes) and near (perceptual hashes within a distance).

Near pairs are found with multi-index hashing: split the 64-bit hash into ``d + 1`` bands;
two hashes within Hamming distance ``d`` agree on at least one band (pigeonhole), so only
hashes sharing a band value are compared. Identical hashes are merged first, so a thousand
copies of one placeholder cost one comparison, not a million.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping


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
