"""Pixel work for the process pool: resize (DCT-scaled decode), rotate, re-encode to JPEG.

Runs in worker processes, so it takes and returns plain picklable values and never raises
for a bad image: it returns a :class:`Rejection` instead. JPEGs take the fast path of
``oiforge.pixels`` (libjpeg-turbo decode at the DCT scale Pillow's draft mode would pick,
OpenCV resize, libjpeg-turbo encode: about half of Pillow's CPU time); anything it refuses
(CMYK, a damaged file, no simplejpeg) goes through Pillow, which also names the error.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps

from oiforge.download.verify import Rejection
from oiforge.orientation import EXIF_TRANSPOSE, exif_orientation
from oiforge.pixels import Array, decode_jpeg_fast, encode_jpeg, resize, turn_array

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
    if src.format == "JPEG" and job.max_side is not None:
        fast = _encode_fast(job, src, job.max_side)
        if fast is not None:
            return fast
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


def _encode_fast(job: ImageJob, src: Image.Image, max_side: int) -> Encoded | None:
    """The JPEG resize on arrays, or None when libjpeg-turbo refuses the file."""
    width, height = _draft_size(src.size, max_side)
    arr = decode_jpeg_fast(job.body, width, height)
    if arr is None:
        return None
    arr, rotated = _orient_array(arr, exif_orientation(src), job.rotation)
    h, w = arr.shape[:2]
    if max(w, h) > max_side:
        arr = resize(arr, *_fit((w, h), max_side))
    h, w = arr.shape[:2]
    return Encoded(encode_jpeg(arr, job.quality), w, h, rotated)


def _orient_array(arr: Array, orientation: int, rotation: int) -> tuple[Array, int]:
    """``_orient`` on an array: EXIF when the file has one, else the Rotation column."""
    if orientation != 1:
        step = EXIF_TRANSPOSE.get(orientation)
        turned = turn_array(arr, step) if step is not None else arr
        return turned, {3: 180, 6: 270, 8: 90}.get(orientation, 0)
    if rotation in _TRANSPOSE:
        return turn_array(arr, _TRANSPOSE[rotation]), rotation
    return arr, 0


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
