"""Any decoded image as 8-bit RGB, the same in training, evaluation and serving.

Pillow's plain ``convert("RGB")`` clips 16-bit greyscale to white and shows transparent pixels
as whatever colour they happen to store (often black). Here:

- 16-bit greyscale (PNG/TIFF ``I;16*``, ``I``) is scaled by its bit depth: 65535 -> 255;
  32-bit float (``F``) is clipped to 0..255;
- transparency (``RGBA``, ``LA``, ``PA``, a palette with a transparent index) is composited
  onto white, as a viewer shows it on a page;
- greyscale, palette, CMYK (Adobe's inverted CMYK JPEGs included: Pillow undoes the
  inversion), YCbCr, LAB, HSV and 1-bit images convert as Pillow converts them.
"""

from __future__ import annotations

from typing import Final

import numpy as np
from PIL import Image

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
