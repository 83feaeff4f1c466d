"""The PostgreSQL catalog: COPY load, idempotence, the same selection as DuckDB, clear errors."""

from __future__ import annotations

import socket
from pathlib import Path

import psycopg
import pytest
from tests.catalog.test_select import BEAR, CAT, DOG, GROUP, NOFLAGS, PERSON, Image, build

from oiforge.catalog import select
from oiforge.catalog.catalog import Catalog
from oiforge.postgres import PostgresError, load_catalog, select_pg
from oiforge.spec import BoxFlags, SelectSpec

IMAGES: list[Image] = [
    ("train", [(CAT, 1, None, [NOFLAGS, GROUP])]),
    ("train", [(CAT, 1, None, [NOFLAGS]), (DOG, 1, None, [NOFLAGS])]),
    ("train", [(DOG, 1, None, [NOFLAGS]), (PERSON, 1, None, [])]),
    ("validation", [(CAT, 1, 0.9, [NOFLAGS])]),
    ("test", [(DOG, 0, 0.8, [])]),
    ("train", [(BEAR, 1, None, [NOFLAGS, NOFLAGS, GROUP])]),
    ("validation", [(CAT, 1, None, []), (BEAR, 1, 0.7, [NOFLAGS])]),
    ("train", [(DOG, 0, None, []), (CAT, 0, 0.6, []), (BEAR, 1, None, [])]),  # negatives
]


@pytest.fixture()
def cat(tmp_path: Path) -> Catalog:
    return build(tmp_path, IMAGES)


SPECS = [
    SelectSpec(classes=("Cat", "Dog")),
    SelectSpec(classes=("Cat", "Dog"), label_mode="box"),
    SelectSpec(classes=("Carnivore",), label_mode="box", box_flags=BoxFlags(is_group_of="drop")),
    SelectSpec(classes=("Cat", "Dog"), exclude_images_with=("Person",), multi_label="drop"),
    SelectSpec(classes=("Cat", "Dog", "Bear"), per_class=1, seed=3, min_confidence=0.5),
    SelectSpec(classes=("Cat", "Dog", "Carnivore"), multi_label="multi", expand_up=True),
    SelectSpec(classes=("Cat", "Dog"), multi_label="multi", min_confidence=0.5, per_class=1),
    SelectSpec(classes=("Dog",), negatives="verified", negatives_ratio=0.5),
]


def _rows(table: object) -> list[dict[str, object]]:
    return table.to_pylist()  # type: ignore[attr-defined, no-any-return]


@pytest.mark.slow
def test_load_is_idempotent_and_selection_matches_duckdb(cat: Catalog, pg_dsn: str) -> None:
    cat.ensure(["images", "human_labels", "machine_labels", "boxes"])
    first = load_catalog(cat, pg_dsn)
    again = load_catalog(cat, pg_dsn)
    assert first.rows == again.rows and first.rows["images"] == len(IMAGES)
    with psycopg.connect(pg_dsn) as pg:
        n = pg.execute("SELECT count(*) FROM oiforge.boxes").fetchone()
        keys = pg.execute("SELECT count(*) FROM pg_indexes WHERE schemaname = 'oiforge'").fetchone()
    assert n is not None and n[0] == first.rows["boxes"] == 10
    assert keys is not None and keys[0] >= 8
    roles: set[object] = set()
    for spec in SPECS:
        duck = select(spec, catalog=cat)
        got = select_pg(spec, pg_dsn)
        assert _rows(got.table) == _rows(duck.table), spec
        assert got.classes == duck.classes
        roles |= {r.get("role") for r in _rows(got.table)}
    assert roles == {None, "positive", "negative", "background"}


def test_server_down_names_host_not_password() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dsn = f"postgresql://alice:s3cretpw@127.0.0.1:{port}/cat"
    with pytest.raises(PostgresError) as err:
        select_pg(SelectSpec(classes=("Cat",)), dsn)
    text = str(err.value)
    assert f"127.0.0.1:{port}" in text and "s3cretpw" not in text and "\n" not in text


def test_garbage_dsn_is_a_clear_error() -> None:
    with pytest.raises(PostgresError) as err:
        select_pg(SelectSpec(classes=("Cat",)), "host=h password=topsecret nonsense")
    assert "topsecret" not in str(err.value)
