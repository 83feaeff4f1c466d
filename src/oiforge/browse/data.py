"""What the pages show: class hits, tree nodes, and the selection's images with their boxes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from oiforge.catalog import Catalog
from oiforge.contracts import ExcludeList

_ATTRIBUTION = ("title", "author", "author_profile_url", "license", "landing_url")


def class_hits(cat: Catalog, query: str, limit: int = 30) -> list[dict[str, Any]]:
    """Search hits with their positives and boxes (summed over the ingested splits)."""
    hits = cat.search(query, limit=limit) if query.strip() else []
    counts = _counts(cat, [h.mid for h in hits])
    return [
        {
            "mid": h.mid,
            "name": h.name,
            "boxable": h.boxable,
            "matched": h.matched,
            **counts.get(h.mid, {"positives": 0, "boxes": 0}),
        }
        for h in hits
    ]


def _counts(cat: Catalog, mids: list[str]) -> dict[str, dict[str, int]]:
    if not mids:
        return {}
    rows = cat.class_counts(mids).to_pylist()
    return {
        r["label_mid"]: {
            kind: sum(int(v or 0) for k, v in r.items() if k.startswith(f"{kind}_"))
            for kind in ("positives", "boxes")
        }
        for r in rows
    }


def tree_node(cat: Catalog, mid: str) -> dict[str, Any]:
    """One class with its direct children (sub-classes and parts) and all its parents."""
    node = cat.subtree(mid, parts=True, depth=1)
    kids = [
        {
            "mid": c.mid,
            "name": cat.name(c.mid),
            "kind": c.kind,
            "has_children": bool(cat.subtree(c.mid, parts=True, depth=1).children),
        }
        for c in node.children
    ]
    parents = [{"mid": p, "name": cat.name(p)} for p in cat.parents(mid)]
    return {"mid": mid, "name": cat.name(mid), "children": kids, "parents": parents}


def load_images(selection: Path | None) -> list[dict[str, Any]]:
    """The selection's rows grouped per image, boxes in ``box_index`` order."""
    if selection is None:
        return []
    rows = pq.read_table(selection).to_pylist()
    images: dict[str, dict[str, Any]] = {}
    for r in rows:
        img = images.setdefault(
            r["image_id"],
            {
                "image_id": r["image_id"],
                "split": r["split"],
                "classes": [],
                "boxes": [],
                **{k: r.get(k) for k in _ATTRIBUTION},
            },
        )
        if r["label_name"] not in img["classes"]:
            img["classes"].append(r["label_name"])
        if r.get("box_index") is not None:
            img["boxes"].append(
                {
                    "index": r["box_index"],
                    "label": r["label_name"],
                    "x_min": r["x_min"],
                    "x_max": r["x_max"],
                    "y_min": r["y_min"],
                    "y_max": r["y_max"],
                }
            )
    return list(images.values())


def download_status(store: Path) -> dict[str, str]:
    """ImageID -> the download journal's status (empty when the store has no journal)."""
    from oiforge.contracts import read_journal
    from oiforge.errors import OiforgeError

    try:
        table = read_journal(store).select(["image_id", "status"]).to_pydict()
    except OiforgeError:
        return {}
    return dict(zip(table["image_id"], table["status"], strict=True))


def filtered(
    images: list[dict[str, Any]],
    ex: ExcludeList,
    downloads: dict[str, str],
    want: tuple[str, str, str],
) -> list[dict[str, Any]]:
    """Images of class/split ``want[:2]`` whose status (included, excluded or a download
    status such as ``ok`` or ``http_404``) is ``want[2]``; empty strings match all."""
    cls, split, status = want
    out = []
    for img in images:
        reason = ex.images.get(img["image_id"])
        boxes = {str(b): r for (i, b), r in ex.boxes.items() if i == img["image_id"]}
        state = "excluded" if reason else "included"
        fetched = downloads.get(img["image_id"], "not downloaded")
        if (cls and cls not in img["classes"]) or (split and img["split"] != split):
            continue
        if status and status not in (state, fetched):
            continue
        row = {**img, "status": state, "download": fetched, "reason": reason}
        out.append({**row, "excluded_boxes": boxes})
    return out
