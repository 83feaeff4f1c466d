"""Generated JPEGs for the mirror sample: class-specific shapes on textured backgrounds.

Each class gets its own (shape, colour) pair, drawn inside each of its boxes, so a small
classifier can learn the classes. Rendering depends only on the :class:`ImageSpec`, so the
bytes are the same for the same seed on any machine with the same Pillow.
"""

from __future__ import annotations

import functools
import io
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageChops, ImageDraw

#: Flickr-style EXIF orientations used by the sample and the pixel rotation each implies:
#: a viewer applies ``transpose(_DISPLAY[o])`` to the stored pixels to show them upright.
_STORE: dict[int, Image.Transpose] = {
    3: Image.Transpose.ROTATE_180,
    6: Image.Transpose.ROTATE_90,
    8: Image.Transpose.ROTATE_270,
}
ROTATION_OF_ORIENTATION: dict[int, float] = {1: 0.0, 3: 180.0, 6: 90.0, 8: 270.0}
THUMB_SIDE = 640
RESIZED_SIDE = 1024
SHAPES = ("ellipse", "square", "triangle", "diamond", "star", "cross", "ring", "hexagon", "stripes")
PALETTE = (
    (220, 30, 30),
    (30, 160, 40),
    (30, 60, 210),
    (240, 200, 20),
    (150, 40, 190),
    (20, 190, 200),
)


@dataclass(frozen=True)
class DrawnBox:
    """A box to draw: class index (shape/colour) and normalized upright coordinates."""

    class_index: int
    x_min: float
    x_max: float
    y_min: float
    y_max: float


@dataclass(frozen=True)
class ImageSpec:
    """Everything that decides an image's pixels (in upright orientation) and encoding."""

    seed: int
    width: int
    height: int
    boxes: tuple[DrawnBox, ...]
    orientation: int = 1
    quality: int = 90


@dataclass(frozen=True)
class RenderedImage:
    """The three encodings of one image: Flickr original, Flickr ``_z`` thumbnail, resized."""

    original: bytes
    thumbnail: bytes
    resized: bytes


def class_style(class_index: int) -> tuple[str, tuple[int, int, int]]:
    """The (shape, colour) of a class; distinct for the first 54 class indices."""
    shape = class_index % len(SHAPES)
    colour = (class_index // len(SHAPES) + 2 * shape) % len(PALETTE)
    return SHAPES[shape], PALETTE[colour]


def _polygon(kind: str, cx: float, cy: float, rx: float, ry: float) -> list[tuple[float, float]]:
    if kind == "triangle":
        angles = [-90.0, 30.0, 150.0]
        return [_at(cx, cy, rx, ry, a) for a in angles]
    if kind == "diamond":
        return [_at(cx, cy, rx, ry, a) for a in (0.0, 90.0, 180.0, 270.0)]
    if kind == "hexagon":
        return [_at(cx, cy, rx, ry, 60.0 * i) for i in range(6)]
    points = []  # star
    for i in range(10):
        scale = 1.0 if i % 2 == 0 else 0.45
        points.append(_at(cx, cy, rx * scale, ry * scale, -90.0 + 36.0 * i))
    return points


def _at(cx: float, cy: float, rx: float, ry: float, degrees: float) -> tuple[float, float]:
    rad = math.radians(degrees)
    return cx + rx * math.cos(rad), cy + ry * math.sin(rad)


def _draw_box(draw: ImageDraw.ImageDraw, box: DrawnBox, width: int, height: int) -> None:
    shape, colour = class_style(box.class_index)
    x0, x1 = box.x_min * (width - 1), box.x_max * (width - 1)
    y0, y1 = box.y_min * (height - 1), box.y_max * (height - 1)
    cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
    edge = max(2, int(min(rx, ry) / 6))
    if shape == "ellipse":
        draw.ellipse((x0, y0, x1, y1), fill=colour)
    elif shape == "square":
        draw.rectangle((x0, y0, x1, y1), fill=colour)
    elif shape == "ring":
        draw.ellipse((x0, y0, x1, y1), outline=colour, width=max(3, edge * 2))
    elif shape == "cross":
        draw.rectangle((cx - rx / 4, y0, cx + rx / 4, y1), fill=colour)
        draw.rectangle((x0, cy - ry / 4, x1, cy + ry / 4), fill=colour)
    elif shape == "stripes":
        for k in range(5):
            left = x0 + (x1 - x0) * k / 5
            draw.rectangle((left, y0, left + (x1 - x0) / 10, y1), fill=colour)
    else:
        draw.polygon(_polygon(shape, cx, cy, rx, ry), fill=colour)


@functools.cache
def _grain_field() -> Image.Image:
    """A fixed 1,664 px square of grain in 0..8 (seeded), cropped per image at an offset."""
    side = 1664
    values = np.random.default_rng(12345).integers(0, 9, size=(side, side), dtype=np.uint8)
    return Image.fromarray(values, "L").convert("RGB")


def render_upright(spec: ImageSpec) -> Image.Image:
    """The upright picture: smooth random background, class shapes, grain."""
    rng = np.random.default_rng(spec.seed)
    grid = rng.integers(40, 216, size=(4, 5, 3), dtype=np.uint8)
    # Bilinear to 1/16 size, then nearest: a soft background at a sixth of the cost.
    small = (max(1, spec.width // 16), max(1, spec.height // 16))
    image = Image.fromarray(grid, "RGB").resize(small, Image.Resampling.BILINEAR)
    image = image.resize((spec.width, spec.height), Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(image)
    for box in spec.boxes:
        _draw_box(draw, box, spec.width, spec.height)
    # Grain added without overflow, as no drawn value exceeds 240 (+8 <= 255).
    field = _grain_field()
    left = int(rng.integers(0, field.width - spec.width + 1))
    top = int(rng.integers(0, field.height - spec.height + 1))
    grain = field.crop((left, top, left + spec.width, top + spec.height))
    return ImageChops.add(image, grain)


def encode_jpeg(image: Image.Image, quality: int, orientation: int = 1) -> bytes:
    """JPEG bytes; with an EXIF Orientation tag when ``orientation`` is not 1."""
    buf = io.BytesIO()
    if orientation == 1:
        image.save(buf, "JPEG", quality=quality)
    else:
        exif = Image.Exif()
        exif[0x0112] = orientation
        image.save(buf, "JPEG", quality=quality, exif=exif.tobytes())
    return buf.getvalue()


def _shrunk(image: Image.Image, side: int) -> Image.Image:
    scale = side / max(image.size)
    if scale >= 1:
        return image
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)


def render_image(spec: ImageSpec) -> RenderedImage:
    """Render the original (EXIF-rotated when asked), the ``_z`` thumbnail and the resized copy."""
    upright = render_upright(spec)
    stored = upright.transpose(_STORE[spec.orientation]) if spec.orientation in _STORE else upright
    original = encode_jpeg(stored, spec.quality, spec.orientation)
    small = spec.orientation == 1 and max(upright.size) <= THUMB_SIDE
    thumbnail = original if small else encode_jpeg(_shrunk(upright, THUMB_SIDE), 85)
    if spec.orientation == 1 and max(upright.size) <= RESIZED_SIDE:
        resized = original
    else:
        resized = encode_jpeg(_shrunk(upright, RESIZED_SIDE), 90)
    return RenderedImage(original, thumbnail, resized)


def placeholder_png() -> bytes:
    """A Flickr-style "photo unavailable" placeholder (grey, 500x374, like the real one)."""
    image = Image.new("RGB", (500, 374), (238, 238, 238))
    draw = ImageDraw.Draw(image)
    draw.rectangle((200, 130, 300, 210), outline=(160, 160, 160), width=6)
    draw.ellipse((230, 150, 270, 190), outline=(160, 160, 160), width=6)
    draw.text((175, 240), "This photo is no longer available", fill=(120, 120, 120))
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


#: Where the placeholder lives under the mirror root (the real one's host and path).
PLACEHOLDER_RELPATH = "flickr/s.yimg.com/pw/images/en-us/photo_unavailable.png"
