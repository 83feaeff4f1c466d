"""The official metadata files of the sample, in the exact official column layouts."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from oiforge.mirror.labels import LabelRow, sorted_rows
from oiforge.mirror.plan import PlannedBox, PlannedImage

IMAGE_COLUMNS = (
    "ImageID", "Subset", "OriginalURL", "OriginalLandingURL", "License", "AuthorProfileURL",
    "Author", "Title", "OriginalSize", "OriginalMD5", "Thumbnail300KURL", "Rotation",
)  # fmt: skip
LABEL_COLUMNS = ("ImageID", "Source", "LabelName", "Confidence")
BOX_COLUMNS = (
    "ImageID", "Source", "LabelName", "Confidence", "XMin", "XMax", "YMin", "YMax",
    "IsOccluded", "IsTruncated", "IsGroupOf", "IsDepiction", "IsInside",
)  # fmt: skip
XCLICK_COLUMNS = tuple(f"XClick{i}{axis}" for axis in "XY" for i in range(1, 5))
BOX_COLUMNS_V6_TRAIN = BOX_COLUMNS + XCLICK_COLUMNS
#: The one box file with the 21-column layout (8 XClick columns).
V6_TRAIN_BOXES = "v6/oidv6-train-annotations-bbox.csv"


@dataclass(frozen=True)
class Encoded:
    """Size and base64 binary MD5 of an image's Flickr original (as served)."""

    size: int
    md5_b64: str


def to_csv(header: Sequence[str], rows: Iterable[Sequence[object]], newline: str) -> bytes:
    """CSV bytes with minimal quoting (commas, quotes, line breaks), like the official files."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator=newline, quoting=csv.QUOTE_MINIMAL)
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue().encode("utf-8")


def image_rows(images: Iterable[PlannedImage], encoded: dict[str, Encoded]) -> list[list[str]]:
    """Rows of an image metadata file (12 columns), in plan order (not sorted)."""
    rows = []
    for im in images:
        enc = encoded[im.image_id]
        rows.append([
            im.image_id, im.split, im.original_url, im.landing_url, im.license,
            im.author_profile_url, im.author, im.title, str(enc.size), enc.md5_b64,
            im.thumbnail_url, im.rotation,
        ])  # fmt: skip
    return rows


def label_rows(rows: Iterable[LabelRow], image_ids: set[str]) -> list[list[str]]:
    """Rows of a label file (4 columns) for the given images, sorted by ImageID."""
    chosen = [r for r in rows if r.image_id in image_ids]
    return [[r.image_id, r.source, r.mid, r.confidence] for r in sorted_rows(chosen)]


def _xclicks(box: PlannedBox, index: int) -> list[str]:
    if box.source != "xclick":
        return ["-1"] * 8
    t = ((index * 37) % 100) / 100  # where along each edge the annotator clicked
    w, h = box.x_max - box.x_min, box.y_max - box.y_min
    xs = (box.x_min, box.x_min + w * t, box.x_max, box.x_max - w * t)
    ys = (box.y_min + h * t, box.y_min, box.y_max - h * t, box.y_max)
    return [f"{v:.6f}" for v in (*xs, *ys)]


def box_rows(images: Iterable[PlannedImage], with_xclick: bool) -> list[list[str]]:
    """Rows of a box file (13 columns, or 21 with the XClick columns), sorted by ImageID."""
    rows = []
    for im in sorted(images, key=lambda i: i.image_id):
        boxes = sorted(im.boxes, key=lambda b: (b.cls.mid, b.x_min))
        for k, b in enumerate(boxes):
            row = [im.image_id, b.source, b.cls.mid, "1"]
            row += [f"{v:.6f}" for v in (b.x_min, b.x_max, b.y_min, b.y_max)]
            row += [str(f) for f in b.flags]
            rows.append(row + (_xclicks(b, k) if with_xclick else []))
    return rows
