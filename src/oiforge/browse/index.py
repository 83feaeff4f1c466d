"""The selection as column arrays grouped per image: filters are NumPy masks, a page is a take.

``selection.parquet`` is read once and sorted by ImageID (boxes in ``box_index`` order), so an
image's rows are one run ``starts[i]:starts[i + 1]``. A filter on rows (class, label source and
confidence, box flags, review verdict) is a row mask reduced per image with
``logical_or.reduceat``; filters on images (split, download, excluded, text) are image masks.
100,000 images filter in a few milliseconds; only the page's rows ever become Python objects.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from oiforge.arrays import to_numpy
from oiforge.contracts import ATTRIBUTION_COLUMNS, BOX_FLAGS, SELECTION_SCHEMA
from oiforge.contracts.selection import NEGATIVE, ROLE_FIELD
from oiforge.errors import InvalidInputError
from oiforge.errtext import exception_text
from oiforge.reviews import REVIEWED_SOURCE

Vector = np.ndarray[Any, Any]
ATTRIBUTION: Final = ATTRIBUTION_COLUMNS
_BOX: Final = ("x_min", "x_max", "y_min", "y_max")
_COLUMNS: Final = (
    "image_id",
    "split",
    "label_mid",
    "label_name",
    "source",
    "confidence",
    "box_index",
    *_BOX,
    *BOX_FLAGS,
    *ATTRIBUTION,
)
#: review verdict codes of a row (``ImageIndex.review``)
UNREVIEWED, CONFIRMED, REJECTED = 0, 1, 2


@dataclass(frozen=True)
class RowFilter:
    """What a selection row must be: of these label codes, this source, these flags."""

    labels: Vector | None = None  # int32 label codes, or None for any
    source: str = ""  # "", "human" or "machine"
    conf_min: float = 0.0
    conf_max: float = 1.0
    flags: tuple[str, ...] = ()
    review: int | None = None  # a verdict code (machine labels only), or None


def _codes(column: pa.ChunkedArray) -> tuple[list[str], Vector]:
    encoded = pc.dictionary_encode(column.combine_chunks())
    return encoded.dictionary.to_pylist(), to_numpy(encoded.indices).astype(np.int32)


class ImageIndex:
    """One selection, grouped per image (see the module docstring)."""

    def __init__(self, table: pa.Table) -> None:
        order = pc.sort_indices(table, [("image_id", "ascending"), ("box_index", "ascending")])
        self.rows = table.take(order)
        ids = self.rows.column("image_id").combine_chunks()
        n = len(ids)
        first: Vector = np.zeros(0, np.int64)
        if n:
            first = np.flatnonzero(np.r_[True, to_numpy(pc.not_equal(ids[1:], ids[:-1]))])
        self.starts = np.r_[first.astype(np.int64), n]
        self.ids: list[str] = ids.take(pa.array(self.starts[:-1])).to_pylist()
        self.position = {iid: i for i, iid in enumerate(self.ids)}
        self.mids, self.label = _codes(self.rows.column("label_mid"))
        names = self.rows.column("label_name").to_pylist()
        self.names = {self.mids[c]: names[r] for r, c in enumerate(self.label)} if n else {}
        self.splits, split_rows = _codes(self.rows.column("split"))
        self.split = split_rows[self.starts[:-1]] if n else np.zeros(0, np.int32)
        self.image_of_row = np.repeat(
            np.arange(len(self.ids), dtype=np.int32), np.diff(self.starts)
        )
        #: rows of a human-verified negative (``role`` negative: the photo does NOT show it)
        self.negative: Vector = np.zeros(n, bool)
        if "role" in self.rows.column_names:
            role = self.rows.column("role").combine_chunks()
            self.negative = to_numpy(pc.fill_null(pc.equal(role, NEGATIVE), False))
        self._rows_arrays()
        self.review = np.zeros(n, np.int8)
        self.label_images = self._images_per_label()

    def _rows_arrays(self) -> None:
        src = self.rows.column("source").combine_chunks()
        self.machine = to_numpy(pc.fill_null(pc.equal(src, "machine"), False))
        self.reviewed = to_numpy(pc.fill_null(pc.equal(src, REVIEWED_SOURCE), False))
        conf = self.rows.column("confidence").combine_chunks().cast(pa.float32())
        self.conf = to_numpy(pc.fill_null(conf, 1.0))
        self.has_box = to_numpy(pc.is_valid(self.rows.column("box_index").combine_chunks()))
        self.flags = {
            f: to_numpy(pc.fill_null(pc.equal(self.rows.column(f).combine_chunks(), 1), False))
            for f in BOX_FLAGS
        }
        text = pc.binary_join_element_wise(
            pc.fill_null(self.rows.column("title"), ""),
            pc.fill_null(self.rows.column("author"), ""),
            " ",
        )
        self.text = pc.utf8_lower(text.combine_chunks().take(pa.array(self.starts[:-1])))

    @classmethod
    def load(cls, selection: Path | None) -> ImageIndex:
        """The index of ``selection.parquet`` (``None`` → an empty selection)."""
        if selection is None:
            return cls(SELECTION_SCHEMA.empty_table().select(list(_COLUMNS)))
        try:
            names = set(pq.read_schema(selection).names)
            table = pq.read_table(
                selection, columns=[*_COLUMNS, *(["role"] if "role" in names else [])]
            )
        except (OSError, ValueError, KeyError) as exc:
            why = exception_text(exc)
            raise InvalidInputError(f"cannot read selection {selection}: {why}") from exc
        schema = SELECTION_SCHEMA.empty_table().select(list(_COLUMNS)).schema
        if "role" in table.column_names:
            schema = schema.append(ROLE_FIELD)
        return cls(table.cast(schema))

    def __len__(self) -> int:
        return len(self.ids)

    def label_codes(self, mids: set[str]) -> Vector:
        """The label codes of those of ``mids`` the selection has."""
        return np.array([i for i, m in enumerate(self.mids) if m in mids], np.int32)

    def row_mask(self, f: RowFilter) -> Vector | None:
        """Rows that pass ``f`` (None: every row passes)."""
        mask: Vector | None = None

        def both(m: Vector) -> None:
            nonlocal mask
            mask = m if mask is None else mask & m

        if f.labels is not None:  # photos that show the class (not its verified negatives)
            both(np.isin(self.label, f.labels) & ~self.negative)
        if f.source == "human":
            both(~self.machine)
        elif f.source == "machine":
            both(self.machine & (self.conf >= f.conf_min) & (self.conf <= f.conf_max))
        for flag in f.flags:
            both(self.flags[flag])
        if f.review is not None:
            both((self.machine | self.reviewed) & (self.review == f.review))
        return mask

    def _images_per_label(self) -> list[Vector]:
        """For each label code, the sorted positions of the images that show it (a verified
        negative row does not count)."""
        shown = np.flatnonzero(~self.negative)
        label, image = self.label[shown], self.image_of_row[shown]
        order = np.argsort(label, kind="stable")
        cuts = np.searchsorted(label[order], np.arange(1, len(self.mids)))
        return [np.unique(a) for a in np.split(image[order], cuts)]

    def count_images(self, codes: Vector) -> int:
        """How many images have a row with one of the label ``codes`` (a union of the
        per-label image lists, so a tree of 90 classes costs one pass over the rows)."""
        parts = [self.label_images[int(c)] for c in codes]
        if len(parts) <= 1:
            return len(parts[0]) if parts else 0
        return len(np.unique(np.concatenate(parts)))

    def per_image(self, rows: Vector) -> Vector:
        """An image mask: images with at least one row in ``rows`` (a scatter: ~10x faster
        than ``logical_or.reduceat`` over 100,000 short runs)."""
        out = np.zeros(len(self.ids), bool)
        out[self.image_of_row[np.flatnonzero(rows)]] = True
        return out

    def images_with(self, rows: Vector) -> int:
        """How many images have a row in ``rows`` (rows are in image order: count the runs)."""
        hit = self.image_of_row[np.flatnonzero(rows)]  # 5x faster than a boolean index here
        return int(len(hit) and 1 + np.count_nonzero(hit[1:] != hit[:-1]))

    def matching_text(self, query: str) -> Vector:
        """Images whose ImageID starts with ``query`` or whose title/author holds every word."""
        words = query.lower().split()
        if not words:
            return np.ones(len(self.ids), bool)
        mask = np.ones(len(self.ids), bool)
        for w in words:
            mask &= to_numpy(pc.match_substring(self.text, w))
        if len(words) == 1:
            ids = pa.array(self.ids, pa.string())
            mask |= to_numpy(pc.starts_with(ids, words[0]))
        return mask

    def image_rows(self, positions: Vector) -> list[list[dict[str, Any]]]:
        """The rows (as dicts) of each image at ``positions``."""
        spans = [(int(self.starts[p]), int(self.starts[p + 1])) for p in positions]
        take = np.concatenate([np.arange(a, b) for a, b in spans]) if spans else np.zeros(0)
        rows = self.rows.take(pa.array(take, pa.int64())).to_pylist()
        review = self.review[take.astype(np.int64)].tolist() if len(take) else []
        for row, verdict in zip(rows, review, strict=True):
            row["review"] = verdict
        out, at = [], 0
        for a, b in spans:
            out.append(rows[at : at + b - a])
            at += b - a
        return out

    def set_reviews(self, verdicts: dict[tuple[str, str], int]) -> None:
        """Mark rows with their review verdict (codes), from ``(image_id, mid)`` keys."""
        review = np.zeros(len(self.label), np.int8)
        code_of = {m: i for i, m in enumerate(self.mids)}
        for (image_id, mid), verdict in verdicts.items():
            pos, code = self.position.get(image_id), code_of.get(mid)
            if pos is None or code is None:
                continue
            a, b = int(self.starts[pos]), int(self.starts[pos + 1])
            review[a:b][self.label[a:b] == code] = verdict
        self.review = review
