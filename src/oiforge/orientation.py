"""EXIF orientation: which transpose turns a photo upright (shared by build, train and serve)."""

from __future__ import annotations

from typing import Final

from PIL import Image

EXIF_ORIENTATION_TAG: Final = 0x0112
#: EXIF orientation value → the one transpose that shows the photo as a viewer does.
EXIF_TRANSPOSE: Final = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
SWAPS_AXES: Final = frozenset(
    {Image.Transpose.TRANSPOSE, Image.Transpose.TRANSVERSE}
    | {Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_270}
)


def exif_orientation(img: Image.Image) -> int:
    """The EXIF orientation (1 = upright) of an opened image; 1 when the EXIF is unreadable."""
    try:
        return int(img.getexif().get(EXIF_ORIENTATION_TAG, 1) or 1)
    except Exception:  # a broken EXIF block from an untrusted file: the pixels may be fine
        return 1


def upright(rgb: Image.Image, source: Image.Image) -> tuple[Image.Image, bool]:
    """``rgb`` (decoded from ``source``) turned upright; also whether width and height swapped."""
    step = EXIF_TRANSPOSE.get(exif_orientation(source))
    if step is None:
        return rgb, False
    return rgb.transpose(step), step in SWAPS_AXES
