"""Property tests for the contract readers that parse untrusted input.

No hypothesis deadline on the Arrow ones: Arrow's first group_by in a process loads Acero.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import given, settings
from hypothesis import strategies as st

from oiforge.contracts import (
    ClassInfo,
    is_image_id,
    parse_labels,
    read_classes,
    read_selected_images,
)
from oiforge.contracts.selection import first_per_image
from oiforge.errors import MalformedFileError

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
IDS = st.one_of(
    st.text("0123456789abcdef", min_size=16, max_size=16),
    st.text(max_size=20),
    st.none(),
)


@given(JSON)
def test_labels_parser_accepts_or_names_the_problem(raw: object) -> None:
    try:
        labels = parse_labels("labels.json", raw)
    except MalformedFileError as exc:
        assert str(exc).startswith("malformed file labels.json")
        return
    assert [c.index for c in labels.classes] == list(range(len(labels.classes)))
    assert 8 <= labels.preprocessing.size <= 4096


@given(JSON)
def test_classes_reader_accepts_or_names_the_problem(raw: object) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "classes.json").write_text(json.dumps(raw), encoding="utf-8")
        try:
            found = read_classes(Path(tmp))
        except MalformedFileError:
            return
    assert found is not None
    assert [c.index for c in found.classes] == list(range(len(found.classes)))
    assert all(isinstance(c, ClassInfo) for c in found.classes)


@settings(deadline=None)
@given(st.lists(st.tuples(IDS, st.sampled_from(["train", "validation", "test", "x", None])),
                max_size=30),
       st.lists(st.floats(allow_nan=True) | st.none(), min_size=30, max_size=30))  # fmt: skip
def test_selected_images_are_distinct_valid_and_sorted(
    rows: list[tuple[str | None, str | None]], rotations: list[float | None]
) -> None:
    table = pa.table(
        {
            "image_id": [r[0] for r in rows],
            "split": [r[1] for r in rows],
            "rotation": rotations[: len(rows)],
        }
    )
    sel = read_selected_images(table)
    ids = [t.image_id for t in sel.tasks]
    assert ids == sorted(set(ids))
    assert all(is_image_id(i) for i in ids)
    assert set(ids) | set(sel.invalid_ids) == {r[0] for r in rows if r[0] is not None}
    assert all(t.rotation in (0, 90, 180, 270) for t in sel.tasks)
    assert all(t.split in (None, "train", "validation", "test") for t in sel.tasks)


@settings(deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["b", "a", "c", None]),
                          st.sampled_from(["x", "y", None]), st.integers(0, 2) | st.none()),
                max_size=30))  # fmt: skip
def test_first_per_image_is_arrows_group_by_first(
    rows: list[tuple[str | None, str | None, int | None]],
) -> None:
    """Each image once, sorted, each column's first non-null value: Arrow's own group_by."""
    names = ("image_id", "split", "original_size")
    types = (pa.string(), pa.string(), pa.int64())
    columns = [pa.array([r[i] for r in rows], t) for i, t in enumerate(types)]
    table = pa.table(columns, names=names)
    grouped = table.group_by("image_id", use_threads=False).aggregate(
        [("split", "first"), ("original_size", "first")]
    )
    grouped = grouped.rename_columns([n.removesuffix("_first") for n in grouped.column_names])
    grouped = grouped.filter(pc.is_valid(grouped["image_id"])).sort_by("image_id")
    assert first_per_image(table).to_pylist() == grouped.select(names).to_pylist()
