"""Leakage: no ImageID and no (near-)duplicate photo in two splits, official or re-split."""

from __future__ import annotations

import io
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image

from oiforge.build import BuildInputs, build_dataset
from oiforge.build.synthetic import (
    SyntheticSet,
    image_id_for,
    photo_like,
    selection_row,
    store_file,
    write_selection,
)
from oiforge.spec import BuildSpec

BOX = {"x_min": 0.1, "x_max": 0.7, "y_min": 0.1, "y_max": 0.8}


def _reencoded(data: bytes) -> bytes:
    """The same photo, slightly smaller and re-encoded at another quality."""
    im = Image.open(io.BytesIO(data)).convert("RGB")
    buf = io.BytesIO()
    im.resize((600, 450), Image.Resampling.BILINEAR).save(buf, "JPEG", quality=70)
    return buf.getvalue()


@pytest.fixture(scope="module")
def dupes(tmp_path_factory: pytest.TempPathFactory) -> SyntheticSet:
    """12 distinct photos; photo 0 also appears as an exact copy and a re-encoded copy."""
    root = tmp_path_factory.mktemp("dupes")
    splits = ["train", "validation", "test"]
    rows, ids = [], []
    for n in range(12):
        iid = image_id_for(700 + n)
        ids.append(iid)
        store_file(root / "store", iid).parent.mkdir(parents=True, exist_ok=True)
        store_file(root / "store", iid).write_bytes(photo_like(100 + n))
        for b in range(2):
            rows.append(selection_row(iid, f"/m/{n % 2}", f"C{n % 2}", splits[n % 3],
                                      box_index=b, **BOX))  # fmt: skip
    original = store_file(root / "store", ids[0]).read_bytes()
    for k, (data, split) in enumerate([(original, "test"), (_reencoded(original), "validation")]):
        iid = image_id_for(800 + k)
        store_file(root / "store", iid).parent.mkdir(parents=True, exist_ok=True)
        store_file(root / "store", iid).write_bytes(data)
        rows.append(selection_row(iid, "/m/1", "C1", split, box_index=0, **BOX))
        ids.append(iid)
    write_selection(root / "selection.parquet", rows)
    return SyntheticSet(root / "store", root / "selection.parquet", ids)


def _split_sets(out: Path) -> dict[str, set[str]]:
    by: dict[str, set[str]] = {}
    for r in pq.read_table(out / "manifest.parquet").to_pylist():
        by.setdefault(r["source_sha256"], set()).add(r["split"])
        by.setdefault(r["image_id"], set()).add(r["split"])
    return by


@pytest.mark.parametrize("split", ["official", (0.5, 0.25, 0.25)])
def test_no_photo_or_copy_in_two_splits(dupes: SyntheticSet, tmp_path: Path, split: object) -> None:
    spec = BuildSpec.model_validate({"size": 48, "split": split})
    out = build_dataset(
        BuildInputs(dupes.selection, dupes.store, tmp_path / "ds", spec, workers=1)
    ).out
    assert all(len(s) == 1 for s in _split_sets(out).values())
    manifest = pq.read_table(out / "manifest.parquet").to_pylist()
    exported = {r["image_id"] for r in manifest}
    copies = {dupes.image_ids[0], dupes.image_ids[-2], dupes.image_ids[-1]}
    excluded = pq.read_table(out / "excluded.parquet").to_pylist()
    reasons = {e["image_id"]: e["reason"] for e in excluded}
    assert dupes.image_ids[-2] in reasons or dupes.image_ids[0] in reasons  # exact copy dropped
    kept = copies & exported
    assert len({r["split"] for r in manifest if r["image_id"] in kept}) == 1
    if split == "official":
        assert kept == {dupes.image_ids[-2]}  # the test copy wins; others excluded
        assert reasons[dupes.image_ids[-1]].startswith("near_duplicate_in_test")


def test_dedupe_off_keeps_copies(dupes: SyntheticSet, tmp_path: Path) -> None:
    spec = BuildSpec(size=48, dedupe=False)
    res = build_dataset(BuildInputs(dupes.selection, dupes.store, tmp_path / "ds", spec, workers=1))
    assert res.samples == 12 * 2 + 2
