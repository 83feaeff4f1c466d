"""Decoding untrusted bytes: any input is an image or an `ImageRejected`, nothing else."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.helpers.serve import PRE, huge_png, photo

from oiforge.contracts.run import Preprocessing
from oiforge.serve.images import ImageRejected, decode_image, normalise, preprocess_bytes

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


@given(
    st.integers(1, 40),
    st.integers(1, 40),
    st.tuples(*[st.floats(0.0, 1.0)] * 3),
    st.tuples(*[st.floats(0.05, 2.0)] * 3),
    st.integers(0, 2**32 - 1),
)
@settings(max_examples=60, deadline=None)
def test_normalise_equals_the_textbook_formula(
    h: int,
    w: int,
    mean: tuple[float, float, float],
    std: tuple[float, float, float],
    seed: int,
) -> None:
    pixels = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    pre = Preprocessing(size=8, mean=mean, std=std)
    got = normalise(pixels, pre)
    want = ((pixels / 255.0 - np.asarray(mean)) / np.asarray(std)).transpose(2, 0, 1)
    assert got.shape == (3, h, w) and got.dtype == np.float32 and got.flags.c_contiguous
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_turns_the_photo_upright_as_training_does(orientation: int) -> None:
    import io

    from PIL import Image

    from oiforge.orientation import EXIF_TRANSPOSE
    from oiforge.train.images import decode_image as train_decode

    stored = Image.open(io.BytesIO(photo(64, 40))).convert("RGB")  # 64x40 as the camera wrote it
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    stored.save(buf, "JPEG", quality=95, exif=exif.tobytes())
    data = buf.getvalue()
    plain = Image.open(io.BytesIO(data)).convert("RGB")
    step = EXIF_TRANSPOSE.get(orientation)
    expected = plain if step is None else plain.transpose(step)
    got = decode_image(data)
    assert (got.width, got.height) == expected.size  # the upright size
    assert np.array_equal(np.asarray(got.image), np.asarray(expected))
    assert np.array_equal(np.asarray(train_decode(data, 64)), np.asarray(expected))


def test_a_broken_exif_block_leaves_the_pixels_as_they_are() -> None:
    import io

    from PIL import Image

    data = photo(30, 20)
    marker = data.index(b"\xff\xd9")  # a bogus APP1 "Exif" segment after SOI
    bogus = b"\xff\xe1\x00\x0cExif\x00\x00\xde\xad\xbe\xef"
    broken = data[:2] + bogus + data[2:marker] + data[marker:]
    got = decode_image(broken)
    assert got.image.size == Image.open(io.BytesIO(data)).size
