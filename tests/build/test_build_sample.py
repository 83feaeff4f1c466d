"""The build over the mirror sample: real-shaped photos (EXIF orientations, odd sizes, planted
faults) copied into a store, one image-level row per (image, first class)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from oiforge.build import BuildInputs, build_dataset, verify_dataset
from oiforge.build.synthetic import selection_row, store_file, write_selection
from oiforge.contracts import DATASET_SPLIT_OF
from oiforge.spec import BuildSpec

pytestmark = pytest.mark.slow


def _store_and_selection(sample_root: Path, tmp_path: Path) -> tuple[Path, Path, dict[str, Any]]:
    import json

    facts = json.loads((sample_root / "sample.json").read_text())
    names = {c["mid"]: c["name"] for c in facts["classes"]}
    rows, images = [], {}
    for im in facts["images"]:
        if not im["classes"]:
            continue
        src = sample_root / "open-images-dataset" / im["split"] / f"{im['image_id']}.jpg"
        if src.is_file():
            dst = store_file(tmp_path / "store", im["image_id"])
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
        mid = im["classes"][0]
        rows.append(
            selection_row(
                im["image_id"], mid, names[mid], im["split"], rotation=float(im["rotation"] or 0)
            )
        )
        images[im["image_id"]] = im
    write_selection(tmp_path / "selection.parquet", rows)
    return tmp_path / "store", tmp_path / "selection.parquet", images


def test_sample_builds_and_accounts_for_every_image(sample_root: Path, tmp_path: Path) -> None:
    store, selection, images = _store_and_selection(sample_root, tmp_path)
    spec = BuildSpec(size=96, aspect="square-crop", formats=("folders", "webdataset"))
    result = build_dataset(BuildInputs(selection, store, tmp_path / "ds", spec, workers=2))
    manifest = pq.read_table(result.out / "manifest.parquet").to_pylist()
    excluded = pq.read_table(result.out / "excluded.parquet").to_pylist()
    assert result.samples > 0
    assert {r["image_id"] for r in manifest} | {e["image_id"] for e in excluded} == set(images)
    for r in manifest:
        assert (r["width"], r["height"]) == (96, 96)
        assert r["split"] == DATASET_SPLIT_OF[images[r["image_id"]]["split"]]
    for e in excluded:
        if not store_file(store, e["image_id"]).exists():
            assert e["reason"] == "missing"
    assert verify_dataset(result.out).ok
