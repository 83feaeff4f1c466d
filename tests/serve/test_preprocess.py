"""Decoding untrusted bytes: any input is an image or an `ImageRejected`, nothing else."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from serve_helpers import PRE, huge_png, photo

from oiforge.serve.preprocess import ImageRejected, decode_image, preprocess_bytes

SEEDS = [
    photo(64, 48),
    photo(40, 70, fmt="PNG"),
    photo(33, 21, fmt="GIF"),
    photo(50, 50, fmt="WEBP"),
    photo(20, 30, fmt="BMP"),
    photo(25, 25, fmt="TIFF"),
]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(0, 8))):
        pos = draw(st.integers(0, len(data) - 1))
        data[pos] = draw(st.integers(0, 255))
    cut = draw(st.integers(0, len(data)))
    return bytes(data[:cut]) if draw(st.booleans()) else bytes(data)


@given(st.one_of(mutated(), st.binary(max_size=2048)))
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_hostile_bytes_decode_or_are_rejected_by_name(data: bytes) -> None:
    try:
        arr, decoded = preprocess_bytes(data, PRE, max_pixels=1_000_000)
    except ImageRejected as exc:
        assert exc.code in {"invalid_image", "image_too_large"}
        return
    assert arr.shape == (3, PRE.size, PRE.size) and arr.dtype == np.float32
    assert np.isfinite(arr).all() and decoded.width * decoded.height <= 1_000_000


def test_decompression_bomb_is_refused_before_decoding() -> None:
    with pytest.raises(ImageRejected) as info:
        decode_image(huge_png(), PRE.size)
    assert info.value.code == "image_too_large" and "pixels" in str(info.value)
