"""Pixel work for the process pool: resize (DCT-scaled decode), rotate, re-encode to JPEG.

Runs in worker processes, so it takes and returns plain picklable values and never raises
for a bad image: it returns a :class:`Rejection` instead.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps

from oiforge.download.verify import Rejection

Image.MAX_IMAGE_PIXELS = 200_000_000  # refuse decompression bombs above ~200 MP

_TRANSPOSE = {
    90: Image.Transpose.ROTATE_90,
    180: Image.Transpose.ROTATE_180,
    270: Image.Transpose.ROTATE_270,
}


@dataclass(frozen=True)
class Encoded:
    """A re-encoded JPEG and its final pixel size."""

    data: bytes
    width: int
    height: int
    rotated: int  # degrees counter-clockwise applied (Rotation column or EXIF)


@dataclass(frozen=True)
class ImageJob:
    """What to do with one body; ``max_side`` None means keep the size (format change only)."""

    body: bytes
    max_side: int | None
    quality: int
    rotation: int  # the Rotation column, degrees counter-clockwise


def encode_image(job: ImageJob) -> Encoded | Rejection:
    """Decode (DCT-scaled when shrinking), orient, resize and encode ``job`` as JPEG."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return _encode(job)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError, Warning) as exc:
        return Rejection("not_image", f"cannot decode: {exc}")


def _encode(job: ImageJob) -> Encoded:
    src = Image.open(io.BytesIO(job.body))
    if job.max_side is not None and src.format == "JPEG":
        # DCT scaling: decode straight to >= the target size (1/2, 1/4, 1/8 of the original).
        src.draft("RGB", _draft_size(src.size, job.max_side))
    src.load()
    img: Image.Image = src
    img, rotated = _orient(img, job.rotation)
    img = img.convert("RGB") if img.mode != "RGB" else img
    if job.max_side is not None and max(img.size) > job.max_side:
        img = img.resize(_fit(img.size, job.max_side), Image.Resampling.BILINEAR, reducing_gap=2.0)
    out = io.BytesIO()
    img.save(out, "JPEG", quality=job.quality, optimize=False)
    return Encoded(out.getvalue(), img.width, img.height, rotated)


def _orient(img: Image.Image, rotation: int) -> tuple[Image.Image, int]:
    """EXIF orientation when the file has one (it is the source of Rotation), else Rotation."""
    orientation = img.getexif().get(0x0112, 1)
    if orientation not in (None, 1):
        turned = ImageOps.exif_transpose(img)
        return turned, {3: 180, 6: 270, 8: 90}.get(int(orientation), 0)
    if rotation in _TRANSPOSE:
        return img.transpose(_TRANSPOSE[rotation]), rotation
    return img, 0


def _draft_size(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    scale = max_side / max(size)
    return max(1, int(size[0] * scale)), max(1, int(size[1] * scale))


def _fit(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    w, h = size
    scale = max_side / max(w, h)
    return max(1, round(w * scale)), max(1, round(h * scale))
