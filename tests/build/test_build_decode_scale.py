"""JPEG DCT scaling: only the halvings (1/2, 1/4, 1/8), never a scale that loses pixels."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from oiforge.build.decode import dct_denominator, decode
from oiforge.build.synthetic import photo_like


@given(st.floats(0.0, 1.0, allow_nan=False))
def test_denominator_is_the_largest_halving_that_keeps_the_scale(scale: float) -> None:
    d = dct_denominator(scale)
    assert d in (1, 2, 4, 8)
    assert 1.0 / d >= scale  # never fewer pixels than the crops need
    assert d == 8 or 1.0 / (2 * d) < scale  # and no halving left out


def test_decode_uses_halvings_only() -> None:
    data = photo_like(3, 1024, 768)

    def shape(scale: float) -> tuple[int, ...]:
        return tuple(decode(data, 10**8, None, lambda w, h: scale).image.shape[:2])

    sizes = {s: shape(s) for s in (1.0, 0.9, 0.7, 0.51, 0.5, 0.3, 0.2, 0.05)}
    # 7/8, 3/4 and 5/8 run libjpeg-turbo's plain-C IDCTs (slower than a full decode)
    assert sizes[0.9] == sizes[0.7] == sizes[0.51] == sizes[1.0] == (768, 1024)
    assert sizes[0.5] == sizes[0.3] == (384, 512)
    assert sizes[0.2] == (192, 256)
    assert sizes[0.05] == (96, 128)
