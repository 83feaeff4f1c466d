"""Valid but less common store files: multi-picture JPEGs (MPO) build like plain JPEGs."""

from __future__ import annotations

import io
from pathlib import Path

import pyarrow.parquet as pq
from PIL import Image

from oiforge.build import BuildInputs, build_dataset
from oiforge.build.synthetic import (
    image_id_for,
    photo_like,
    selection_row,
    store_file,
    write_selection,
)
from oiforge.spec import BuildSpec


def _mpo(primary: bytes) -> bytes:
    """A two-frame MPO whose first frame is ``primary``'s pixels (as cameras write them)."""
    first = Image.open(io.BytesIO(primary)).convert("RGB")
    buf = io.BytesIO()
    first.save(buf, "MPO", save_all=True, append_images=[first.rotate(180)], quality=95)
    return buf.getvalue()


def test_mpo_is_decoded_as_its_first_frame(tmp_path: Path) -> None:
    store, rows = tmp_path / "store", []
    box = {"box_index": 0, "x_min": 0.1, "x_max": 0.7, "y_min": 0.2, "y_max": 0.8}
    for n, data in enumerate((_mpo(photo_like(5)), photo_like(6))):
        iid = image_id_for(700 + n)
        store_file(store, iid).parent.mkdir(parents=True, exist_ok=True)
        store_file(store, iid).write_bytes(data)
        rows.append(selection_row(iid, "/m/a", "Cat", "train", **box))
    write_selection(tmp_path / "selection.parquet", rows)
    spec = BuildSpec(size=64, dedupe=False)
    inputs = BuildInputs(tmp_path / "selection.parquet", store, tmp_path / "ds", spec, workers=1)
    result = build_dataset(inputs)
    assert result.samples == 2 and not result.excluded
    manifest = pq.read_table(result.out / "manifest.parquet").to_pylist()
    assert all(r["crop"].startswith("crop ") for r in manifest)
