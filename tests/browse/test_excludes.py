"""ExcludeStore and ReviewStore: what they write, build's and select's readers read back."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from oiforge.browse import ExcludeStore, ReviewStore
from oiforge.browse.excludes import clean_reason
from oiforge.build import read_exclude_list
from oiforge.errors import InvalidInputError
from oiforge.reviews import read_reviews

IDS = st.text("0123456789abcdef", min_size=16, max_size=16)


@settings(max_examples=150, deadline=None)
@given(image_id=IDS, box=st.none() | st.integers(0, 999), reason=st.text(max_size=80))
@example(image_id="0" * 16, box=None, reason="/a/0")  # a MID first would read as a label
@example(image_id="0" * 16, box=None, reason="/m/0bt9lr, not a dog")
@example(image_id="0" * 16, box=3, reason="7")  # a number first would read as a box
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


def test_review_store_round_trips_and_a_failed_write_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ReviewStore(tmp_path / "review.csv")
    store.set_many([("00000000000000aa", "/m/01yrx", "rejected", "Cat, the animal", 0.4)])
    store.set_many([("00000000000000bb", "/m/0bt9lr", "confirmed", "Dog", 0.9)])
    want = {
        ("00000000000000aa", "/m/01yrx"): ("rejected", "Cat, the animal", "0.400"),
        ("00000000000000bb", "/m/0bt9lr"): ("confirmed", "Dog", "0.900"),
    }
    assert read_reviews(store.path) == want
    before = store.path.read_bytes()

    def crash(*args: object) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(Path, "replace", crash)  # the rename of the atomic write fails
    with pytest.raises(OSError):
        store.set_many([("00000000000000aa", "/m/01yrx", "", "", 0.0)])
    monkeypatch.undo()
    assert store.path.read_bytes() == before and read_reviews(store.path) == want
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
    with pytest.raises(InvalidInputError):
        store.set_many([("00000000000000aa", "/m/01yrx", "maybe", "", 0.0)])


def test_select_and_build_read_the_review_file() -> None:
    import pyarrow as pa

    from oiforge.reviews import REVIEWED_SOURCE, apply_reviews, rejected_rows

    table = pa.table({
        "image_id": ["00000000000000aa"] * 3 + ["00000000000000bb"],
        "label_mid": ["/m/01yrx", "/m/01yrx", "/m/0bt9lr", "/m/01yrx"],
        "source": ["machine", "machine", "xclick", "machine"],
        "box_index": [0, 1, 2, 0],
    })  # fmt: skip
    verdicts = {
        ("00000000000000aa", "/m/01yrx"): ("rejected", "Cat", "0.4"),
        ("00000000000000bb", "/m/01yrx"): ("confirmed", "Cat", "0.9"),
    }
    kept = apply_reviews(table, verdicts)
    assert kept.column("label_mid").to_pylist() == ["/m/0bt9lr", "/m/01yrx"]
    assert kept.column("source").to_pylist() == ["xclick", REVIEWED_SOURCE]
    assert [(i, b) for i, b, _ in rejected_rows(table, verdicts)] == [
        ("00000000000000aa", 0),
        ("00000000000000aa", 1),
    ]
