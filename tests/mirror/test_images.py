"""The sample's pixels: class-specific content inside the boxes, EXIF orientation, copies."""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from pathlib import Path

from PIL import Image, ImageOps

from oiforge.mirror.images import RESIZED_SIDE, THUMB_SIDE, class_style
from oiforge.mirror.plan import SAMPLE_CLASSES

FILLED = {"ellipse", "square", "triangle", "diamond", "hexagon", "star"}


def _facts(root: Path) -> dict:
    return json.loads((root / "sample.json").read_text(encoding="utf-8"))


def _open(path: Path) -> Image.Image:
    return Image.open(io.BytesIO(path.read_bytes()))


def _original(root: Path, image: dict) -> Path:
    return root / "flickr" / image["original_url"].split("://", 1)[1]


def test_exif_orientation_rotates_the_stored_pixels(sample_root: Path) -> None:
    images = _facts(sample_root)["images"]
    for image in [im for im in images if im["orientation"] != 1] + images[:30]:
        stored = _open(_original(sample_root, image))
        orientation = stored.getexif().get(0x0112, 1)
        assert orientation == image["orientation"]
        upright = ImageOps.exif_transpose(stored)
        assert upright.size == (image["width"], image["height"])
        swapped = orientation in (6, 8)
        assert stored.size == ((image["height"], image["width"]) if swapped else upright.size)


def test_resized_and_thumbnail_sizes(sample_root: Path) -> None:
    for image in _facts(sample_root)["images"][:150]:
        longest = max(image["width"], image["height"])
        thumb_rel = image["thumbnail_url"].split("://", 1)[1].split("?", 1)[0]
        thumb = _open(sample_root / "flickr" / thumb_rel)
        assert max(thumb.size) == min(longest, THUMB_SIDE)
        if image["has_resized"]:
            resized = _open(
                sample_root / "open-images-dataset" / image["split"] / f"{image['image_id']}.jpg"
            )
            assert max(resized.size) == min(longest, RESIZED_SIDE)
            assert resized.getexif().get(0x0112, 1) == 1


def test_box_centres_show_the_class_colour(sample_root: Path) -> None:
    boxes: dict[str, list[list[str]]] = defaultdict(list)
    with (sample_root / "openimages/v5/validation-annotations-bbox.csv").open(newline="") as fh:
        for row in list(csv.reader(fh))[1:]:
            boxes[row[0]].append(row)
    index = {c.mid: i for i, c in enumerate(SAMPLE_CLASSES)}
    checked = 0
    for image in _facts(sample_root)["images"]:
        rows = boxes.get(image["image_id"], [])
        if len(rows) != 1:
            continue
        mid, x0, x1, y0, y1 = rows[0][2], *map(float, rows[0][4:8])
        shape, colour = class_style(index[mid])
        if shape not in FILLED:
            continue
        upright = ImageOps.exif_transpose(_open(_original(sample_root, image))).convert("RGB")
        cx = round((x0 + x1) / 2 * (upright.width - 1))
        cy = round((y0 + y1) / 2 * (upright.height - 1))
        pixel = upright.getpixel((cx, cy))
        assert isinstance(pixel, tuple)
        assert max(abs(a - b) for a, b in zip(pixel, colour, strict=True)) < 40, image["image_id"]
        checked += 1
    assert checked >= 10


def test_class_styles_are_distinct() -> None:
    styles = {class_style(i) for i in range(len(SAMPLE_CLASSES))}
    assert len(styles) == len(SAMPLE_CLASSES)
