"""Pixel operations on H×W×3 uint8 arrays: OpenCV/simplejpeg when installed, Pillow otherwise.

Stock Pillow's resize costs more than the JPEG decode (FACTS.md), so the hot path uses
OpenCV: area averaging for reductions of 2× or more (after JPEG DCT scaling there are few),
bilinear below that, bicubic to enlarge. Both paths are deterministic for one environment.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from PIL import Image

Array = np.ndarray[Any, np.dtype[np.uint8]]


def _optional(name: str) -> Any:
    """An optional fast-path module, or None."""
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError:
        return None


cv2: Any = _optional("cv2")
simplejpeg: Any = _optional("simplejpeg")
if cv2 is not None:
    cv2.setNumThreads(1)  # one image per process: threads would only fight the pool


def _interpolation(src_w: int, src_h: int, out_w: int, out_h: int) -> int:
    factor = min(src_w / out_w, src_h / out_h)
    if factor >= 2.0:
        return int(cv2.INTER_AREA)
    return int(cv2.INTER_LINEAR if factor >= 1.0 else cv2.INTER_CUBIC)


def resize(arr: Array, width: int, height: int) -> Array:
    """``arr`` resized to ``width`` × ``height`` (antialiased when reducing)."""
    h, w = arr.shape[:2]
    if (w, h) == (width, height):
        return arr
    if cv2 is not None:
        out: Array = cv2.resize(
            arr, (width, height), interpolation=_interpolation(w, h, width, height)
        )
        return out
    im = Image.fromarray(np.ascontiguousarray(arr), "RGB")
    resized: Array = np.asarray(
        im.resize((width, height), Image.Resampling.BICUBIC, reducing_gap=3.0)
    )
    return resized


def thumbnail(arr: Array, side: int = 64) -> Array:
    """A ``side``×``side`` thumbnail by area averaging (the whole image, aspect ignored).

    With OpenCV: exact 2×2 box halvings (its fast bilinear path at exactly half size) while
    the image is at least four sides high, then one area resize; a box filter either way.
    """
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


def encode_jpeg(arr: Array, quality: int) -> bytes:
    """Baseline JPEG, 4:2:0, at ``quality``."""
    arr = np.ascontiguousarray(arr)
    if simplejpeg is not None:
        return bytes(simplejpeg.encode_jpeg(arr, quality, "RGB", "420"))
    buf = io.BytesIO()
    Image.fromarray(arr, "RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def decode_jpeg_fast(data: bytes, min_width: int, min_height: int) -> Array | None:
    """libjpeg-turbo via simplejpeg, strict (any warning → None, so Pillow decides)."""
    if simplejpeg is None:
        return None
    try:
        out: Array = simplejpeg.decode_jpeg(
            data, "RGB", min_width=min_width, min_height=min_height, strict=True
        )
    except (ValueError, RuntimeError):
        return None
    return out
