"""``attach_images`` gathers image columns across row groups and copy files, in row order."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oiforge.catalog.selcopy import _REF_BITS as REF_BITS  # row ref: (file << bits) + row
from oiforge.catalog.selcopy import IMAGE_COLS, SelectionCopy, attach_images


def _copy(path: Path, rows: int, tag: str, group_rows: int) -> SelectionCopy:
    cols = {"image_id": [f"{tag}{i:015x}" for i in range(rows)]}
    cols |= {c: [f"{c}-{tag}-{i}" for i in range(rows)] for c in IMAGE_COLS}
    table = pa.table({k: pa.array(v, pa.string()) for k, v in cols.items()})
    pq.write_table(table, path, row_group_size=group_rows)
    return SelectionCopy("boxes", "train", path)


@settings(max_examples=25, deadline=None)
@given(
    picks=st.lists(st.tuples(st.integers(0, 1), st.integers(0, 49)), min_size=1, max_size=120),
    group_rows=st.integers(1, 17),
)
def test_gather_matches_a_plain_lookup(
    tmp_path_factory: pytest.TempPathFactory, picks: list[tuple[int, int]], group_rows: int
) -> None:
    folder = tmp_path_factory.mktemp("copies")
    copies = [_copy(folder / f"c{n}.parquet", 50, "ab"[n], group_rows) for n in range(2)]
    refs = [(f << REF_BITS) + r for f, r in picks]
    table = pa.table(
        {
            "ref": pa.array(refs, pa.int64()),
            "image_id": pa.nulls(len(refs), pa.string()),
            **{c: pa.nulls(len(refs), pa.string()) for c in IMAGE_COLS},
        }
    )
    got = attach_images(table, copies)
    full = [pq.read_table(c.path).to_pydict() for c in copies]
    for name in ("image_id", *IMAGE_COLS):
        want = [full[f][name][r] for f, r in picks]
        assert got.column(name).to_pylist() == want
    assert "ref" not in got.column_names
    assert np.all(np.array([len(v) for v in got.to_pydict().values()]) == len(refs))
