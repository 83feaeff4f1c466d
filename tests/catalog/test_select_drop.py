"""select with ``multi_label: drop`` over the selection copies: the one grouping by image that
packs each image's first row in an integer (``selectsql._one_class``) keeps the rows the
grouping with four states keeps, and the plain tables' route, on random data; and
``select_into`` (dictionary-encoded slices) writes the same file."""

from __future__ import annotations

import tempfile
from importlib import import_module
from pathlib import Path
from unittest import mock

import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.helpers.catalog import image_row, write_tables

from oiforge.catalog import open_catalog, select, select_into
from oiforge.catalog.catalog import Catalog
from oiforge.catalog.select import expand_classes, resolve_targets, select_plain
from oiforge.contracts import SPLITS
from oiforge.spec import SelectSpec

CAT, DOG, BEAR, PANDA, PERSON = "/m/01yrx", "/m/0bt9lr", "/m/01dws", "/m/03bj1", "/m/01g317"
SOURCES = ("verification", "crowdsource-verification")

# an image: its labels per split it is listed in, (mid, source, human Confidence)
Image = dict[str, list[tuple[str, str, int]]]

labels_st = st.lists(
    st.tuples(
        st.sampled_from((CAT, DOG, BEAR, PANDA, PERSON)),
        st.sampled_from(SOURCES),
        st.sampled_from((1, 1, 0)),
    ),
    max_size=4,
)
images_st = st.lists(
    st.dictionaries(st.sampled_from(SPLITS), labels_st, min_size=1, max_size=2),
    min_size=1,
    max_size=20,
)
spec_st = st.fixed_dictionaries(
    {
        "classes": st.lists(
            st.sampled_from(["Cat", "Dog", "Panda", {"name": "Carnivore", "expand": True}]),
            min_size=1,
            max_size=3,
            unique_by=str,
        ),
        "splits": st.sampled_from([SPLITS, ("train",), ("test", "validation")]),
        "per_class": st.sampled_from([None, 2]),
        "exclude_images_with": st.sampled_from([(), ("Person",)]),
    }
)


def build(home: Path, images: list[Image]) -> Catalog:
    """The images (one ImageID listed in every split of its entry) in a catalog."""
    kinds = ("images", "human_labels")
    tables: dict[str, dict[str, list[list[str]]]] = {k: {s: [] for s in SPLITS} for k in kinds}
    for n, by_split in enumerate(images):
        iid = f"{(n + 1) * 2654435761 % 2**64:016x}"
        for split, labels in by_split.items():
            tables["images"][split].append(image_row(iid, split))
            for mid, source, conf in labels:
                tables["human_labels"][split].append([iid, source, mid, str(conf)])
    write_tables(home, "v7", tables)
    return open_catalog("v7", home=home, fetch_missing=False)


@pytest.mark.slow
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(images=images_st, raws=st.lists(spec_st, min_size=2, max_size=2))
def test_drop_keeps_what_the_grouping_with_four_states_keeps(
    images: list[Image], raws: list[dict[str, object]]
) -> None:
    selectsql = import_module("oiforge.catalog.selectsql")
    with tempfile.TemporaryDirectory() as tmp:
        cat = build(Path(tmp), images)
        for raw in raws:
            spec = SelectSpec.model_validate({**raw, "multi_label": "drop"})
            sel = select(spec, catalog=cat)
            with mock.patch.object(selectsql, "PACKED_CLASSES", 0):
                assert select(spec, catalog=cat).table.equals(sel.table)
            targets = resolve_targets(cat, spec)
            excluded = expand_classes(cat, spec.exclude_images_with)
            plain = select_plain(cat.connection, spec, targets, excluded, False)
            assert plain.table.equals(sel.table)
            out = Path(tmp) / "selection.parquet"
            written = select_into(spec, out, catalog=cat)
            back = pq.read_table(out)
            assert back.equals(sel.table) and back.schema.metadata == sel.table.schema.metadata
            assert written.image_counts == sel.image_counts
        cat.close()
