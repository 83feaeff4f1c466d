"""A selection copy's files (key rows, fetched rows, index) are reused while current, and
rebuilt when its index is missing (a killed build), stale, or does not match the files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.helpers.catalog import image_row, write_tables

from oiforge.catalog import open_catalog, select
from oiforge.catalog.selcopy import copy_paths
from oiforge.spec import SelectSpec

CAT, DOG = "/m/01yrx", "/m/0bt9lr"


def _rows(home: Path) -> list[dict[str, object]]:
    spec = SelectSpec(classes=("Cat", "Dog"), multi_label="multi")
    with open_catalog("v7", home=home, fetch_missing=False) as cat:
        return select(spec, catalog=cat).table.to_pylist()


def _stamps(paths: tuple[Path, ...]) -> list[int]:
    return [p.stat().st_mtime_ns for p in paths]


def test_copy_is_reused_while_current_and_rebuilt_when_not(tmp_path: Path) -> None:
    ids = [f"{n:016x}" for n in (3, 1, 2)]
    labels = [[i, "verification", m, c] for i in ids for m, c in ((CAT, "1"), (DOG, "0"))]
    write_tables(
        tmp_path,
        "v7",
        {
            "human_labels": {"train": labels},
            "images": {"train": [image_row(i, "train") for i in ids]},
        },
    )
    want = _rows(tmp_path)
    assert [r["image_id"] for r in want] == sorted(ids) * 2
    assert [r["role"] for r in want] == ["positive"] * 3 + ["negative"] * 3
    assert want[0]["title"] == image_row(ids[1], "train")[7]
    (found,) = tmp_path.rglob("*train*.selkeys.parquet")
    parquet = found.with_name(found.name.replace(".selkeys.parquet", ".parquet"))
    files = copy_paths(parquet)
    before = _stamps(files)
    assert _rows(tmp_path) == want and _stamps(files) == before  # current: reused

    files[2].unlink()  # a build killed before it wrote the index: never taken as good
    assert _rows(tmp_path) == want and files[2].exists()
    assert _stamps(files)[0] != before[0]

    files[1].write_bytes(b"half a file")  # a file the index does not describe: rebuilt
    os.utime(files[1], ns=(1, 1))
    assert _rows(tmp_path) == want
    files[2].write_text("{not json")  # an unreadable index: rebuilt
    assert _rows(tmp_path) == want

    # a copy of the old layout (one wide Parquet file) left beside a current copy is not read;
    # the next build deletes it (nothing reads it any more)
    old = parquet.with_name(parquet.name.replace(".parquet", ".sel.parquet"))
    old.write_bytes(b"old")
    assert _rows(tmp_path) == want and old.exists()
    files[2].unlink()
    assert _rows(tmp_path) == want and not old.exists()


def test_a_copy_that_cannot_be_built_is_a_named_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Disk full while sorting at full size: one line naming the place and the reason, no
    traceback, no index taken as good; the next select builds it."""
    import duckdb

    import oiforge.catalog.selcopy as selcopy
    from oiforge.errors import StageError

    ids = [f"{n:016x}" for n in (1, 2)]
    labels = [[i, "verification", CAT, "1"] for i in ids]
    images = [image_row(i, "train") for i in ids]
    write_tables(tmp_path, "v7", {"human_labels": {"train": labels}, "images": {"train": images}})

    def full(*args: object) -> list[int]:
        raise duckdb.IOException("IO Error: Could not write file: No space left on device")

    with monkeypatch.context() as patched:
        patched.setattr(selcopy, "_build", full)
        with pytest.raises(StageError, match="No space left on device") as err:
            _rows(tmp_path)
    assert str(tmp_path) in str(err.value) and "<" not in str(err.value)
    assert not list(tmp_path.rglob("*.sel.json"))
    assert [r["image_id"] for r in _rows(tmp_path)] == ids


def _many_classes(home: Path) -> None:
    """Three classes over several row groups (positives and negatives, a class per group or
    several classes in one)."""
    ids = [f"{n:016x}" for n in range(1, 13)]
    labels = [[i, "verification", m, c] for i in ids for m in (CAT, DOG, "/m/0k4j") for c in "10"]
    write_tables(
        home,
        "v7",
        {
            "human_labels": {"train": labels},
            "images": {"train": [image_row(i, "train") for i in ids]},
        },
    )


def test_a_select_reads_its_classes_groups_or_scans_the_copy_with_the_same_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rows of the classes' groups read into memory by the copy's group index, the whole
    Parquet copy scanned (too many rows to hold), and an index of an older build (no group
    index: added on first use) all give the same selection."""
    import oiforge.catalog.selcopy as selcopy

    monkeypatch.setattr(selcopy, "_GROUP_ROWS", 4)  # several groups at this size
    monkeypatch.setattr(selcopy, "_MIN_GROUP_ROWS", 2)
    monkeypatch.setattr(selcopy, "_FETCH_ROWS", 4)
    _many_classes(tmp_path)
    want = _rows(tmp_path)
    assert len(want) == 12 * 2 and {r["label_mid"] for r in want} == {CAT, DOG}
    (index,) = tmp_path.rglob("*train*.sel.json")
    entry = json.loads(index.read_text())
    assert len(entry["groups"]["rows"]) > 3 and sum(entry["groups"]["rows"]) == 12 * 3 * 2

    with monkeypatch.context() as patched:
        patched.setattr(selcopy, "_MEMORY_ROWS", 0)
        assert _rows(tmp_path) == want  # the Parquet copy, pruned by DuckDB

    groups = entry.pop("groups")
    index.write_text(json.dumps(entry))
    assert _rows(tmp_path) == want
    assert json.loads(index.read_text())["groups"] == groups


@given(
    st.lists(st.sampled_from("abcdefg"), min_size=1, max_size=40),
    st.integers(1, 6),
    st.sets(st.sampled_from("abcdefgh")),
)
def test_the_group_index_finds_every_group_that_may_hold_a_class(
    labels: list[str], size: int, mids: set[str]
) -> None:
    """Every group with a row of ``mids``, and only groups whose class range covers one."""
    from oiforge.catalog.selcopy import KeyGroups

    rows = sorted(labels)
    groups = [rows[i : i + size] for i in range(0, len(rows), size)]
    first, last = tuple(g[0] for g in groups), tuple(g[-1] for g in groups)
    found = KeyGroups(tuple(map(len, groups)), first, last).holding(mids)
    assert found == [n for n, g in enumerate(groups) if any(g[0] <= m <= g[-1] for m in mids)]
    assert set(found) >= {n for n, g in enumerate(groups) if mids & set(g)}
