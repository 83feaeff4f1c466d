"""Any decoded image as 8-bit RGB, the same in training, evaluation and serving.

Pillow's plain ``convert("RGB")`` clips 16-bit greyscale to white and shows transparent pixels
as whatever colour they happen to store (often black). Here:

- 16-bit greyscale (PNG/TIFF ``I;16*``, ``I``) is scaled by its bit depth: 65535 -> 255;
  32-bit float (``F``) is clipped to 0..255;
- transparency (``RGBA``, ``LA``, ``PA``, a palette with a transparent index) is composited
  onto white, as a viewer shows it on a page;
- greyscale, palette, CMYK (Adobe's inverted CMYK JPEGs included: Pillow undoes the
  inversion), YCbCr, LAB, HSV and 1-bit images convert as Pillow converts them.

Fast array operations on H×W×3 uint8 RGB (build and download): libjpeg-turbo through
simplejpeg to decode (DCT-scaled) and encode, OpenCV to resize; Pillow when they are not
installed. Stock Pillow's resize costs more than the JPEG decode (FACTS.md), so OpenCV is the
hot path: area averaging for reductions of 2× or more (after JPEG DCT scaling there are few),
bilinear below that, bicubic to enlarge. Both paths are deterministic for one environment.
"""

from __future__ import annotations

import functools
import importlib
import io
from collections.abc import Callable
from typing import Any, Final

import numpy as np
from PIL import Image

Array = np.ndarray[Any, np.dtype[np.uint8]]

SIXTEEN_BIT_MODES: Final = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I"})
ALPHA_MODES: Final = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
BACKGROUND: Final = (255, 255, 255)


def has_transparency(img: Image.Image) -> bool:
    """Whether the image carries an alpha channel or a transparent palette entry."""
    return img.mode in ALPHA_MODES or (img.mode == "P" and "transparency" in img.info)


def to_rgb(img: Image.Image) -> Image.Image:
    """An 8-bit RGB copy of a loaded image (``img`` itself when it already is one)."""
    if img.mode == "RGB":
        return img
    if img.mode in SIXTEEN_BIT_MODES:
        values = np.asarray(img, dtype=np.float64)
        grey = np.clip(np.rint(values / 257.0), 0, 255).astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB")
    if img.mode == "F":
        grey = np.clip(np.rint(np.asarray(img, dtype=np.float64)), 0, 255).astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB")
    if has_transparency(img):
        rgba = img.convert("RGBA")
        page = Image.new("RGBA", rgba.size, (*BACKGROUND, 255))
        return Image.alpha_composite(page, rgba).convert("RGB")
    return img.convert("RGB")


def input_kinds(img: Image.Image, min_side: int = 32, max_aspect: float = 4.0) -> list[str]:
    """What is unusual about an opened (not necessarily loaded) image, for a notice."""
    kinds = []
    if img.mode in ("L", "1", "LA", "La") or img.mode in SIXTEEN_BIT_MODES or img.mode == "F":
        kinds.append("greyscale")
    if img.mode in SIXTEEN_BIT_MODES:
        kinds.append("16-bit")
    if img.mode in ("P", "PA"):
        kinds.append("palette")
    if has_transparency(img):
        kinds.append("transparent")
    if img.mode == "CMYK":
        kinds.append("CMYK")
    width, height = img.size
    if min(width, height) < min_side:
        kinds.append(f"tiny (< {min_side} px)")
    if max(width, height) > max_aspect * max(1, min(width, height)):
        kinds.append(f"elongated (> {max_aspect:g}:1)")
    return kinds


@functools.cache
def optional_module(name: str) -> Any:
    """An optional fast-path module (``cv2``, ``simplejpeg``), or None; imported on first use,
    so stages that never call these (serving) do not load them."""
    try:
        module = importlib.import_module(name)
    except ImportError:
        return None
    if name == "cv2":
        module.setNumThreads(1)  # one image per process: threads would only fight the pool
    return module


def _interpolation(cv2: Any, src_w: int, src_h: int, out_w: int, out_h: int) -> int:
    factor = min(src_w / out_w, src_h / out_h)
    if factor >= 2.0:
        return int(cv2.INTER_AREA)
    return int(cv2.INTER_LINEAR if factor >= 1.0 else cv2.INTER_CUBIC)


def resize(arr: Array, width: int, height: int) -> Array:
    """``arr`` resized to ``width`` × ``height`` (antialiased when reducing)."""
    h, w = arr.shape[:2]
    if (w, h) == (width, height):
        return arr
    cv2 = optional_module("cv2")
    if cv2 is not None:
        out: Array = cv2.resize(
            arr, (width, height), interpolation=_interpolation(cv2, w, h, width, height)
        )
        return out
    im = Image.fromarray(np.ascontiguousarray(arr), "RGB")
    resized: Array = np.asarray(
        im.resize((width, height), Image.Resampling.BICUBIC, reducing_gap=3.0)
    )
    return resized


def encode_jpeg(arr: Array, quality: int) -> bytes:
    """Baseline JPEG, 4:2:0, at ``quality``."""
    arr = np.ascontiguousarray(arr)
    simplejpeg = optional_module("simplejpeg")
    if simplejpeg is not None:
        return bytes(simplejpeg.encode_jpeg(arr, quality, "RGB", "420"))
    buf = io.BytesIO()
    Image.fromarray(arr, "RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def decode_jpeg_fast(data: bytes, min_width: int, min_height: int) -> Array | None:
    """libjpeg-turbo via simplejpeg at the smallest DCT scale (1/2, 1/4, 1/8) still at least
    ``min_width`` × ``min_height`` (0: full size); strict: any warning, a CMYK file or no
    simplejpeg gives None, so Pillow decides."""
    simplejpeg = optional_module("simplejpeg")
    if simplejpeg is None:
        return None
    try:
        out: Array = simplejpeg.decode_jpeg(
            data, "RGB", min_width=min_width, min_height=min_height, strict=True
        )
    except (ValueError, RuntimeError):
        return None
    return out


_TURN_ARRAY: Final[dict[Image.Transpose, Callable[[Array], Array]]] = {
    Image.Transpose.FLIP_LEFT_RIGHT: lambda a: a[:, ::-1],
    Image.Transpose.ROTATE_180: lambda a: a[::-1, ::-1],
    Image.Transpose.FLIP_TOP_BOTTOM: lambda a: a[::-1],
    Image.Transpose.TRANSPOSE: lambda a: a.transpose(1, 0, 2),
    Image.Transpose.TRANSVERSE: lambda a: np.rot90(a, 2).transpose(1, 0, 2),
    Image.Transpose.ROTATE_90: lambda a: np.rot90(a, 1),
    Image.Transpose.ROTATE_270: lambda a: np.rot90(a, 3),
}


def turn_array(arr: Array, step: Image.Transpose) -> Array:
    """``arr`` transposed as Pillow's ``Image.transpose(step)`` would (contiguous)."""
    return np.ascontiguousarray(_TURN_ARRAY[step](arr))
