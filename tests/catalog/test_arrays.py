"""The buffer-built Arrow/NumPy conversions agree with pyarrow's own (which import pandas).

No hypothesis deadline: the first ``pa.array`` of a process imports pandas (~0.4 s).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oiforge.arrays import from_numpy, hex16, repeat_string, strings, to_numpy

INTS = st.lists(st.integers(0, 2**63 - 1), max_size=50)


@settings(deadline=None)
@given(INTS, st.integers(0, 10))
def test_to_numpy_matches_pyarrow_on_slices(values: list[int], start: int) -> None:
    arr = pa.array(values, pa.uint64()).slice(min(start, len(values)))
    assert to_numpy(arr).tolist() == arr.to_pylist()
    chunked = pa.chunked_array([arr, arr], pa.uint64())
    assert to_numpy(chunked).tolist() == chunked.to_pylist()


@settings(deadline=None)
@given(st.lists(st.one_of(st.none(), st.integers(-(2**40), 2**40)), max_size=50))
def test_nulls_take_the_given_value_or_raise(values: list[int | None]) -> None:
    arr = pa.array(values, pa.int64())
    assert to_numpy(arr, null_as=-1).tolist() == [-1 if v is None else v for v in values]
    if None in values:
        with pytest.raises(ValueError, match="nulls"):
            to_numpy(arr)


@settings(deadline=None)
@given(st.lists(st.booleans(), max_size=70), st.integers(0, 9))
def test_booleans_round_trip(values: list[bool], start: int) -> None:
    arr = pa.array(values, pa.bool_()).slice(min(start, len(values)))
    back = to_numpy(arr)
    assert back.dtype == np.bool_ and back.tolist() == arr.to_pylist()
    assert from_numpy(back).to_pylist() == back.tolist()


@settings(deadline=None)
@given(INTS, st.data())
def test_from_numpy_with_validity(values: list[int], data: st.DataObject) -> None:
    valid = np.array(data.draw(st.lists(st.booleans(), min_size=len(values), max_size=len(values))))
    arr = from_numpy(np.array(values, np.uint64), valid=valid.astype(bool))
    arr.validate(full=True)
    expected = [v if ok else None for v, ok in zip(values, valid, strict=True)]
    assert arr.type == pa.uint64() and arr.to_pylist() == expected


@settings(deadline=None)
@given(st.lists(st.text(), max_size=30), st.text(), st.integers(0, 20))
def test_strings(values: list[str], one: str, n: int) -> None:
    arr = strings(values)
    arr.validate(full=True)
    assert arr.to_pylist() == values
    rep = repeat_string(one, n)
    rep.validate(full=True)
    assert rep.to_pylist() == [one] * n


@given(st.lists(st.integers(0, 2**64 - 1), max_size=50))
def test_hex16_is_printf_016x(keys: list[int]) -> None:
    got = hex16(np.array(keys, np.uint64))
    assert got.type == pa.string()
    assert got.to_pylist() == [f"{k:016x}" for k in keys]
