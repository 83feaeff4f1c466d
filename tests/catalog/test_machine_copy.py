"""Machine labels are read from their selection copy (key rows: integer ``image_key``, class
groups, ``selcopy``): the same rows as the plain-table route (``select_plain``) on real classes,
rebuilt when its index is missing, torn, of another version or its source changed."""

from __future__ import annotations

import json
from importlib import import_module
from pathlib import Path
from unittest import mock

import pyarrow.parquet as pq
import pytest
from tests.helpers.catalog import image_row, write_tables

from oiforge.catalog import open_catalog, select, select_into
from oiforge.catalog.catalog import Catalog
from oiforge.catalog.selcopy import copy_paths
from oiforge.catalog.select import expand_classes, resolve_targets, select_plain
from oiforge.spec import SelectSpec

CAT, DOG, BEAR = "/m/01yrx", "/m/0bt9lr", "/m/01dws"


def _id(n: int) -> str:
    return f"{n * 2654435761 % 2**64:016x}"


A, B, C, D, E, F = (_id(n) for n in range(1, 7))


def _write(home: Path, extra: list[list[str]] | None = None) -> None:
    machine = [
        [A, "machine", CAT, "0.5"],  # exactly min_confidence: kept
        [A, "machine", DOG, "0.49999"],  # just below: dropped
        [B, "machine", CAT, "0.9"],  # a human verified Cat absent: vetoed in multi mode
        [B, "machine", DOG, "0.7"],
        [C, "machine-b", BEAR, "0.8"],  # same confidence, two sources: the first source
        [C, "machine-a", BEAR, "0.8"],
        [C, "machine", CAT, "0.6"],  # Carnivore (expanded): Bear's 0.8 wins over Cat's 0.6
        [D, "machine", DOG, "0.95"],  # a human positive of Dog wins over it
        [E, "machine", DOG, "1.0"],
        [E, "machine", CAT, "0.3"],
        [F, "machine", BEAR, "0.5"],  # the negative of Carnivore vetoes it (expand-up)
        *(extra or []),
    ]
    human = [
        [B, "verification", CAT, "0"],
        [D, "verification", DOG, "1"],
        [E, "verification", CAT, "1"],
        [F, "verification", "/m/01lrl", "0"],  # Carnivore verified absent
    ]
    ids = [A, B, C, D, E, F]
    write_tables(
        home,
        "v7",
        {
            "images": {"train": [image_row(i, "train") for i in ids]},
            "human_labels": {"train": human},
            "machine_labels": {"train": machine},
        },
    )


SPECS = [
    SelectSpec(classes=("Cat", "Dog"), min_confidence=0.5),
    SelectSpec(classes=("Cat", "Dog"), min_confidence=0.5, multi_label="keep-first"),
    SelectSpec(classes=("Cat", "Dog"), min_confidence=0.5, multi_label="multi"),
    SelectSpec(classes=("Cat", "Dog", "Bear"), min_confidence=0.0, multi_label="multi"),
    SelectSpec(classes=("Cat", "Dog"), min_confidence=1.0, multi_label="multi"),
    SelectSpec(classes=({"name": "Carnivore", "expand": True},), min_confidence=0.5),
    SelectSpec(
        classes=({"name": "Carnivore", "expand": True}, "Dog"),
        min_confidence=0.5,
        multi_label="multi",
    ),
    SelectSpec(classes=("Cat", "Bear"), min_confidence=0.5, multi_label="multi", expand_up=True),
]


def _plain(cat: Catalog, spec: SelectSpec) -> list[dict[str, object]]:
    targets = resolve_targets(cat, spec)
    excluded = expand_classes(cat, spec.exclude_images_with)
    return select_plain(cat.connection, spec, targets, excluded, True).table.to_pylist()


@pytest.mark.parametrize("memory_rows", [1 << 22, 0], ids=["groups-in-memory", "parquet-scan"])
def test_machine_copy_rows_equal_the_plain_table_route(tmp_path: Path, memory_rows: int) -> None:
    _write(tmp_path)
    out = tmp_path / "selection.parquet"
    selcopy = import_module("oiforge.catalog.selcopy")
    with (
        mock.patch.object(selcopy, "_MEMORY_ROWS", memory_rows),
        mock.patch.object(selcopy, "_GROUP_ROWS", 2),  # several class groups
        mock.patch.object(selcopy, "_MIN_GROUP_ROWS", 1),
        open_catalog("v7", home=tmp_path, fetch_missing=False) as cat,
    ):
        for spec in SPECS:
            got = select(spec, catalog=cat).table
            assert got.to_pylist() == _plain(cat, spec), spec
            with mock.patch.object(import_module("oiforge.catalog.select"), "_SLICE_ROWS", 2):
                select_into(spec, out, catalog=cat)
            back = pq.read_table(out)
            assert back.equals(got) and back.schema.metadata == got.schema.metadata
    assert list(tmp_path.rglob("*machine*.selkeys.parquet"))
    assert not list(tmp_path.rglob("*machine*.selrows.arrow"))  # key rows only


def _rows(home: Path, spec: SelectSpec) -> list[tuple[object, ...]]:
    with open_catalog("v7", home=home, fetch_missing=False) as cat:
        got = select(spec, catalog=cat).table
        assert got.to_pylist() == _plain(cat, spec)
    return [(r["image_id"], r["label_name"], r["source"], r["confidence"]) for r in got.to_pylist()]


def test_the_choices_the_copy_makes(tmp_path: Path) -> None:
    """What the order of the copy decides, spelled out: the edge of ``min_confidence``, the
    first source of a tie, the highest confidence of an expanded class, a human positive over
    a machine label, a verified negative's veto."""
    _write(tmp_path)
    drop = _rows(tmp_path, SPECS[5])  # Carnivore, expanded
    assert (C, "Carnivore", "machine-a", 0.800000011920929) in drop
    assert (F, "Carnivore", "machine", 0.5) in drop
    multi = _rows(tmp_path, SPECS[2])
    assert (A, "Cat", "machine", 0.5) in multi and not any(r[:2] == (A, "Dog") for r in multi)
    assert (B, "Cat", "verification", 0.0) in multi  # its verified negative, and no
    assert not any(r[:3] == (B, "Cat", "machine") for r in multi)  # machine label: vetoed
    assert (D, "Dog", "verification", 1.0) in multi
    up = _rows(tmp_path, SPECS[7])  # Carnivore verified absent on F: vetoes Bear there
    assert not any(r[0] == F for r in up)


def _index(home: Path) -> Path:
    (parquet,) = (home / "parquet").rglob("*train-annotations-machine*.csv.parquet")
    return copy_paths(parquet)[2]


@pytest.mark.parametrize("damage", ["no index", "torn", "old version", "changed source"])
def test_a_torn_stale_or_old_machine_copy_is_rebuilt(tmp_path: Path, damage: str) -> None:
    spec = SPECS[2]
    _write(tmp_path)
    want = _rows(tmp_path, spec)
    index = _index(tmp_path)
    keys = copy_paths(index.with_name(index.name.replace(".sel.json", ".parquet")))[0]
    built = keys.stat().st_mtime_ns
    if damage == "no index":  # a build killed after the key rows, before the index
        index.unlink()
    elif damage == "torn":  # key rows cut short under their final name, the index intact
        keys.write_bytes(keys.read_bytes()[: keys.stat().st_size // 2])
    elif damage == "old version":
        entry = json.loads(index.read_text())
        entry["stamp"] = entry["stamp"].replace('"machine-', '"machine-0')
        index.write_text(json.dumps(entry))
    else:  # new machine labels: the Parquet copy is converted again, the copy rebuilt
        _write(tmp_path, extra=[[A, "machine", DOG, "0.75"]])
        want = [*want[:1], (A, "Dog", "machine", 0.75), *want[1:]]
    got = _rows(tmp_path, spec)
    assert sorted(got, key=str) == sorted(want, key=str)
    assert index.exists() and keys.stat().st_mtime_ns != built
