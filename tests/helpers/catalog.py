"""Write small Open Images-shaped metadata files straight into a catalog cache (no server)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from pathlib import Path

from oiforge.catalog.files import official_files

IMAGE_HEADER = (
    "ImageID,Subset,OriginalURL,OriginalLandingURL,License,AuthorProfileURL,Author,Title,"
    "OriginalSize,OriginalMD5,Thumbnail300KURL,Rotation"
)
LABEL_HEADER = "ImageID,Source,LabelName,Confidence"
BOX_HEADER = (
    "ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax,"
    "IsOccluded,IsTruncated,IsGroupOf,IsDepiction,IsInside"
)
HEADERS = {
    "images": IMAGE_HEADER,
    "human_labels": LABEL_HEADER,
    "machine_labels": LABEL_HEADER,
    "boxes": BOX_HEADER,
}


def image_row(image_id: str, split: str) -> list[str]:
    return [
        image_id,
        split,
        f"https://c1.staticflickr.com/1/2/{image_id}_o.jpg",
        f"https://www.flickr.com/photos/someone/{image_id}",
        "https://creativecommons.org/licenses/by/2.0/",
        "https://www.flickr.com/people/someone/",
        "Some One",
        f"Title, with comma {image_id}",
        "12345",
        "KFukvivpCM5QXl5SqKe41g==",
        f"https://c1.staticflickr.com/1/2/{image_id}_z.jpg",
        "0.0",
    ]


def to_csv(header: str, rows: Iterable[Sequence[str]], crlf: bool = False) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n" if crlf else "\n")
    buf.write(header + ("\r\n" if crlf else "\n"))
    writer.writerows(rows)
    return buf.getvalue().encode()


def write_tables(
    home: Path,
    version: str,
    tables: dict[str, dict[str, list[Sequence[str]]]],
    crlf: bool = False,
) -> None:
    """``tables[kind][split]`` rows; every table file of ``version`` is written (maybe empty)."""
    for f in official_files(version, tuple(HEADERS)):
        rows = tables.get(f.kind, {}).get(f.split or "", [])
        path = home / "metadata" / f.relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(to_csv(HEADERS[f.kind], rows, crlf))
