"""Writes ``openimages/<relpath>`` for every official file of every version.

Class lists and the hierarchy are byte-identical copies of the real files shipped in
``oiforge/data/openimages``; relpaths with no real copy get the closest real list (the v6 list
for the v4/v5 ``class-descriptions.csv``, the v5 boxable list for the 2018_04 one). Generated
files use LF, except the 2018_04 files and the v7 human labels, which use CRLF (readers must
handle both, as the real v7 class list is CRLF).
"""

from __future__ import annotations

from pathlib import Path

from oiforge.atomic import write_bytes_atomic
from oiforge.catalog.files import FILES, OfficialFile
from oiforge.mirror.labels import Labels
from oiforge.mirror.plan import PlannedImage
from oiforge.mirror.tables import (
    BOX_COLUMNS,
    BOX_COLUMNS_V6_TRAIN,
    IMAGE_COLUMNS,
    LABEL_COLUMNS,
    V6_TRAIN_BOXES,
    Encoded,
    box_rows,
    image_rows,
    label_rows,
    to_csv,
)
from oiforge.paths import package_data

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
