"""Fixtures for the distributed tests: a selection of the whole mirror sample."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from oiforge.contracts import SELECTION_SCHEMA


def selection_rows(sample_root: Path) -> list[dict[str, object]]:
    """One row per (image, class) of the sample, as `oiforge select` would write them."""
    facts = json.loads((sample_root / "sample.json").read_text(encoding="utf-8"))
    rows: list[dict[str, object]] = []
    for im in facts["images"]:
        for mid in im["classes"]:
            rows.append(
                {
                    "image_id": im["image_id"],
                    "split": im["split"],
                    "label_mid": mid,
                    "label_name": mid,
                    "original_url": im["original_url"],
                    "thumbnail_url": im["thumbnail_url"],
                    "original_size": im["original_size"],
                    "original_md5": im["original_md5"],
                    "rotation": float(im["rotation"]) if im["rotation"] else None,
                }
            )
    return rows


def table_of(rows: list[dict[str, object]]) -> pa.Table:
    columns = {f.name: [r.get(f.name) for r in rows] for f in SELECTION_SCHEMA}
    return pa.table(columns, schema=SELECTION_SCHEMA)


@pytest.fixture(scope="session")
def sample_selection(sample_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("dist-selection") / "selection.parquet"
    pq.write_table(table_of(selection_rows(sample_root)), path)
    return path
