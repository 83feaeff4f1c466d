"""Pixels: open and fully decode one store image, and the array operations on it.

Decoding: checks, draft-mode scaling, upright orientation; every failure is a reason string
(``DecodeFailure``), never an exception out of here. The array operations shared with the
download stage (libjpeg-turbo decode and encode, OpenCV resize) live in ``oiforge.pixels``.
"""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from PIL import Image

from oiforge.orientation import EXIF_TRANSPOSE, SWAPS_AXES, exif_orientation
from oiforge.pixels import (
    Array,
    decode_jpeg_fast,
    optional_module,
    turn_array,
)


def thumbnail(arr: Array, side: int = 64) -> Array:
    """A ``side``×``side`` thumbnail by area averaging (the whole image, aspect ignored).

    With OpenCV: exact 2×2 box halvings (its fast bilinear path at exactly half size) while
    the image is at least four sides high, then one area resize; a box filter either way.
    """
    cv2 = optional_module("cv2")
    if cv2 is None:
        h, w = arr.shape[:2]
        k = max(1, min(h, w) // side)
        im = Image.fromarray(np.ascontiguousarray(arr), "RGB")
        im = im.reduce(k) if k > 1 else im
        thumb: Array = np.asarray(im.resize((side, side), Image.Resampling.BOX))
        return thumb
    while min(arr.shape[:2]) >= 4 * side:
        h, w = arr.shape[0] // 2, arr.shape[1] // 2
        arr = cv2.resize(arr[: 2 * h, : 2 * w], (w, h), interpolation=cv2.INTER_LINEAR)
    small: Array = cv2.resize(arr, (side, side), interpolation=cv2.INTER_AREA)
    return small


#: Formats a store file may hold; anything else Pillow happens to parse is refused. MPO is a
#: JPEG with extra frames (stereo, depth) appended, as many cameras write; its first frame is
#: the photo.
ALLOWED_FORMATS: Final = frozenset({"JPEG", "MPO", "PNG", "WEBP"})
#: Open Images ``Rotation`` (degrees clockwise to turn the photo upright) as a transpose.
_ROTATION: Final = {
    90: Image.Transpose.ROTATE_270,
    180: Image.Transpose.ROTATE_180,
    270: Image.Transpose.ROTATE_90,
}


class DecodeFailure(Exception):
    """A reason to exclude an image (internal: turned into a status by the caller)."""


@dataclass(frozen=True)
class Decoded:
    """An upright RGB image (H×W×3 uint8), possibly decoded at a reduced scale."""

    image: Array
    full_width: int  # upright size at full resolution
    full_height: int
    turn: str  # "" or the orientation fix applied ("exif:6", "rotation:90")


def _orientation(im: Image.Image, rotation: float | None) -> tuple[Image.Transpose | None, str]:
    """The one orientation fix to apply: EXIF when it says anything, else Open Images'."""
    exif = exif_orientation(im)
    if exif in EXIF_TRANSPOSE:
        return EXIF_TRANSPOSE[exif], f"exif:{exif}"
    if rotation is not None and math.isfinite(rotation) and int(rotation) % 360 in _ROTATION:
        deg = int(rotation) % 360
        return _ROTATION[deg], f"rotation:{deg}"
    return None, ""


def open_checked(data: bytes, max_pixels: int) -> Image.Image:
    """Parse the header; refuse empty files, odd formats and decompression bombs."""
    if not data:
        raise DecodeFailure("empty_file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DecodeFailure("too_many_pixels") from exc
    except Exception as exc:
        raise DecodeFailure(f"not_an_image: {type(exc).__name__}") from exc
    if im.format not in ALLOWED_FORMATS:
        raise DecodeFailure(f"unsupported_format: {im.format}")
    if im.width * im.height > max_pixels or im.width < 1 or im.height < 1:
        raise DecodeFailure("too_many_pixels")
    return im


def decode(
    data: bytes, max_pixels: int, rotation: float | None, scale_for: Callable[[int, int], float]
) -> Decoded:
    """Fully decode and turn upright; ``scale_for(upright_w, upright_h)`` (≤ 1) lets JPEG
    draft mode decode at a reduced scale (DCT scaling still reads every coefficient)."""
    im = open_checked(data, max_pixels)
    turn, note = _orientation(im, rotation)
    w0, h0 = im.size
    full_w, full_h = (h0, w0) if turn in SWAPS_AXES else (w0, h0)
    d = dct_denominator(scale_for(full_w, full_h))
    rgb = _fast_jpeg(data, im, d) if im.format in ("JPEG", "MPO") else None
    if rgb is None:
        rgb = np.asarray(_pillow_decode(im, d))
    if turn is not None:
        rgb = turn_array(rgb, turn)
    return Decoded(rgb, full_w, full_h, note)


def dct_denominator(scale: float) -> int:
    """The largest of 1, 2, 4, 8 whose reduction ``1/d`` still gives ``scale``.

    libjpeg-turbo can also scale by 3/8 … 7/8, but those run its plain-C inverse DCTs: at
    7/8 a decode took 1.8x as long as at full size here (bench/RESULTS.md), so only the
    halvings, which are cheaper than a full decode, are used."""
    d = 1
    while d < 8 and scale <= 1.0 / (2 * d):
        d *= 2
    return d


def _fast_jpeg(data: bytes, im: Image.Image, d: int) -> Array | None:
    """libjpeg-turbo at 1/``d``."""
    w0, h0 = im.size
    if d > 1:
        return decode_jpeg_fast(data, -(-w0 // d), -(-h0 // d))
    return decode_jpeg_fast(data, 0, 0)


def _pillow_decode(im: Image.Image, d: int) -> Image.Image:
    w0, h0 = im.size
    if im.format in ("JPEG", "MPO") and d > 1:
        im.draft("RGB", (max(1, w0 // d), max(1, h0 // d)))  # Pillow picks 1/d from these
    try:
        im.load()
        return im if im.mode == "RGB" else im.convert("RGB")
    except Exception as exc:  # truncated data, bad Huffman tables, ...
        raise DecodeFailure(f"decode_error: {type(exc).__name__}: {exc}"[:200]) from exc


def image_flags(thumb32: Array) -> tuple[str, ...]:
    """Review flags from a 32×32 thumbnail: ``grayscale`` and ``placeholder_like``."""
    px = thumb32.reshape(-1, 3).astype(np.int16)
    spread = px.max(axis=1) - px.min(axis=1)
    flags: list[str] = []
    if np.count_nonzero(spread > 6) <= 0.01 * len(px):
        flags.append("grayscale")
    if float(px.mean(axis=1).std()) < 6.0:
        flags.append("placeholder_like")
    return tuple(flags)


def _dct_matrix(n: int) -> np.ndarray[Any, np.dtype[np.float64]]:
    k = np.arange(n, dtype=np.float64)[:, None]
    m: np.ndarray[Any, np.dtype[np.float64]] = np.cos(
        np.pi * (2 * np.arange(n)[None, :] + 1) * k / (2 * n)
    )
    scaled: np.ndarray[Any, np.dtype[np.float64]] = m * np.sqrt(2.0 / n)
    return scaled


_DCT32: Final = _dct_matrix(32)
_LUMA: Final = np.array([0.299, 0.587, 0.114])


def perceptual_hash(thumb32: Array) -> str:
    """A 64-bit DCT hash (16 hex chars) of a 32×32 grey thumbnail: robust to re-encoding.

    The usual pHash: 2-D DCT, the 8×8 lowest frequencies, each bit = above their median.
    """
    grey = thumb32.astype(np.float64) @ _LUMA
    low = (_DCT32 @ grey @ _DCT32.T)[:8, :8].ravel()
    bits = np.packbits(low > np.median(low))
    return bits.tobytes().hex()
