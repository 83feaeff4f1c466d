"""Property tests of the statistics' arithmetic: bins, thresholds, intervals, the one-pass
query and the tables derived from it, each against a brute-force count of the raw rows."""

from __future__ import annotations

import itertools
import math
from collections import Counter

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oiforge.errors import InvalidInputError
from oiforge.stats import binning, queries, tables

MIDS = ("/m/a", "/m/b", "/m/c")
# human verdicts of one (image, label): none, confirmed, rejected, conflicting (1 and 0)
VERDICTS = ((), ("1",), ("0",), ("1", "0"))


@given(st.integers(0, 100))
def test_every_confidence_falls_in_one_bin(pct: int) -> None:
    k = binning.confidence_bin(pct)
    low, high = (float(v) for v in binning.bin_label(k).split("-"))
    assert 0 <= k < binning.CONFIDENCE_BINS
    assert low <= pct / 100 and (pct / 100 < high or (pct == 100 and high == 1.0))


@given(st.integers(0, 100))
def test_thresholds_on_the_grid_round_trip(pct: int) -> None:
    assert binning.threshold_pct(pct / 100) == pct


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_thresholds_off_the_grid_or_out_of_range_are_refused(value: float) -> None:
    on_grid = 0 <= value <= 1 and abs(round(value * 100) - value * 100) <= 1e-6
    if on_grid:
        assert 0 <= binning.threshold_pct(value) <= 100
    else:
        with pytest.raises(InvalidInputError):
            binning.threshold_pct(value)


def test_parse_thresholds_sorts_dedupes_and_needs_one() -> None:
    assert binning.parse_thresholds([0.9, 0.5, 0.50, 0.7]) == (0.5, 0.7, 0.9)
    with pytest.raises(InvalidInputError):
        binning.parse_thresholds([])


@given(st.integers(0, 10_000), st.integers(0, 10_000))
def test_wilson_interval_contains_the_share(a: int, b: int) -> None:
    confirmed, total = min(a, b), max(a, b)
    low, high = binning.wilson(confirmed, total)
    assert 0.0 <= low <= high <= 1.0
    if total:
        assert low - 1e-12 <= confirmed / total <= high + 1e-12
    arr_low, arr_high = binning.wilson_arrays([confirmed], [total])
    assert math.isclose(arr_low[0], low, abs_tol=1e-12)
    assert math.isclose(arr_high[0], high, abs_tol=1e-12)


@given(st.integers(0, 10**9), st.data())
def test_frequency_bins_cover_every_frequency_once(largest: int, data: st.DataObject) -> None:
    edges = binning.frequency_edges(largest)
    assert edges[0] == 0 and edges[-1] > largest
    assert all(a < b for a, b in itertools.pairwise(edges))
    f = data.draw(st.integers(0, largest))
    k = binning.frequency_bin(f, edges)
    assert edges[k] <= f < edges[k + 1]


@given(
    st.lists(
        st.tuples(
            st.sampled_from((0.5, 0.6, 0.7, 0.8, 0.9)), st.integers(0, 50), st.integers(0, 50)
        ),
        max_size=5,
    ),
    st.floats(0.0, 1.0),
)
def test_recommend_picks_the_lowest_threshold_with_evidence(
    raw: list[tuple[float, int, int]], target: float
) -> None:
    rows = [(t, min(a, b), max(a, b)) for t, a, b in raw]
    found = binning.recommend(rows, target)
    passing = [t for t, k, n in rows if n > 0 and binning.wilson(k, n)[0] >= target]
    assert (found is None) == (not passing)
    if found is not None:
        assert found[0] == min(passing) and found[1] >= target


Row = tuple[int, str, int | None, tuple[str, ...], str]


def _rows() -> st.SearchStrategy[list[Row]]:
    """(image, label, machine confidence pct or None (NaN/out of range), verdicts, split)."""
    one = st.tuples(
        st.integers(0, 30), st.sampled_from(MIDS),
        st.one_of(st.integers(0, 100), st.none()), st.sampled_from(VERDICTS),
        st.sampled_from(("train", "validation")),
    )  # fmt: skip
    return st.lists(one, max_size=60, unique_by=lambda r: (r[0], r[1]))


def _table(con: duckdb.DuckDBPyConnection, name: str, rows: list[tuple[str, ...]]) -> None:
    cols = [list(c) for c in zip(*rows, strict=True)] if rows else [[], [], [], []]
    con.execute(
        f"CREATE OR REPLACE TABLE {name} AS SELECT unnest($1::VARCHAR[]) AS image_id, "
        "unnest($2::VARCHAR[]) AS label_mid, CAST(unnest($3::VARCHAR[]) AS FLOAT) AS confidence, "
        "unnest($4::VARCHAR[]) AS split",
        cols,
    )


_CON = duckdb.connect()  # one connection for every example: connecting costs ~0.1 s


def _connection(rows: list[Row]) -> duckdb.DuckDBPyConnection:
    con = _CON
    machine, human = [], []
    for image, mid, pct, verdicts, split in rows:
        iid = f"{image:016x}"
        machine.append((iid, mid, "NaN" if pct is None else f"{pct / 100:.2f}", split))
        human += [(iid, mid, v, split) for v in verdicts]
    _table(con, "machine_labels", machine)
    _table(con, "human_labels", human)
    return con


def _brute(rows: list[Row], split: str, pct_at_least: int) -> Counter[tuple[str, str]]:
    out: Counter[tuple[str, str]] = Counter()
    for _, mid, pct, verdicts, row_split in rows:
        if row_split != split and split != "all":
            continue
        if pct is None or pct < pct_at_least:
            continue
        out[(mid, "machine")] += 1
        out[(mid, "confirmed")] += verdicts == ("1",)
        out[(mid, "rejected")] += verdicts == ("0",)
    return out


@settings(max_examples=30, deadline=None)
@given(_rows(), st.sampled_from(("train", "all")))
def test_precision_table_matches_a_brute_force_count(rows: list[Row], split: str) -> None:
    cube = tables.Cube.of(queries.confirmation_cube(_connection(rows), split))
    table = tables.precision_table(cube, (0.0, 0.5, 0.9), str)
    for row in table.to_pylist():
        want = _brute(rows, split, binning.threshold_pct(row["threshold"]))
        mid = row["label_mid"]
        assert row["machine_labels"] == want[(mid, "machine")]
        assert row["confirmed"] == want[(mid, "confirmed")]
        assert row["verified"] == want[(mid, "confirmed")] + want[(mid, "rejected")]
        if row["verified"]:
            assert row["precision"] == pytest.approx(row["confirmed"] / row["verified"])
        else:
            assert row["precision"] is None


@settings(max_examples=30, deadline=None)
@given(_rows())
def test_confidence_bins_and_label_sums_add_up(rows: list[Row]) -> None:
    con = _connection(rows)
    cube = tables.Cube.of(queries.confirmation_cube(con, "all"))
    binned = tables.by_confidence(cube).to_pylist()
    want = _brute(rows, "all", 0)
    assert sum(b["confirmed"] for b in binned) == sum(want[(m, "confirmed")] for m in MIDS)
    assert sum(b["machine_labels"] for b in binned) == sum(want[(m, "machine")] for m in MIDS)
    per_label = tables.confirmation_table(cube, queries.positive_counts(con, "all"), str)
    invalid = sum(1 for r in rows if r[2] is None)
    assert sum(per_label.column("machine_labels").to_pylist()) == len(rows)
    assert sum(b["machine_labels"] for b in binned) == len(rows) - invalid
    conflicting = sum(1 for r in rows if len(r[3]) == 2)
    assert sum(per_label.column("conflicting").to_pylist()) == conflicting
