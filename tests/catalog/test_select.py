# ruff: noqa: E501
"""select: examples on small written files, and hypothesis properties over random data."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from importlib import import_module
from pathlib import Path
from random import Random
from unittest import mock

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.helpers.catalog import image_row, write_tables

from oiforge.catalog import open_catalog, select, select_into
from oiforge.catalog.catalog import Catalog
from oiforge.catalog.select import resolve_targets, select_plain
from oiforge.contracts import (
    SELECTION_SCHEMA,
    SPLITS,
    Selection,
    selection_schema,
    selection_version,
)
from oiforge.errors import SpecError, UnknownClassError
from oiforge.spec import DatasetSpec, SelectSpec, parse_spec

CAT, DOG, PERSON, FACE, BURGER = "/m/01yrx", "/m/0bt9lr", "/m/01g317", "/m/0dzct", "/m/0cdn1"
CARNIVORE, BEAR, PANDA = "/m/01lrl", "/m/01dws", "/m/03bj1"
MIDS = (CAT, DOG, PERSON, FACE, BURGER, BEAR, PANDA)

# one image: (split, [(mid, human_confidence|None, machine_confidence|None, [box flag tuples])]);
# a human confidence of None: no person checked the label (a machine label only)
Label = tuple[str, int | None, float | None, list[tuple[int, int, int, int, int]]]
Image = tuple[str, list[Label]]


def build(home: Path, images: Sequence[Image]) -> Catalog:
    tables: dict[str, dict[str, list[list[str]]]] = {
        k: {s: [] for s in SPLITS} for k in ("images", "human_labels", "machine_labels", "boxes")
    }
    for n, (split, labels) in enumerate(images):
        iid = f"{n * 2654435761 % 2**64:016x}"
        tables["images"][split].append(image_row(iid, split))
        for mid, human, machine, boxes in labels:
            if human is not None:
                tables["human_labels"][split].append([iid, "verification", mid, str(human)])
            if machine is not None:
                tables["machine_labels"][split].append([iid, "machine", mid, f"{machine:.1f}"])
            for b, flags in enumerate(boxes):
                # later rows first: the file order is not the box order
                coords = [f"{0.1 * (len(boxes) - b):.6f}", "0.900000", "0.100000", "0.800000"]
                row = [iid, "xclick", mid, "1", *coords, *map(str, flags)]
                tables["boxes"][split].append(row)
    write_tables(home, "v7", tables)
    return open_catalog("v7", home=home, fetch_missing=False)


NOFLAGS = (0, 0, 0, 0, 0)
GROUP = (0, 0, 1, 0, 0)


@pytest.fixture()
def cat(tmp_path: Path) -> Catalog:
    images: list[Image] = [
        ("train", [(CAT, 1, None, [NOFLAGS, GROUP])]),
        ("train", [(CAT, 1, None, [NOFLAGS]), (DOG, 1, None, [NOFLAGS])]),  # two classes
        ("train", [(DOG, 1, None, [NOFLAGS]), (PERSON, 1, None, [])]),  # has a person label
        ("validation", [(DOG, 1, None, [NOFLAGS]), (FACE, 0, None, [NOFLAGS])]),  # face box only
        ("validation", [(CAT, 0, 0.9, []), (PANDA, 1, None, [NOFLAGS])]),
        ("test", [(BEAR, 1, None, [NOFLAGS]), (BURGER, 1, None, [NOFLAGS, NOFLAGS])]),
        ("test", [(CAT, 0, 0.4, [])]),
    ]
    return build(tmp_path, images)


def names(sel: object) -> list[tuple[str, str]]:
    t = sel.table  # type: ignore[attr-defined]
    return list(
        zip(t.column("image_id").to_pylist(), t.column("label_name").to_pylist(), strict=True)
    )


def test_image_mode_human_positives_and_exclusions(cat: Catalog) -> None:
    sel = select(SelectSpec(classes=("Cat", "Dog"), multi_label="multi"), catalog=cat)
    assert sel.table.schema == selection_schema(with_roles=True)  # multi-label: roles
    assert select(SelectSpec(classes=("Cat",)), catalog=cat).table.schema == SELECTION_SCHEMA
    assert sel.counts == {
        "Cat": {"train": 2, "validation": 0, "test": 0},
        "Dog": {"train": 2, "validation": 1, "test": 0},
    }
    excl = select(
        SelectSpec(classes=("Cat", "Dog"), exclude_images_with=("Person",), multi_label="multi"),
        catalog=cat,
    )
    # Person expands to its parts? No: Subcategory only; the face *box* image stays (Human face
    # is a Part of Human body, not a sub-class of Person), the Person-label image goes.
    assert excl.counts["Dog"] == {"train": 1, "validation": 1, "test": 0}
    face = select(SelectSpec(classes=("Dog",), exclude_images_with=("Human face",)), catalog=cat)
    assert face.counts["Dog"] == {"train": 2, "validation": 0, "test": 0}  # box-only face


def test_min_confidence_adds_machine_labels(cat: Catalog) -> None:
    sel = select(SelectSpec(classes=("Cat",), min_confidence=0.5), catalog=cat)
    assert sel.counts["Cat"] == {"train": 2, "validation": 1, "test": 0}
    assert set(sel.table.column("source").to_pylist()) == {"verification", "machine"}


def test_multi_label_rules(cat: Catalog) -> None:
    drop = select(SelectSpec(classes=("Cat", "Dog"), multi_label="drop"), catalog=cat)
    first = select(SelectSpec(classes=("Dog", "Cat"), multi_label="keep-first"), catalog=cat)
    multi = select(SelectSpec(classes=("Cat", "Dog"), multi_label="multi"), catalog=cat)
    assert drop.table.num_rows == multi.table.num_rows - 2
    shared = {
        i for i, _ in names(multi) if names(multi).count((i, "Cat")) and (i, "Dog") in names(multi)
    }
    assert len(shared) == 1
    assert [n for i, n in names(first) if i in shared] == ["Dog"]


def test_expand_and_exclude_subclasses(cat: Catalog) -> None:
    spec = SelectSpec(
        classes=({"name": "Carnivore", "expand": True, "exclude_subclasses": ["Bear"]},),
        multi_label="multi",
    )
    sel = select(spec, catalog=cat)
    assert sel.counts["Carnivore"] == {"train": 3, "validation": 1, "test": 0}  # cats, dogs
    assert set(sel.table.column("label_mid").to_pylist()) == {CARNIVORE}
    with_bears = select(SelectSpec(classes=({"name": "Carnivore", "expand": True},)), catalog=cat)
    assert with_bears.counts["Carnivore"]["test"] == 1


def test_box_mode_flags_and_box_index(cat: Catalog) -> None:
    sel = select(SelectSpec(classes=("Cat", "Hamburger"), label_mode="box"), catalog=cat)
    assert sel.counts["Cat"]["train"] == 2  # the group-of box is dropped by default
    burger = [r for r in sel.table.to_pylist() if r["label_name"] == "Hamburger"]
    assert [r["box_index"] for r in burger] == [0, 1]
    keep = select(
        SelectSpec(classes=("Cat",), label_mode="box", box_flags={"is_group_of": "keep"}),
        catalog=cat,
    )
    only = select(
        SelectSpec(classes=("Cat",), label_mode="box", box_flags={"is_group_of": "only"}),
        catalog=cat,
    )
    assert keep.table.num_rows == 3 and only.table.num_rows == 1
    assert only.table.column("is_group_of").to_pylist() == [1]


def test_write_spec_hash_and_errors(cat: Catalog, tmp_path: Path) -> None:
    spec = parse_spec({"name": "x", "classes": ["Cat"], "per_class": 1})
    sel = select(spec, catalog=cat)
    out = sel.write(tmp_path / "sel" / "selection.parquet")
    back = pq.read_table(out)
    assert back.schema == SELECTION_SCHEMA and back.num_rows == 1
    assert set(back.column("spec_hash").to_pylist()) == {spec.spec_hash()}
    assert selection_version(out) == cat.version  # what build's lock records
    assert not [p for p in out.parent.iterdir() if p.name != "selection.parquet"]
    with pytest.raises(SpecError):
        select(SelectSpec(version="v6", classes=("Cat",)), catalog=cat)
    with pytest.raises(UnknownClassError):
        select(SelectSpec(classes=("Catt",)), catalog=cat)
    with pytest.raises(SpecError):
        select(SelectSpec(classes=("Cat", "cat")), catalog=cat)


def test_balanced_caps_at_smallest_class(cat: Catalog) -> None:
    sel = select(SelectSpec(classes=("Cat", "Hamburger"), balanced=True), catalog=cat)
    assert (
        sel.image_counts["Cat"] == {"train": 1, "validation": 0, "test": 0}
        or sum(sel.image_counts["Cat"].values()) == 1
    )
    assert sum(sel.image_counts["Hamburger"].values()) == 1


labels_st = st.lists(
    st.tuples(
        st.sampled_from(MIDS),
        st.integers(0, 1),
        st.one_of(st.none(), st.floats(0.1, 1.0)),
        st.lists(st.tuples(*[st.integers(-1, 1)] * 5), max_size=2),
    ),
    min_size=1,
    max_size=4,
    unique_by=lambda x: x[0],
)
images_st = st.lists(st.tuples(st.sampled_from(SPLITS), labels_st), min_size=1, max_size=25)
spec_st = st.fixed_dictionaries(
    {
        "classes": st.lists(
            st.sampled_from(["Cat", "Dog", "Hamburger", {"name": "Carnivore", "expand": True}]),
            min_size=1,
            max_size=3,
            unique_by=str,
        ),
        "label_mode": st.sampled_from(["image", "box"]),
        "per_class": st.one_of(st.none(), st.integers(1, 4)),
        "seed": st.integers(0, 3),
        "multi_label": st.sampled_from(["drop", "keep-first", "multi"]),
        "exclude_images_with": st.sampled_from([(), ("Person",), ("Human face", "Panda")]),
        "splits": st.sampled_from([SPLITS, ("train",), ("validation", "test")]),
        "balanced": st.booleans(),
        "min_confidence": st.sampled_from([None, 0.5]),
        "box_flags": st.sampled_from(
            [{}, {"is_group_of": "keep"}, {"is_group_of": "only", "is_depiction": "drop"}]
        ),
    }
)


@pytest.mark.slow
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(images=images_st, specs=st.lists(spec_st, min_size=2, max_size=2))
def test_selection_properties(images: list[Image], specs: list[dict[str, object]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cat = build(Path(tmp), images)
        for raw in specs:
            spec = SelectSpec.model_validate(raw)
            sel = select(spec, catalog=cat)
            _check(cat, spec, sel.table.to_pylist())
            assert select(spec, catalog=cat).table.equals(sel.table)  # same seed, same rows
            assert _plain_tables_select(cat, spec).equals(sel.table)  # copies change nothing
            _check_written(cat, spec, sel, Path(tmp) / "selection.parquet")
        cat.close()


def _check_written(cat: Catalog, spec: SelectSpec, sel: Selection, out: Path) -> None:
    """``select_into`` (slices of 2 rows, doubling up to 8 and halving toward the end while
    the writer keeps up) writes what ``select`` returns, and its counts."""
    module = import_module("oiforge.catalog.select")
    with mock.patch.object(module, "_FIRST_ROWS", 2), mock.patch.object(module, "_SLICE_ROWS", 8):
        written = select_into(spec, out, catalog=cat)
    groups = pq.ParquetFile(out).metadata
    sizes = [groups.row_group(i).num_rows for i in range(groups.num_row_groups)]
    assert sum(sizes) == sel.table.num_rows and max(sizes, default=0) <= 8
    assert sizes[:1] == [min(2, sel.table.num_rows)] or sel.table.num_rows == 0
    back = pq.read_table(out)
    assert back.equals(sel.table) and back.schema.metadata == sel.table.schema.metadata
    assert (written.num_rows, written.counts, written.image_counts, written.has_roles) == (
        sel.table.num_rows,
        sel.counts,
        sel.image_counts,
        sel.has_roles,
    )
    if sel.has_roles:
        assert written.negative_image_counts == sel.negative_image_counts


def test_duplicate_verifications_keep_the_first_by_class_and_source(tmp_path: Path) -> None:
    """An image verified twice for a class (two sources, or two sub-classes of an expanded
    class) keeps one row: the first by (label_mid, source), whatever the route."""
    rows = {"train": [], "validation": [], "test": []}  # type: dict[str, list[list[str]]]
    images = {s: [] for s in SPLITS}  # type: dict[str, list[list[str]]]
    for n, mids in enumerate([(CAT, BEAR, PANDA), (PANDA, BEAR), (DOG, CAT), (BEAR,)]):
        iid = f"{(n + 1) * 2654435761 % 2**64:016x}"
        images["train"].append(image_row(iid, "train"))
        for mid in mids:
            for source in ("verification", "crowdsource-verification"):
                rows["train"].append([iid, source, mid, "1"])
    write_tables(tmp_path, "v7", {"images": images, "human_labels": rows})
    cat = open_catalog("v7", home=tmp_path, fetch_missing=False)
    classes = ("Cat", {"name": "Carnivore", "expand": True, "exclude_subclasses": ["Cat"]})
    for multi in ("drop", "keep-first", "multi"):
        spec = SelectSpec(classes=classes, multi_label=multi)
        sel = select(spec, catalog=cat)
        assert _plain_tables_select(cat, spec).equals(sel.table)
        assert set(sel.table.column("source").to_pylist()) == {"crowdsource-verification"}
        _check_written(cat, spec, sel, tmp_path / f"{multi}.parquet")
    cat.close()


def _check(cat: Catalog, spec: SelectSpec, rows: list[dict[str, object]]) -> None:
    splits_of: dict[object, set[object]] = {}
    per_class: dict[object, set[object]] = {}
    for r in rows:
        splits_of.setdefault(r["image_id"], set()).add(r["split"])
        per_class.setdefault(r["label_name"], set()).add(r["image_id"])
        assert r["split"] in spec.splits
    assert all(len(s) == 1 for s in splits_of.values())  # no image in two splits
    if spec.multi_label != "multi":  # multi keeps whole images: test_select_multilabel.py
        if spec.per_class is not None:
            assert all(len(v) <= spec.per_class for v in per_class.values())
        if spec.balanced and per_class:
            sizes = {len(v) for v in per_class.values()}
            assert len(sizes) == 1 or len(per_class) < len(spec.classes)
        classes_of: dict[object, set[object]] = {}
        for r in rows:
            classes_of.setdefault(r["image_id"], set()).add(r["label_name"])
        assert all(len(c) == 1 for c in classes_of.values())
    excluded = _expanded(cat, spec.exclude_images_with)
    if excluded and rows:
        ids = ", ".join(f"'{r['image_id']}'" for r in rows)
        mids = ", ".join(f"'{m}'" for m in excluded)
        hits = cat.connection.execute(
            f"SELECT count(*) FROM (SELECT image_id, label_mid FROM human_labels WHERE confidence = 1 "
            f"UNION ALL SELECT image_id, label_mid FROM boxes) WHERE image_id IN ({ids}) "
            f"AND label_mid IN ({mids})"
        ).fetchall()
        assert hits == [(0,)]


def _plain_tables_select(cat: Catalog, spec: SelectSpec) -> pa.Table:
    """The same selection over the plain views, joining ``images`` (PostgreSQL's route)."""
    targets = resolve_targets(cat, spec)
    excluded = frozenset(_expanded(cat, spec.exclude_images_with))
    machine = cat.has_table("machine_labels", spec.splits)
    return select_plain(cat.connection, spec, targets, excluded, machine).table


def _expanded(cat: Catalog, names_: Sequence[str]) -> set[str]:
    out: set[str] = set()
    for n in names_:
        mid = cat.resolve(n).mid
        out |= {mid} | cat.descendants(mid)
    return out


def test_dataset_spec_and_select_spec_hash_agree() -> None:
    spec = DatasetSpec.model_validate({"classes": ["Cat"]})
    from oiforge.catalog.select import spec_hash_of

    assert spec_hash_of(spec) == spec.spec_hash()
    assert len(spec_hash_of(spec.select)) == 16


def test_hostile_rows_and_names(tmp_path: Path) -> None:
    good, bad_id = "00000000000000aa", "../../etc/passwd"
    boxes = [
        [good, "xclick", CAT, "1", "0.1", "0.5", "0.2", "0.6", "0", "0", "0", "0", "0"],
        [good, "xclick", CAT, "1", "0.5", "0.1", "0.2", "0.6", "0", "0", "0", "0", "0"],  # inverted
        [good, "xclick", CAT, "1", "nan", "0.5", "0.2", "0.6", "0", "0", "0", "0", "0"],
        [good, "xclick", CAT, "1", "-0.001", "1.001", "0.2", "0.6", "0", "0", "0", "0", "0"],
        [bad_id, "xclick", CAT, "1", "0.1", "0.5", "0.2", "0.6", "0", "0", "0", "0", "0"],
    ]
    write_tables(
        tmp_path, "v7", {"boxes": {"train": boxes}, "images": {"train": [image_row(good, "train")]}}
    )
    cat = open_catalog("v7", home=tmp_path, fetch_missing=False)
    spec = SelectSpec(classes=({"name": "Cat", "rename": "O'Brien's \"cat\""},), label_mode="box")
    rows = select(spec, catalog=cat).table.to_pylist()
    assert [r["image_id"] for r in rows] == [good, good]
    assert {r["label_name"] for r in rows} == {"O'Brien's \"cat\""}
    assert rows[0]["x_min"] == 0.0 and rows[0]["x_max"] == 1.0  # clamped
    assert [r["box_index"] for r in rows] == [0, 1]


def test_image_metadata_follows_the_image_list(tmp_path: Path) -> None:
    iid = "00000000000000aa"
    box = [iid, "xclick", CAT, "1", "0.1", "0.5", "0.2", "0.6", "0", "0", "0", "0", "0"]
    write_tables(tmp_path, "v7", {"boxes": {"train": [box]}})
    spec = SelectSpec(classes=("Cat",), label_mode="box")
    with open_catalog("v7", home=tmp_path, fetch_missing=False) as cat:
        assert select(spec, catalog=cat).table.column("original_url").to_pylist() == [None]
    write_tables(
        tmp_path, "v7", {"boxes": {"train": [box]}, "images": {"train": [image_row(iid, "train")]}}
    )
    with open_catalog("v7", home=tmp_path, fetch_missing=False) as cat:
        rows = select(spec, catalog=cat).table.to_pylist()
    assert rows[0]["original_url"] == image_row(iid, "train")[2]
    assert rows[0]["image_id"] == iid and rows[0]["title"] == image_row(iid, "train")[7]


_rows_st = st.lists(
    st.tuples(
        st.sampled_from(["Apple", "Bee", "Cat"]),
        st.sampled_from(SPLITS),
        st.integers(0, 6).map(lambda i: f"{i:016x}"),
    ),
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(rows=_rows_st, shuffle=st.randoms(use_true_random=False))
def test_selection_counts_rows_and_distinct_images_per_class_and_split(
    rows: list[tuple[str, str, str]], shuffle: Random
) -> None:
    """Counts agree with a plain count, in output order (the sorted fast path) and in any
    other order (the hashing fallback); classes without rows count zero."""
    ordered = sorted(
        rows, key=lambda r: (("Apple", "Cat", "Bee").index(r[0]), SPLITS.index(r[1]), r[2])
    )
    shuffled = list(rows)
    shuffle.shuffle(shuffled)
    classes = ["Apple", "Cat", "Bee", "Dog"]
    want_rows = {c: dict.fromkeys(SPLITS, 0) for c in classes}
    want_images = {c: dict.fromkeys(SPLITS, 0) for c in classes}
    for name, split, _ in rows:
        want_rows[name][split] += 1
    for name, split, _ in set(rows):
        want_images[name][split] += 1
    for order in (ordered, shuffled):
        names, splits, ids = (
            (list(col) for col in zip(*order, strict=True)) if order else ([], [], [])
        )
        table = pa.table(
            {
                "label_name": pa.array(names, pa.string()),
                "split": pa.array(splits, pa.string()),
                "image_id": pa.array(ids, pa.string()),
            }
        )
        sel = Selection(table, "0" * 16, classes)
        assert sel.counts == want_rows
        assert sel.image_counts == want_images
