"""Class search (ranked: exact, prefix, word, contains, fuzzy: and saying which) and tree nodes
with the number of the selection's images under each class (descendants included)."""

from __future__ import annotations

from typing import Any, Final

import numpy as np

from oiforge.browse.index import ImageIndex
from oiforge.catalog import Catalog
from oiforge.errors import OiforgeError

#: the catalog's search scores (``catalog.classes``) → how a hit matched, best first
KINDS: Final = ("exact", "prefix", "word", "contains", "fuzzy")
#: a fuzzy hit must be this close (rapidfuzz QRatio, 0..100): "zebar" finds Zebra (80),
#: "zebra" does not find Bran or Sazerac (67)
FUZZY_MIN: Final = 70.0
_FUZZY_FACTOR: Final = 0.69  # the catalog scales fuzzy scores by this, below every direct hit


def match_kind(score: float) -> str:
    """How a catalog search hit matched, from its score."""
    if score >= 98:
        return "exact"
    if score >= 95:
        return "prefix"
    if score >= 90:
        return "word"
    if score >= 70:
        return "contains"
    return "fuzzy"


def search_classes(
    cat: Catalog, index: ImageIndex, query: str, limit: int = 30
) -> list[dict[str, Any]]:
    """Classes matching ``query``, best kind first; fuzzy hits only when close."""
    if not query.strip():
        return []
    hits = cat.search(query[:200], limit=limit)
    kept = [h for h in hits if h.score >= FUZZY_MIN * _FUZZY_FACTOR]
    ranked = sorted(kept, key=lambda h: (KINDS.index(match_kind(h.score)), -h.score))
    counts = selection_counts(cat, index, [h.mid for h in ranked])
    return [
        {
            "mid": h.mid,
            "name": h.name,
            "boxable": h.boxable,
            "match": match_kind(h.score),
            "matched": h.matched,
            "images": counts[h.mid],
        }
        for h in ranked
    ]


def class_mids(cat: Catalog, mid: str) -> set[str]:
    """``mid`` and every class below it (the catalog hierarchy)."""
    try:
        return {mid} | cat.descendants(mid)
    except OiforgeError:
        return {mid}


def selection_counts(cat: Catalog, index: ImageIndex, mids: list[str]) -> dict[str, int]:
    """Per MID: the selection's images labelled with it or with a class below it."""
    return {mid: index.count_images(index.label_codes(class_mids(cat, mid))) for mid in mids}


def tree_node(cat: Catalog, index: ImageIndex, mid: str) -> dict[str, Any]:
    """One class with its direct children (sub-classes and parts) and all its parents."""
    node = cat.subtree(mid, parts=True, depth=1)
    counts = selection_counts(cat, index, [mid, *(c.mid for c in node.children)])
    kids = [
        {
            "mid": c.mid,
            "name": cat.name(c.mid),
            "kind": c.kind,
            "has_children": bool(cat.subtree(c.mid, parts=True, depth=1).children),
            "images": counts[c.mid],
        }
        for c in node.children
    ]
    parents = [{"mid": p, "name": cat.name(p)} for p in cat.parents(mid)]
    return {
        "mid": mid,
        "name": cat.name(mid),
        "images": counts[mid],
        "children": kids,
        "parents": parents,
    }


def selection_classes(index: ImageIndex) -> list[dict[str, Any]]:
    """The selection's own classes with their image counts (most images first)."""
    if not len(index):
        return []
    out = [
        {"mid": m, "name": index.names.get(m, m), "images": index.count_images(np.array([i]))}
        for i, m in enumerate(index.mids)
    ]
    return sorted(out, key=lambda c: (-c["images"], c["name"].lower()))
