"""Writes ``openimages/<relpath>`` for every official file of every version, in the exact
official column layouts.

Class lists and the hierarchy are byte-identical copies of the real files shipped in
``oiforge/data/openimages``; relpaths with no real copy get the closest real list (the v6 list
for the v4/v5 ``class-descriptions.csv``, the v5 boxable list for the 2018_04 one). Generated
files use LF, except the 2018_04 files and the v7 human labels, which use CRLF (readers must
handle both, as the real v7 class list is CRLF).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from oiforge.atomic import write_bytes_atomic
from oiforge.catalog.files import FILES, OfficialFile
from oiforge.mirror.labels import LabelRow, Labels, sorted_rows
from oiforge.mirror.plan import PlannedBox, PlannedImage
from oiforge.paths import package_data

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


#: relpath -> the real file shipped in the package that it is a copy of.
REAL_COPIES = {
    "v7/oidv7-class-descriptions.csv": "oidv7-class-descriptions.csv",
    "v7/oidv7-class-descriptions-boxable.csv": "oidv7-class-descriptions-boxable.csv",
    "v6/oidv6-class-descriptions.csv": "oidv6-class-descriptions.csv",
    "v5/class-descriptions.csv": "oidv6-class-descriptions.csv",
    "2018_04/class-descriptions.csv": "oidv6-class-descriptions.csv",
    "v5/class-descriptions-boxable.csv": "class-descriptions-boxable.csv",
    "2018_04/class-descriptions-boxable.csv": "class-descriptions-boxable.csv",
    "2018_04/bbox_labels_600_hierarchy.json": "bbox_labels_600_hierarchy.json",
}


def newline_of(relpath: str) -> str:
    """The line end a generated file uses."""
    crlf = relpath.startswith("2018_04/") or (relpath.startswith("v7/") and "human" in relpath)
    return "\r\n" if crlf else "\n"


def _generated(
    f: OfficialFile, images: list[PlannedImage], encoded: dict[str, Encoded], labels: Labels
) -> tuple[bytes, int]:
    nl = newline_of(f.relpath)
    chosen = [im for im in images if im.split == f.split]
    ids = {im.image_id for im in chosen}
    if f.kind == "images":
        rows = image_rows(chosen, encoded)
        return to_csv(IMAGE_COLUMNS, rows, nl), len(rows)
    if f.kind in ("human_labels", "machine_labels"):
        source = labels.human if f.kind == "human_labels" else labels.machine
        rows = label_rows(source, ids)
        return to_csv(LABEL_COLUMNS, rows, nl), len(rows)
    if f.kind == "boxes":
        wide = f.relpath == V6_TRAIN_BOXES
        rows = box_rows(chosen, with_xclick=wide)
        return to_csv(BOX_COLUMNS_V6_TRAIN if wide else BOX_COLUMNS, rows, nl), len(rows)
    raise ValueError(f"no generator for {f.kind} ({f.relpath})")


def write_metadata(
    root: Path, images: list[PlannedImage], encoded: dict[str, Encoded], labels: Labels
) -> dict[str, dict[str, object]]:
    """Write every official file once (v7 first); returns per-relpath facts for sample.json."""
    written: dict[str, dict[str, object]] = {}
    for version, files in FILES.items():
        for f in files:
            if f.relpath in written:
                continue
            if f.relpath in REAL_COPIES:
                data = package_data("openimages", REAL_COPIES[f.relpath]).read_bytes()
                facts: dict[str, object] = {"kind": f.kind, "real_copy": REAL_COPIES[f.relpath]}
            else:
                data, count = _generated(f, images, encoded, labels)
                newline = "crlf" if newline_of(f.relpath) == "\r\n" else "lf"
                facts = {"kind": f.kind, "split": f.split, "rows": count, "newline": newline}
            write_bytes_atomic(root / "openimages" / f.relpath, data)
            written[f.relpath] = {"version": version, "size": len(data), **facts}
    return written
