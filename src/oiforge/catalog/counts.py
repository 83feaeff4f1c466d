"""Images and labels per class, per split: one place for every count of positives.

A *positive image* of a class is an image with a human-verified positive label of it
(``human_labels`` rows with Confidence 1), counted once however many rows say so; for machine
labels, an image with any machine label of the class. An image belongs to one split, so
per-split counts add up. Ingest keeps these counts beside each Parquet copy (``*.counts.parquet``:
``n`` rows and ``images`` distinct images per label), so they are read, not recounted; DuckDB
counts them where a file has none.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

from oiforge.contracts.selection import SPLITS

if TYPE_CHECKING:
    import duckdb

    from oiforge.catalog.catalog import Catalog

log = logging.getLogger(__name__)

COUNT_KINDS = {"human_labels": "positives", "boxes": "boxes"}
PerSplit = dict[str, dict[str, int]]  # split -> label MID -> count


def sidecar_positives(
    cat: Catalog, kind: str = "human_labels", splits: Iterable[str] | None = None
) -> PerSplit | None:
    """Positive images per split and label from the ingest's per-file counts; None when a file
    of ``kind`` (in ``splits``; default all) has none or none is ingested."""
    return _sidecar_sums(cat, kind, splits, "images", complete=True)


def sql_positives(
    con: duckdb.DuckDBPyConnection, kind: str = "human_labels", splits: Iterable[str] | None = None
) -> PerSplit:
    """The same counts with one ``GROUP BY`` over the ``kind`` view of ``con``."""
    where = ["label_mid IS NOT NULL"] + (["confidence = 1"] if kind == "human_labels" else [])
    params: list[str] = []
    if splits is not None:
        params = list(splits)
        where.append(f"split IN ({', '.join('?' for _ in params) or 'NULL'})")
    rows = con.execute(
        f"SELECT split, label_mid, count(DISTINCT image_id) FROM {kind} "
        f"WHERE {' AND '.join(where)} GROUP BY split, label_mid",
        params,
    ).fetchall()
    out: PerSplit = {}
    for split, mid, n in rows:
        out.setdefault(str(split), {})[str(mid)] = int(n)
    return out


def positives_by_split(
    cat: Catalog, kind: str = "human_labels", splits: Iterable[str] | None = None
) -> PerSplit:
    """Positive images per split and label: from the sidecars, else counted with DuckDB."""
    wanted = None if splits is None else list(splits)
    found = sidecar_positives(cat, kind, wanted)
    return found if found is not None else sql_positives(cat.connection, kind, wanted)


def positive_images(
    cat: Catalog, splits: Iterable[str] | None = None, kind: str = "human_labels"
) -> dict[str, int]:
    """Per label: positive images over ``splits`` (default: every ingested split)."""
    return sum_splits(positives_by_split(cat, kind, splits).values())


def sum_splits(per_split: Iterable[dict[str, int]]) -> dict[str, int]:
    """Per label: the counts of several splits added up."""
    out: dict[str, int] = {}
    for counts in per_split:
        for mid, n in counts.items():
            out[mid] = out.get(mid, 0) + n
    return out


def class_counts(cat: Catalog, mids: list[str] | None) -> pa.Table:
    """One row per class: ``label_mid, label_name, boxable, positives_<split>, boxes_<split>``
    (label rows and boxes, from the sidecars of what is ingested; 0 elsewhere)."""
    wanted = list(cat.classes.names) if mids is None else [cat.resolve(m).mid for m in mids]
    cols: dict[str, pa.Array] = {
        "label_mid": pa.array(wanted, pa.string()),
        "label_name": pa.array([cat.name(m) for m in wanted], pa.string()),
        "boxable": pa.array([m in cat.classes.boxable for m in wanted], pa.bool_()),
    }
    for kind, prefix in COUNT_KINDS.items():
        per_split = _sidecar_sums(cat, kind, SPLITS, "n", complete=False) or {}
        for split in SPLITS:
            column = per_split.get(split, {})
            cols[f"{prefix}_{split}"] = pa.array([column.get(m, 0) for m in wanted], pa.int64())
    return pa.table(cols)


def _sidecar_sums(
    cat: Catalog, kind: str, splits: Iterable[str] | None, column: str, *, complete: bool
) -> PerSplit | None:
    """``column`` of the per-file counts summed per split and label. ``complete``: None when
    a file has no readable counts (else such files are skipped)."""
    wanted: Sequence[str] | None = None if splits is None else list(splits)
    files = [
        i for i in cat.ingested.values()
        if i.kind == kind and (wanted is None or i.split in wanted)
    ]  # fmt: skip
    if complete and not files:
        return None
    out: PerSplit = {}
    for item in files:
        try:
            if item.counts is None:
                raise FileNotFoundError("no counts file")
            data = pq.read_table(item.counts, columns=["label_mid", column]).to_pydict()
        except (OSError, pa.ArrowException, KeyError) as exc:
            if not complete:
                continue
            log.info("counting %s with DuckDB: %s", item.relpath, exc)
            return None
        per_label = out.setdefault(item.split, {})
        for mid, n in zip(data["label_mid"], data[column], strict=True):
            if mid is not None:
                per_label[mid] = per_label.get(mid, 0) + int(n)
    return out
