"""ExcludeStore: what it writes, build's reader reads back exactly (hypothesis)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oiforge.browse import ExcludeStore
from oiforge.browse.excludes import clean_reason
from oiforge.build import read_exclude_list
from oiforge.errors import InvalidInputError

IDS = st.text("0123456789abcdef", min_size=16, max_size=16)


@settings(max_examples=150, deadline=None)
@given(image_id=IDS, box=st.none() | st.integers(0, 999), reason=st.text(max_size=80))
def test_any_reason_round_trips_through_builds_reader(
    image_id: str, box: int | None, reason: str
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = ExcludeStore(Path(tmp) / "ex.txt")
        store.exclude(image_id, box, reason)
        ex = read_exclude_list(store.path)
        want = clean_reason(reason)
        if box is None:
            assert ex.images == {image_id: want} and not ex.boxes
        else:
            assert ex.boxes == {(image_id, box): want} and not ex.images
        store.undo(image_id, box)
        assert read_exclude_list(store.path).entries() == []


def test_bad_ids_are_refused(tmp_path: Path) -> None:
    store = ExcludeStore(tmp_path / "ex.txt")
    for bad in ("../../etc/passwd", "abc", "0123456789abcdeg"):
        with pytest.raises(InvalidInputError):
            store.exclude(bad, None, "x")
    assert not store.path.exists()
