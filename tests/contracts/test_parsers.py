"""Property tests for the contract readers that parse untrusted input.

No hypothesis deadline on the Arrow one: its first group_by in a process loads Acero.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from oiforge.contracts import (
    ClassInfo,
    is_image_id,
    parse_labels,
    read_classes,
    read_selected_images,
)
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
