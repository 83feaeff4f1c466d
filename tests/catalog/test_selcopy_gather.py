"""``attach`` fetches a copy's columns by row across record batches and copy files, in row order."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oiforge.catalog.ingest import IMAGE_COLS
from oiforge.catalog.selcopy import REF_BITS, SelectionCopy, attach  # ref: (file << bits) + row
from oiforge.contracts import BOX_FLAGS

ROWS = 50
BOX_COLS = ("x_min", "x_max", "y_min", "y_max", *BOX_FLAGS)
COPY_COLS = ("source", "confidence", *BOX_COLS, *IMAGE_COLS)


def _copy(path: Path, tag: str, group_rows: int) -> SelectionCopy:
    cols: dict[str, pa.Array] = {}
    for c in COPY_COLS:
        if c in ("x_min", "x_max", "y_min", "y_max", "confidence"):
            cols[c] = pa.array([i / 100 for i in range(ROWS)], pa.float32())
        elif c in BOX_FLAGS:
            cols[c] = pa.array([i % 2 for i in range(ROWS)], pa.int8())
        elif c == "original_size":
            cols[c] = pa.array([1000 * ("ab".index(tag) + 1) + i for i in range(ROWS)], pa.int64())
        elif c == "rotation":
            cols[c] = pa.array([float(i) for i in range(ROWS)], pa.float32())
        else:
            cols[c] = pa.array([f"{c}-{tag}-{i}" for i in range(ROWS)], pa.string())
    table = pa.table(cols)
    with pa.ipc.new_file(path, table.schema) as writer:  # record batches of ``group_rows``
        writer.write_table(table, max_chunksize=group_rows)
    return SelectionCopy("boxes", "train", path.with_suffix(".parquet"), path)


#: a run of rows of one file: (file, first row, length, step); a selection's refs are mostly
#: ascending runs (step 1: the slice path), single rows (length 1: the take path), or gaps.
_runs = st.lists(
    st.tuples(st.integers(0, 1), st.integers(0, ROWS - 1), st.integers(1, 30), st.integers(1, 2)),
    min_size=1,
    max_size=12,
)


@settings(max_examples=40, deadline=None)
@given(runs=_runs, group_rows=st.integers(1, 17), no_ref=st.sets(st.integers(0, 400)))
def test_attach_matches_a_plain_lookup(
    tmp_path_factory: pytest.TempPathFactory,
    runs: list[tuple[int, int, int, int]],
    group_rows: int,
    no_ref: set[int],
) -> None:
    folder = tmp_path_factory.mktemp("copies")
    copies = [_copy(folder / f"c{n}.arrow", "ab"[n], group_rows) for n in range(2)]
    picks = [(f, r) for f, a, n, step in runs for r in range(a, min(a + n * step, ROWS), step)]
    refs = [None if i in no_ref else (f << REF_BITS) + r for i, (f, r) in enumerate(picks)]
    keys = [(f << 60) + r * 7919 for f, r in picks]
    # rows without a ref (machine labels) bring their own source
    table = pa.table(
        {
            "image_key": pa.array(keys, pa.uint64()),
            "ref": pa.array(refs, pa.int64()),
            "source": pa.array([f"own-{i}" for i in range(len(refs))], pa.string()),
        }
    )
    got = attach(table, copies, box_mode=True)
    full = [pa.ipc.open_file(c.rows).read_all().to_pydict() for c in copies]
    for name in COPY_COLS:
        want = [
            full[f][name][r] if ref is not None else (f"own-{i}" if name == "source" else None)
            for i, ((f, r), ref) in enumerate(zip(picks, refs, strict=True))
        ]
        assert got.column(name).to_pylist() == want, name
    assert got.column("image_id").to_pylist() == [f"{k:016x}" for k in keys]
    assert "ref" not in got.column_names


def test_attach_in_image_mode_leaves_the_box_columns_null(tmp_path: Path) -> None:
    copy = _copy(tmp_path / "c.arrow", "a", 7)
    table = pa.table({"image_key": pa.array([1, 2, 3], pa.uint64()), "ref": pa.array([3, 4, 40])})
    got = attach(table, [copy], box_mode=False)
    assert got.column("source").to_pylist() == ["source-a-3", "source-a-4", "source-a-40"]
    for name in BOX_COLS:
        assert got.column(name).null_count == 3
