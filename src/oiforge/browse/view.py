"""A grid view: the filters of one URL, applied to the index, the journal and the curation files.

``Browser.page(filters, page, size)`` answers one grid request: the page's images as JSON-ready
dicts, the number that match, and facet counts (splits, download statuses, exclusions, label
sources, box flags) over the matching images, as a filter sidebar shows them.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from oiforge.browse.downloads import NOT_DOWNLOADED, Downloads
from oiforge.browse.excludes import ExcludeStore, ReviewStore
from oiforge.browse.index import ATTRIBUTION, CONFIRMED, REJECTED, ImageIndex, RowFilter
from oiforge.contracts import BOX_FLAGS, ExcludeList
from oiforge.contracts.selection import NEGATIVE, POSITIVE
from oiforge.errors import InvalidInputError
from oiforge.licences import licence_name
from oiforge.reviews import Verdicts

Vector = np.ndarray[Any, Any]
MAX_PAGE: Final = 500
REVIEW_CODES: Final = {"unreviewed": 0, "confirmed": CONFIRMED, "rejected": REJECTED}
_VERDICT_NAMES: Final = {0: "", CONFIRMED: "confirmed", REJECTED: "rejected"}


@dataclass(frozen=True)
class Filters:
    """One grid view's filters (the URL's query parameters of the same names)."""

    cls: str = ""  # a MID: that class and its descendants
    split: str = ""
    dl: str = ""  # download: a journal status, "failed" or "not downloaded"
    ex: str = ""  # "yes" (image or a box excluded) or "no"
    flags: tuple[str, ...] = ()
    src: str = ""  # "human" or "machine"
    cmin: float = 0.0
    cmax: float = 1.0
    rv: str = ""  # review of machine labels: unreviewed, confirmed, rejected
    q: str = ""

    def check(self) -> None:
        """A named error for a value no filter knows."""
        bad = [f for f in self.flags if f not in BOX_FLAGS]
        if bad:
            raise InvalidInputError(f"unknown box flag {bad[0][:40]!r}; known: {BOX_FLAGS}")
        if self.src not in ("", "human", "machine"):
            raise InvalidInputError("src is human or machine")
        if self.ex not in ("", "yes", "no"):
            raise InvalidInputError("ex is yes or no")
        if self.rv and self.rv not in REVIEW_CODES:
            raise InvalidInputError("rv is unreviewed, confirmed or rejected")
        if not 0.0 <= self.cmin <= self.cmax <= 1.0:
            raise InvalidInputError("confidence range: 0 <= cmin <= cmax <= 1")


class Browser:
    """The selection, its journal and its curation files, answering grid and image requests."""

    def __init__(
        self, index: ImageIndex, store: Path, excludes: ExcludeStore, reviews: ReviewStore
    ) -> None:
        self.index = index
        self.store = store
        self.downloads = Downloads(store, index)
        self.excludes = excludes
        self.reviews = reviews
        self._lock = threading.Lock()
        self._ex_version: object = ()
        self._rv_version: object = ()
        self.excluded = np.zeros(len(index), np.int8)  # 1 image excluded, 2 boxes of it

    def sync(self) -> tuple[ExcludeList, Verdicts]:
        """Bring the exclusion and review marks up to date with their files."""
        with self._lock:
            ex, verdicts = self.excludes.read(), self.reviews.read()
            if self.excludes.version() != self._ex_version:
                self._ex_version = self.excludes.version()
                self.excluded = self._excluded_codes(ex)
            if self.reviews.version() != self._rv_version:
                self._rv_version = self.reviews.version()
                codes = {k: REVIEW_CODES[v[0]] for k, v in verdicts.items()}
                self.index.set_reviews(codes)
            return ex, verdicts

    def _excluded_codes(self, ex: ExcludeList) -> Vector:
        codes = np.zeros(len(self.index), np.int8)
        for image_id, _ in ex.boxes:
            if (pos := self.index.position.get(image_id)) is not None:
                codes[pos] = 2
        for image_id in ex.images:
            if (pos := self.index.position.get(image_id)) is not None:
                codes[pos] = 1
        return codes

    def mask(self, f: Filters, labels: Vector | None) -> Vector:
        """Images that pass every filter (``labels``: the class filter's label codes)."""
        f.check()
        review = REVIEW_CODES[f.rv] if f.rv else None
        rows = self.index.row_mask(
            RowFilter(labels, f.src, f.cmin, f.cmax, f.flags, review)  # one row passes all
        )
        mask = np.ones(len(self.index), bool) if rows is None else self.index.per_image(rows)
        if f.split:
            mask &= self.index.split == _code(self.index.splits, f.split)
        if f.dl:
            dl = self.downloads.state()
            mask &= np.isin(dl.status, dl.codes(f.dl))
        if f.ex:
            mask &= (self.excluded > 0) == (f.ex == "yes")
        if f.q.strip():
            mask &= self.index.matching_text(f.q)
        return mask

    def page(self, f: Filters, labels: Vector | None, page: int, size: int) -> dict[str, Any]:
        """One page of the grid with the total and the facet counts."""
        if not 1 <= size <= MAX_PAGE or page < 0:
            raise InvalidInputError(f"page >= 0 and 1 <= size <= {MAX_PAGE}")
        ex, _ = self.sync()
        mask = self.mask(f, labels)
        hits = np.flatnonzero(mask)
        shown = hits[page * size : (page + 1) * size]
        return {
            "total": len(hits),
            "all": len(self.index),
            "page": page,
            "size": size,
            "images": self.images_json(shown, ex),
            "facets": self.facets(mask),
        }

    def facets(self, mask: Vector) -> dict[str, dict[str, int]]:
        """Counts over the matching images, per value of each sidebar filter."""
        dl = self.downloads.state()
        rows = mask[self.index.image_of_row]
        count = self.index.images_with
        sources = {
            "human": count(rows & ~self.index.machine),
            "machine": count(rows & self.index.machine),
        }
        return {
            "split": _counts(self.index.splits, self.index.split[mask]),
            "dl": _counts(dl.statuses, dl.status[mask]),
            "ex": {
                "yes": int(np.count_nonzero(self.excluded[mask] > 0)),
                "no": int(np.count_nonzero(self.excluded[mask] == 0)),
            },
            "src": sources,
            "flags": {f: count(rows & self.index.flags[f]) for f in BOX_FLAGS},
        }

    def images_json(self, positions: Vector, ex: ExcludeList) -> list[dict[str, Any]]:
        """The images at ``positions`` as the page draws them."""
        rows = self.index.image_rows(positions)
        return [self._json(p, r, ex) for p, r in zip(positions.tolist(), rows, strict=True)]

    def _json(self, pos: int, rows: list[dict[str, Any]], ex: ExcludeList) -> dict[str, Any]:
        """One image: labels, boxes, download, exclusion, attribution."""
        dl = self.downloads.state()
        image_id, first = self.index.ids[pos], rows[0]
        status = dl.statuses[int(dl.status[pos])]
        return {
            "image_id": image_id,
            "position": pos,
            "split": first["split"],
            "width": int(dl.width[pos]),
            "height": int(dl.height[pos]),
            "download": status,
            "error": dl.error[pos] if status not in ("ok", NOT_DOWNLOADED) else None,
            "excluded": ex.images.get(image_id),
            "labels": _labels(rows),
            "boxes": [_box(r, ex.boxes.get((image_id, r["box_index"]))) for r in rows if _has(r)],
            **{k: first.get(k) for k in ATTRIBUTION},
            "license_name": licence_name(first.get("license")),
        }


def _code(names: list[str], value: str) -> int:
    return names.index(value) if value in names else -1


def _counts(names: list[str], codes: Vector) -> dict[str, int]:
    n = np.bincount(codes.astype(np.int64), minlength=len(names)).tolist()
    return {name: int(c) for name, c in zip(names, n, strict=False) if c}


def _has(row: dict[str, Any]) -> bool:
    return row.get("box_index") is not None


def _labels(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per class of the image (its boxes' rows share one label): the classes it
    shows first, then those a person verified it does not show (``role`` negative)."""
    seen: dict[str, dict[str, Any]] = {}
    for r in rows:
        conf = r.get("confidence")
        seen.setdefault(
            r["label_mid"],
            {
                "mid": r["label_mid"],
                "name": r["label_name"],
                "source": r.get("source") or "",
                "confidence": None if conf is None else round(float(conf), 3),
                "review": _VERDICT_NAMES[int(r["review"])],
                "role": r.get("role") or POSITIVE,
            },
        )
    return sorted(seen.values(), key=lambda label: label["role"] == NEGATIVE)


def _box(r: dict[str, Any], excluded: str | None) -> dict[str, Any]:
    return {
        "index": r["box_index"],
        "mid": r["label_mid"],
        "label": r["label_name"],
        **{k: r[k] for k in ("x_min", "x_max", "y_min", "y_max")},
        "flags": [f for f in BOX_FLAGS if r.get(f) == 1],
        "excluded": excluded,
    }
