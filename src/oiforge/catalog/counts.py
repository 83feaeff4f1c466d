"""Per-class counts (human-verified positives and boxes per split) from the ingest sidecars."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

from oiforge.contracts import SPLITS

if TYPE_CHECKING:
    from oiforge.catalog.catalog import Catalog

COUNT_KINDS = {"human_labels": "positives", "boxes": "boxes"}


def class_counts(cat: Catalog, mids: list[str] | None) -> pa.Table:
    """One row per class: ``label_mid, label_name, boxable, positives_<split>, boxes_<split>``."""
    wanted = list(cat.classes.names) if mids is None else [cat.resolve(m).mid for m in mids]
    totals: dict[str, dict[str, int]] = {
        f"{prefix}_{s}": {} for prefix in COUNT_KINDS.values() for s in SPLITS
    }
    for done in cat.ingested.values():
        if done.kind not in COUNT_KINDS or done.counts is None or done.split not in SPLITS:
            continue
        column = totals[f"{COUNT_KINDS[done.kind]}_{done.split}"]
        data = pq.read_table(done.counts, columns=["label_mid", "n"]).to_pydict()
        for mid, n in zip(data["label_mid"], data["n"], strict=True):
            column[mid] = column.get(mid, 0) + int(n)
    cols: dict[str, pa.Array] = {
        "label_mid": pa.array(wanted, pa.string()),
        "label_name": pa.array([cat.name(m) for m in wanted], pa.string()),
        "boxable": pa.array([m in cat.classes.boxable for m in wanted], pa.bool_()),
    }
    for name, column in totals.items():
        cols[name] = pa.array([column.get(m, 0) for m in wanted], pa.int64())
    return pa.table(cols)
