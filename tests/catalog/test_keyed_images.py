"""Machine-label rows take their image columns from the keyed image list (``ingest.own_images``):
same rows as the plain-table route (``select`` and ``select_into``), rebuilt when stale, never
taken as good when torn or half built."""

from __future__ import annotations

from importlib import import_module
from pathlib import Path
from unittest import mock

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tests.helpers.catalog import image_row, write_tables

from oiforge.catalog import open_catalog, select, select_into
from oiforge.catalog.catalog import Catalog
from oiforge.catalog.select import expand_classes, resolve_targets, select_plain
from oiforge.spec import SelectSpec

CAT, DOG = "/m/01yrx", "/m/0bt9lr"
#: image ids: human-labelled, machine-only (train), machine-only (validation), unlisted (one
#: above every listed key of train, one below)
HUMAN, MACHINE, VAL, UNLISTED, BELOW = (f"{n:016x}" for n in (0x10, 0xAB12, 0xC0FFEE, 0xFFFF, 0x1))


def _write(home: Path, title: str = "") -> None:
    def img(iid: str, split: str) -> list[str]:
        row = image_row(iid, split)
        row[7] += title
        return row

    write_tables(
        home,
        "v7",
        {
            "images": {
                "train": [
                    img(HUMAN, "train"),
                    img(MACHINE, "train"),
                    img("ABCDEF0123456789", "train"),
                ],
                "validation": [img(VAL, "validation")],
            },
            "human_labels": {"train": [[HUMAN, "verification", CAT, "1"]]},
            "machine_labels": {
                "train": [
                    [MACHINE, "machine", CAT, "0.8"],
                    [MACHINE, "machine", DOG, "0.6"],
                    [HUMAN, "machine", DOG, "0.9"],
                    [UNLISTED, "machine", CAT, "0.7"],  # not in the image list: null metadata
                    [BELOW, "machine", DOG, "0.7"],
                    ["ABCDEF0123456789", "machine", CAT, "0.9"],  # not a valid ImageID
                    [MACHINE.upper(), "machine", DOG, "0.9"],
                ],
                "validation": [[VAL, "machine", DOG, "0.5"], [VAL, "machine", CAT, "0.2"]],
            },
        },
    )


SPECS = [
    SelectSpec(classes=("Cat", "Dog"), min_confidence=0.5),
    SelectSpec(classes=("Cat", "Dog"), min_confidence=0.5, multi_label="multi"),
    SelectSpec(classes=("Cat", "Dog"), min_confidence=0.5, multi_label="keep-first"),
    SelectSpec(classes=("Dog",), min_confidence=0.1, splits=("validation", "train")),
]


#: train only: one keyed image list
TRAIN = SelectSpec(
    classes=("Cat", "Dog"), min_confidence=0.5, multi_label="multi", splits=("train",)
)


def _plain(cat: Catalog, spec: SelectSpec) -> pa.Table:
    targets = resolve_targets(cat, spec)
    excluded = expand_classes(cat, spec.exclude_images_with)
    return select_plain(cat.connection, spec, targets, excluded, True).table


def _keyed(home: Path) -> list[Path]:
    return sorted((home / "parquet").rglob("*.keyed.arrow"))


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.multi_label}-{len(s.splits)}")
@pytest.mark.parametrize("batch_rows", [65_536, 1], ids=["one-batch", "a-batch-an-image"])
def test_machine_rows_equal_the_plain_table_route(
    tmp_path: Path, spec: SelectSpec, batch_rows: int
) -> None:
    _write(tmp_path)
    out = tmp_path / "selection.parquet"
    with (
        mock.patch.object(import_module("oiforge.catalog.ingest"), "_KEYED_ROWS", batch_rows),
        open_catalog("v7", home=tmp_path, fetch_missing=False) as cat,
    ):
        got = select(spec, catalog=cat).table
        assert got.equals(_plain(cat, spec))
        with mock.patch.object(import_module("oiforge.catalog.select"), "_SLICE_ROWS", 2):
            written = select_into(spec, out, catalog=cat)  # 2 rows a slice
    back = pq.read_table(out)
    assert back.equals(got) and back.schema.metadata == got.schema.metadata
    assert written.num_rows == got.num_rows
    rows = got.to_pylist()
    assert VAL in {r["image_id"] for r in rows}  # machine labels only, validation
    for r in rows:
        listed = r["image_id"] not in (UNLISTED, BELOW)
        want = image_row(r["image_id"], r["split"])[7] if listed else None
        assert r["title"] == want
    assert not {"abcdef0123456789", "ABCDEF0123456789"} & {r["image_id"] for r in rows}


def test_a_changed_image_list_rebuilds_the_keyed_copy(tmp_path: Path) -> None:
    spec = TRAIN
    _write(tmp_path)
    with open_catalog("v7", home=tmp_path, fetch_missing=False) as cat:
        select(spec, catalog=cat)
    assert [p.name.split("-")[1] for p in _keyed(tmp_path)] == ["train"]  # the splits asked
    _write(tmp_path, title=" (revised)")
    with open_catalog("v7", home=tmp_path, fetch_missing=False) as cat:
        rows = select(spec, catalog=cat).table.to_pylist()
    titles = {r["image_id"]: r["title"] for r in rows}
    assert titles[MACHINE] == image_row(MACHINE, "train")[7] + " (revised)"


@pytest.mark.parametrize("damage", ["torn", "no index", "old layout", "leftover temp"])
def test_a_torn_or_old_keyed_copy_is_never_taken_as_good(tmp_path: Path, damage: str) -> None:
    spec = TRAIN
    _write(tmp_path)
    with open_catalog("v7", home=tmp_path, fetch_missing=False) as cat:
        want = select(spec, catalog=cat).table
    (keyed,) = _keyed(tmp_path)
    index = keyed.with_suffix(".json")
    if damage == "torn":  # a list cut short under its final name, its index intact
        keyed.write_bytes(keyed.read_bytes()[: keyed.stat().st_size // 2])
    elif damage == "no index":  # a build killed after the list, before its index
        keyed.write_bytes(keyed.read_bytes()[: keyed.stat().st_size // 2])
        index.unlink()
    elif damage == "old layout":  # an index of another layout version
        index.write_text(index.read_text().replace('"v": ', '"v": 1'))
    else:  # a killed build's temporary file, and no list
        keyed.rename(keyed.with_name(f".{keyed.name}.12345.tmp"))
    with open_catalog("v7", home=tmp_path, fetch_missing=False) as cat:
        assert select(spec, catalog=cat).table.equals(want)
    assert _keyed(tmp_path) == [keyed] and index.exists()
