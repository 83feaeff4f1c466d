"""Photo files to printable pixels: load, crop to the object or to a square, size, encode.

Every failure is a value (``LoadedPhoto.error``), never an exception: a broken, missing,
hostile or changed file just drops that photo from the book.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from oiforge.book.model import Box, Photo
from oiforge.contracts import is_image_id, store_path_parts

MAX_PIXELS = 80_000_000  # refuse decompression bombs
MAX_FILE_BYTES = 64 * 1024 * 1024
BOX_PADDING = 0.08  # fraction of the box side added around a cropped object


@dataclass(frozen=True)
class LoadedPhoto:
    """A photo cropped to a square, or the reason it could not be."""

    photo: Photo
    image: Image.Image | None = None
    cropped: bool = False
    error: str = ""

    @property
    def is_ok(self) -> bool:
        return self.image is not None

    @property
    def side(self) -> int:
        return self.image.width if self.image is not None else 0


def photo_path(photo: Photo, store: Path | None) -> Path | None:
    """Where a photo's bytes are: ``store/<id[:2]>/<id>.jpg`` or the local file."""
    if photo.source == "local":
        return Path(photo.path) if photo.path else None
    if store is None or not is_image_id(photo.image_id):
        return None
    folder, name = store_path_parts(photo.image_id)
    return store / folder / name


def _decode(data: bytes) -> Image.Image:
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        opened = Image.open(io.BytesIO(data))
        if opened.width * opened.height > MAX_PIXELS:
            raise ValueError(f"image too large ({opened.width}x{opened.height})")
        opened.load()
    return ImageOps.exif_transpose(opened).convert("RGB")


def square_region(width: int, height: int, box: Box | None) -> tuple[int, int, int, int]:
    """The square (left, top, right, bottom) to print: around the box, or the centre."""
    side: float
    if box is None:
        side = min(width, height)
        cx, cy = width / 2, height / 2
    else:
        bw = (box.x_max - box.x_min) * width
        bh = (box.y_max - box.y_min) * height
        side = min(max(bw, bh) * (1 + 2 * BOX_PADDING), width, height)
        cx = (box.x_min + box.x_max) / 2 * width
        cy = (box.y_min + box.y_max) / 2 * height
    px = max(1, int(side))
    left = int(min(max(cx - px / 2, 0), width - px))
    top = int(min(max(cy - px / 2, 0), height - px))
    return left, top, left + px, top + px


def load_photo(photo: Photo, store: Path | None) -> LoadedPhoto:
    """Read, verify (local files: sha256) and crop one photo to a square."""
    path = photo_path(photo, store)
    if path is None:
        return LoadedPhoto(photo, error="no file for this photo")
    try:
        if not path.is_file():  # a FIFO or device would block or never end
            return LoadedPhoto(photo, error="not readable: not a regular file")
        if path.stat().st_size > MAX_FILE_BYTES:
            return LoadedPhoto(photo, error=f"file larger than {MAX_FILE_BYTES} bytes")
        data = path.read_bytes()
    except OSError as exc:
        return LoadedPhoto(photo, error=f"not readable: {exc.strerror or exc}")
    if photo.sha256 and hashlib.sha256(data).hexdigest() != photo.sha256:
        return LoadedPhoto(photo, error="file changed since the plan (sha256 differs)")
    try:
        img = _decode(data)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError, Warning) as exc:
        return LoadedPhoto(photo, error=f"not a readable image: {exc}")
    region = square_region(img.width, img.height, photo.box)
    cropped = region != (0, 0, img.width, img.height)
    return LoadedPhoto(photo, img.crop(region), cropped=cropped)


def grey_thumb(img: Image.Image, side: int = 256) -> Image.Image:
    """A small grey copy for sharpness and hashing (box-reduced first: cheap on big photos)."""
    grey = img.convert("L")
    factor = grey.width // (2 * side)
    if factor >= 2:
        grey = grey.reduce(factor)
    return grey.resize((side, side), Image.Resampling.BILINEAR)


def sharpness(thumb: Image.Image) -> float:
    """Variance of a Laplacian on a grey thumbnail: higher is sharper."""
    grey = np.asarray(thumb.convert("L"), np.float32)
    lap = (
        -4 * grey[1:-1, 1:-1] + grey[:-2, 1:-1] + grey[2:, 1:-1] + grey[1:-1, :-2] + grey[1:-1, 2:]
    )
    return float(lap.var())


def dhash(thumb: Image.Image) -> int:
    """A 64-bit difference hash, for near-duplicate detection."""
    grey = np.asarray(thumb.convert("L").resize((9, 8), Image.Resampling.BILINEAR), np.int16)
    bits = (grey[:, 1:] > grey[:, :-1]).flatten()
    return int("".join("1" if b else "0" for b in bits), 2)


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


def encode_for_print(img: Image.Image, cell_in: float, max_dpi: int, quality: int) -> bytes:
    """JPEG bytes no larger than ``max_dpi`` at ``cell_in`` inches (never upscaled)."""
    target = max(1, round(cell_in * max_dpi))
    if img.width > target:
        img = img.resize((target, target), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    img.save(out, "JPEG", quality=quality, optimize=False, progressive=False, subsampling=0)
    return out.getvalue()


def effective_dpi(pixels: int, cell_in: float) -> float:
    """Pixels per inch when ``pixels`` are printed across ``cell_in`` inches."""
    return pixels / cell_in if cell_in > 0 else 0.0
