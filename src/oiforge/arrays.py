"""NumPy <-> Arrow for the selection's hot path, without ``pa.array``/``pa.scalar``/``to_numpy``.

In pyarrow those check for pandas objects and so import pandas on first use: ~0.3 s of a
~1 s ``oiforge select`` that otherwise never needs pandas. These build arrays from buffers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

Vector = np.ndarray[Any, Any]


def to_numpy(values: pa.Array | pa.ChunkedArray, null_as: int | None = None) -> Vector:
    """A fixed-width (or boolean) array as a NumPy array (zero copy if possible); nulls are an
    error unless ``null_as`` gives the value to put in their place."""
    arr = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    if pa.types.is_boolean(arr.type):
        arr = pc.cast(arr, pa.uint8())
        return to_numpy(arr, null_as).astype(bool)
    dtype = np.dtype(arr.type.to_pandas_dtype())
    if len(arr) == 0:
        return np.empty(0, dtype)
    raw = np.frombuffer(arr.buffers()[1], dtype, count=len(arr), offset=arr.offset * dtype.itemsize)
    if not arr.null_count:
        return raw
    if null_as is None:
        raise ValueError("to_numpy: the array has nulls")
    return np.where(to_numpy(pc.is_valid(arr)), raw, null_as)  # null slots hold any bytes


def from_numpy(values: Vector, valid: Vector | None = None) -> pa.Array:
    """A NumPy vector as an Arrow array; ``valid`` (bools) marks the non-null rows."""
    n = len(values)
    bitmap = None
    null_count = 0
    if valid is not None:
        bitmap = pa.py_buffer(np.packbits(valid.astype(bool), bitorder="little"))
        null_count = n - int(np.count_nonzero(valid))
    if values.dtype == np.bool_:
        data = pa.py_buffer(np.packbits(values, bitorder="little"))
        return pa.Array.from_buffers(pa.bool_(), n, [bitmap, data], null_count)
    data = pa.py_buffer(np.ascontiguousarray(values))
    return pa.Array.from_buffers(pa.from_numpy_dtype(values.dtype), n, [bitmap, data], null_count)


def run_starts(values: Vector) -> Vector:
    """True where a value differs from the one before it (and at the first): over a sorted
    vector, the first of each distinct value."""
    return np.r_[True, values[1:] != values[:-1]] if len(values) else np.zeros(0, bool)


def strings(values: Sequence[str]) -> pa.Array:
    """Python strings as an Arrow ``string`` array."""
    encoded = [v.encode() for v in values]
    offsets = np.zeros(len(encoded) + 1, np.int32)
    np.cumsum([len(b) for b in encoded], out=offsets[1:])
    buffers = [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))]
    return pa.Array.from_buffers(pa.string(), len(encoded), buffers)


def repeat_string(value: str, n: int) -> pa.Array:
    """``value`` ``n`` times (one copy of the text, ``n`` offsets)."""
    return strings([value]).take(from_numpy(np.zeros(n, np.int32)))


#: each octet's two hex digits, as the 2 bytes of a ``uint16`` in memory order
_HEX_PAIRS = np.frombuffer(
    b"".join(f"{i:02x}".encode() for i in range(256)), np.uint16
)  # fmt: skip


def hex16(keys: Vector) -> pa.Array:
    """Unsigned 64-bit keys as 16 lowercase hex digits each (``printf('%016x')``): an
    ``image_key`` back to its ImageID (one table lookup per octet)."""
    n = len(keys)
    octets = np.ascontiguousarray(keys, ">u8").view(np.uint8).reshape(n, 8)
    text = _HEX_PAIRS[octets]  # (n, 8) pairs of digits, most significant octet first
    small = 16 * n < 2**31  # 32-bit offsets: no cast from ``large_string`` needed
    offsets = np.arange(0, 16 * n + 1, 16, dtype=np.int32 if small else np.int64)
    kind = pa.string() if small else pa.large_string()
    buffers = [None, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(text))]
    return pa.Array.from_buffers(kind, n, buffers).cast(pa.string())
