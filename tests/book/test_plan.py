"""Planning against the real catalog over the mirror sample: classes, people-free photos."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from oiforge.book import PlanRequest, SelectOptions, plan_book, write_selection
from oiforge.book.credits import is_cc_by
from oiforge.book.model import Overrides
from oiforge.contracts import SELECTION_SCHEMA
from oiforge.errors import InvalidInputError, UnknownClassError

pytestmark = pytest.mark.slow  # the session's mirror sample takes a while to generate


@pytest.fixture(scope="module")
def catalog(mirror: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from oiforge.catalog import open_catalog
    from oiforge.endpoints import Endpoints

    home = tmp_path_factory.mktemp("book-catalog")
    cat = open_catalog("v7", Endpoints.for_mirror(mirror.url), home=home)
    cat.ensure(["images", "human_labels", "boxes", "machine_labels"])
    yield cat
    cat.close()


@pytest.fixture(scope="module")
def facts(sample_root: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((sample_root / "sample.json").read_text())
    return data


def _people_images(catalog: Any) -> set[str]:
    """Every image with a person class (label or box), by an independent query."""
    people = {"/m/01g317", "/m/0dzct"} | catalog.descendants("/m/01g317")
    con = catalog.connection
    rows = con.execute(
        "SELECT image_id FROM human_labels WHERE confidence > 0 AND label_mid IN "
        "(SELECT unnest(?::VARCHAR[])) UNION SELECT image_id FROM boxes WHERE label_mid IN "
        "(SELECT unnest(?::VARCHAR[]))",
        [sorted(people), sorted(people)],
    ).fetchall()
    return {r[0] for r in rows}


def _ids(plan: Any) -> list[str]:
    return [p.image_id for e in plan.letters for p in e.photos]


def test_plan_has_one_class_per_letter_and_no_people(catalog: Any, facts: dict[str, Any]) -> None:
    plan = plan_book(catalog, PlanRequest())
    assert len(plan.letters) >= 15
    for entry in plan.letters:
        assert entry.label.upper().startswith(entry.letter)
        assert entry.photos and entry.mid
    person_mids = {c["mid"] for c in facts["classes"] if c["is_person"]}
    labelled = {i["image_id"]: set(i["classes"]) for i in facts["images"]}
    ids = _ids(plan)
    assert len(ids) == len(set(ids)), "an image is planned twice"
    assert not [i for i in ids if labelled.get(i, set()) & person_mids]
    assert not set(ids) & _people_images(catalog)
    assert set(plan.skipped) | {e.letter for e in plan.letters} == set("ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def test_pins_skip_and_bad_pins(catalog: Any) -> None:
    base = plan_book(catalog, PlanRequest())
    b_default = next(e for e in base.letters if e.letter == "B").class_name
    other = "Bear" if b_default != "Bear" else "Banana"
    sel = SelectOptions(pins={"B": other}, skip=("A",))
    plan = plan_book(catalog, PlanRequest(select=sel))
    assert next(e for e in plan.letters if e.letter == "B").class_name == other
    assert "A" not in {e.letter for e in plan.letters} and "A" in plan.skipped
    with pytest.raises(UnknownClassError):
        plan_book(catalog, PlanRequest(select=SelectOptions(pins={"A": "Applesauce pie xyz"})))
    with pytest.raises(InvalidInputError, match="does not start with"):
        plan_book(catalog, PlanRequest(select=SelectOptions(pins={"A": "Banana"})))


def test_overrides_drop_and_force(catalog: Any) -> None:
    base = plan_book(catalog, PlanRequest())
    apple = next(e for e in base.letters if e.letter == "A")
    dropped, forced = apple.photos[0].image_id, apple.photos[-1].image_id
    overrides = Overrides(drop=frozenset({dropped}), force={"A": (forced,)})
    plan = plan_book(catalog, PlanRequest(overrides=overrides))
    assert dropped not in _ids(plan)
    assert next(e for e in plan.letters if e.letter == "A").photos[0].image_id == forced
    ghost = Overrides(force={"A": ("0123456789abcdef",)})
    assert plan_book(catalog, PlanRequest(overrides=ghost)).notes


def test_licence_and_box_modes(catalog: Any) -> None:
    plan = plan_book(catalog, PlanRequest(select=SelectOptions(cc_by_only=True)))
    photos = [p for e in plan.letters for p in e.photos]
    assert photos and all(is_cc_by(p.license) for p in photos)
    boxed = plan_book(catalog, PlanRequest(select=SelectOptions(label_mode="box")))
    box_photos = [p for e in boxed.letters for p in e.photos]
    assert box_photos and all(p.box is not None for p in box_photos)
    assert not {p.image_id for p in box_photos} & _people_images(catalog)


def test_selection_parquet_follows_the_contract(catalog: Any, tmp_path: Path) -> None:
    plan = plan_book(catalog, PlanRequest())
    rows = write_selection(plan, tmp_path / "selection.parquet")
    table = pq.read_table(tmp_path / "selection.parquet")
    assert table.schema.equals(SELECTION_SCHEMA)
    assert rows == table.num_rows == len(_ids(plan))
    assert set(table.column("image_id").to_pylist()) == set(_ids(plan))


def test_plans_are_deterministic_and_seeded(catalog: Any) -> None:
    one = plan_book(catalog, PlanRequest()).to_json()
    assert plan_book(catalog, PlanRequest()).to_json() == one
    other = plan_book(catalog, PlanRequest(select=SelectOptions(seed=7))).to_json()
    assert other != one
